package devbroker

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// format1Last is the last whole entry of testdata/journal-format1, a
// journal as format 1 writes it, ending in a line torn by a crash.
var format1Last = commitEntry{V: 1, TxnID: "logbook-decider-a", PID: 7, Epoch: 4,
	Parts:   []txnPart{{Topic: "logbook.events", Partition: 2, From: 41}, {Topic: "logbook.decider-state", Partition: 2, From: 90}},
	Offsets: []groupOffset{{Group: "logbook-decider", Topic: "logbook.commands", Partition: 2, Offset: 17, LeaderEpoch: 0, Metadata: "m"}},
}

func TestJournalReadsFormat1AndSkipsATornLine(t *testing.T) {
	e, err := readLastEntry(filepath.Join("testdata", "journal-format1"))
	if err != nil {
		t.Fatal(err)
	}
	if e == nil || !reflect.DeepEqual(*e, format1Last) {
		t.Fatalf("last entry: got %+v, want %+v", e, format1Last)
	}
}

func TestJournalWritesFormat1(t *testing.T) {
	golden, err := os.ReadFile(filepath.Join("testdata", "journal-format1"))
	if err != nil {
		t.Fatal(err)
	}
	lines := bytes.SplitAfter(golden, []byte("\n"))
	path := filepath.Join(t.TempDir(), JournalFile)
	j, err := openJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	e := format1Last
	e.V = 0 // append stamps the format
	if err := j.append(e); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, lines[1]) {
		t.Fatalf("this version writes\n%s\nformat 1 is\n%s", got, lines[1])
	}
}

func TestJournalRefusesWhatItCannotRead(t *testing.T) {
	dir := t.TempDir()
	newer := filepath.Join(dir, "newer")
	if err := os.WriteFile(newer, []byte(`{"v":2,"pid":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readLastEntry(newer); !errors.Is(err, errNewerJournal) {
		t.Fatalf("newer format: got %v", err)
	}
	unversioned := filepath.Join(dir, "unversioned")
	if err := os.WriteFile(unversioned, []byte(`{"pid":1}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readLastEntry(unversioned); err == nil {
		t.Fatal("an entry without a format was read")
	}
	if e, err := readLastEntry(filepath.Join(dir, "absent")); e != nil || err != nil {
		t.Fatalf("absent journal: %v %v", e, err)
	}
}

func TestJournalRotatesToItsLastEntry(t *testing.T) {
	path := filepath.Join(t.TempDir(), JournalFile)
	j, err := openJournal(path, false)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	var last commitEntry
	for i := range journalRotate/100 + 10 {
		last = commitEntry{TxnID: "x", PID: int64(i), Parts: []txnPart{{Topic: "t", From: int64(i)}}}
		if err := j.append(last); err != nil {
			t.Fatal(err)
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() > journalRotate {
		t.Fatalf("journal grew to %d bytes", st.Size())
	}
	got, err := readLastEntry(path)
	last.V = journalFormat
	if err != nil || got == nil || !reflect.DeepEqual(*got, last) {
		t.Fatalf("after rotation: got %+v %v, want %+v", got, err, last)
	}
}
