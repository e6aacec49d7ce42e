package devbroker

import (
	"context"
	"hash/crc32"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafkatest"
)

// The repair writes kfake's own index format: for every batch kfake wrote,
// the entry the repair computes has the version, leader epoch, flag and
// checksum of the one kfake wrote. A kfake upgrade that changes the format
// fails here before it can mislead a restart.
func TestIndexRepairMatchesKfake(t *testing.T) {
	dir := t.TempDir()
	c := kafkatest.DiskCluster(t, dir)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("x"))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if _, err := kadm.NewClient(cl).CreateTopic(ctx, 1, 1, nil, "x"); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Value: []byte("plain")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for i, end := range []kgo.TransactionEndTry{kgo.TryCommit, kgo.TryAbort, kgo.TryCommit} {
		tx, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("x"),
			kgo.TransactionalID("t"+string(rune('0'+i))))
		if err != nil {
			t.Fatal(err)
		}
		if err := tx.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		if err := tx.ProduceSync(ctx, &kgo.Record{Value: []byte("in a transaction")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
		if err := tx.EndTransaction(ctx, end); err != nil {
			t.Fatal(err)
		}
		tx.Close()
	}
	open, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("x"), kgo.TransactionalID("open"))
	if err != nil {
		t.Fatal(err)
	}
	defer open.Close()
	if err := open.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := open.ProduceSync(ctx, &kgo.Record{Value: []byte("still open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	seg := filepath.Join(dir, "partitions", "x-0", "0.dat")
	raw, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	idxPath := filepath.Join(dir, "partitions", "x-0", "0.idx")
	written, err := os.ReadFile(idxPath)
	if err != nil {
		t.Fatal(err)
	}
	// plain, 3 × (data, marker), open data
	const batches = 8
	computed := indexEntries(raw)
	if len(computed) != batches || len(written) != batches*indexEntrySize {
		t.Fatalf("want %d batches, got %d computed, %d bytes of kfake index", batches, len(computed), len(written))
	}
	same := func(got [indexEntrySize]byte, want []byte) bool {
		// The timestamp field is not read back by kfake: compare the rest
		// field by field, and the checksum only for being valid.
		return got[0] == want[0] && [4]byte(got[2:6]) == [4]byte(want[2:6]) && got[14] == want[14] &&
			got[1] == byte(crc32.Checksum(got[2:], castagnoli))
	}
	for i, e := range computed {
		if want := written[i*indexEntrySize : (i+1)*indexEntrySize]; !same(e, want) {
			t.Fatalf("batch %d: computed entry %x, kfake wrote %x", i, e, want)
		}
	}
	if flags := []byte{0, 1, 0, 1, 0, 1, 0, 1}; !func() bool {
		for i, e := range computed {
			if e[14] != flags[i] {
				return false
			}
		}
		return true
	}() {
		t.Fatalf("in-transaction flags: want %v", flags)
	}

	// The kill between the last batch and its entry, with the entry half
	// written: the repair completes the index to what kfake wrote.
	cut := filepath.Join(t.TempDir(), "0.dat")
	if err := os.WriteFile(cut, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(filepath.Dir(cut), "0.idx"), written[:len(written)-indexEntrySize+4], 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := repairIndex(cut, true)
	if err != nil || n != 1 {
		t.Fatalf("repair: %d entries, %v", n, err)
	}
	again, err := os.ReadFile(filepath.Join(filepath.Dir(cut), "0.idx"))
	if err != nil || len(again) != len(written) || !same([indexEntrySize]byte(again[len(again)-indexEntrySize:]), written[len(written)-indexEntrySize:]) {
		t.Fatalf("repaired index %x, kfake wrote %x (%v)", again, written, err)
	}
	if n, err := repairIndex(cut, false); err != nil || n != 0 {
		t.Fatalf("a complete index was repaired again: %d entries, %v", n, err)
	}
	// A segment torn in its last batch: no entry for the torn part.
	if got := len(indexEntries(raw[:len(raw)-3])); got != batches-1 {
		t.Fatalf("torn segment: %d entries, want %d", got, batches-1)
	}
}
