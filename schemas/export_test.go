package schemas_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

const goldenExport = "export/format1.ndjson"

// readGoldenExport returns the lines of testdata/export/format1.ndjson, an
// export of format 1: six events, one payload with U+0000, HTML characters
// and non-ASCII text, some events with a correlation id and some without.
func readGoldenExport(t *testing.T) []string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("testdata", goldenExport))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(raw), "\n"), "\n")
}

func verifyLines(lines []string) (schemas.ExportReport, error) {
	return schemas.VerifyExport(strings.NewReader(strings.Join(lines, "\n") + "\n"))
}

// Today's code verifies what format 1 wrote, and writes the same bytes
// from the same content.
func TestGoldenExportFormat1(t *testing.T) {
	lines := readGoldenExport(t)
	rep, err := verifyLines(lines)
	if err != nil {
		t.Fatalf("golden export: %v", err)
	}
	last := lines[len(lines)-2]
	if rep.WorkspaceID != "0193a5c0-0000-7000-8000-00000000a001" || rep.Events != 6 || rep.Head.Seq != 6 ||
		!strings.Contains(last, `"hash":"`+rep.Head.Hash+`"`) || rep.ExportedAt.IsZero() {
		t.Fatalf("golden export read as %+v", rep)
	}

	var h schemas.ExportHeader
	if err := json.Unmarshal([]byte(lines[0]), &h); err != nil || h.Format != 1 {
		t.Fatalf("header %s: %v", lines[0], err)
	}
	var out bytes.Buffer
	x, err := schemas.NewExportWriter(&out, h.WorkspaceID, h.ExportedAt)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range lines[1 : len(lines)-1] {
		var e schemas.TrailEvent
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatal(err)
		}
		if err := x.Event(e); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(lines, "\n") + "\n"; out.String() != want {
		t.Fatalf("written again, the export differs:\n%s\nwant\n%s", out.String(), want)
	}
}

// Every kind of damage is found, and the first broken event is named.
func TestVerifyExportFindsTheFirstBreak(t *testing.T) {
	golden := readGoldenExport(t)
	const (
		seq4 = "0193a5c0-0000-7000-8000-0000000000d1"
		seq5 = "0193a5c0-0000-7000-8000-0000000000e1"
	)
	edit := func(f func(l []string) []string) []string {
		return f(append([]string(nil), golden...))
	}
	replace := func(i int, old, new string) []string {
		return edit(func(l []string) []string {
			if !strings.Contains(l[i], old) {
				t.Fatalf("line %d has no %q", i, old)
			}
			l[i] = strings.Replace(l[i], old, new, 1)
			return l
		})
	}
	for _, tc := range []struct {
		name    string
		lines   []string
		seq     int64  // the event named, 0 for a break outside events
		eventID string // its id
		reason  string // part of the reason
	}{
		{"one letter of a task title", replace(4, "Summarise", "Summarize"), 4, seq4, "hash does not match"},
		{"a byte of a NUL-bearing input", replace(4, `line\u0000two`, `line\u0000twO`), 4, seq4, "hash does not match"},
		{"an actor", replace(4, `"role":"writer"`, `"role":"admin"`), 4, seq4, "hash does not match"},
		{"a timestamp", replace(5, "09:30:04.123456Z", "09:30:04.123457Z"), 5, seq5, "hash does not match"},
		{"a hash", replace(4, `"hash":"6fe0`, `"hash":"0fe0`), 4, seq4, "hash does not match"},
		{"an event removed", edit(func(l []string) []string { return append(l[:4], l[5:]...) }), 5, seq5, "expected seq 4"},
		{"two events swapped", edit(func(l []string) []string { l[4], l[5] = l[5], l[4]; return l }), 5, seq5, "expected seq 4"},
		{"a prev_hash", replace(5, `"prev_hash":"6fe0`, `"prev_hash":"0fe0`), 5, seq5, "prev_hash"},
		{"a field the format does not have", replace(4, `"seq":4,`, `"seq":4,"note":"x",`), 4, seq4, "not an event of this format"},
		{"an event of another workspace", replace(4, `"workspace_id":"0193a5c0-0000-7000-8000-00000000a001"`,
			`"workspace_id":"0193a5c0-0000-7000-8000-00000000a002"`), 4, seq4, "not the exported workspace"},
		{"an unreadable event", replace(4, `"seq":4,`, `"seq":4,,`), 0, "", "not an event"},
		{"the last line removed: truncated", golden[:len(golden)-1], 0, "", "truncated"},
		{"cut after the header", golden[:1], 0, "", "truncated"},
		{"a chain head over a shorter trail", edit(func(l []string) []string { return append(l[:6], l[7]) }), 0, "", "not the last event"},
		{"a chain head that miscounts", replace(7, `"events":6`, `"events":7`), 0, "", "counts 7 events"},
		{"a chain head of another workspace", replace(7, `a001"`, `a002"`), 0, "", "chain head names workspace"},
		{"data after the chain head", append(append([]string(nil), golden...), golden[1]), 0, "", "after the chain head"},
		{"no header", golden[1:], 0, "", "not a logbook export"},
		{"a header without a workspace", replace(0, `"workspace_id":"0193a5c0-0000-7000-8000-00000000a001"`, `"workspace_id":""`), 0, "", "no workspace_id"},
		{"empty", nil, 0, "", "empty file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := strings.Join(tc.lines, "\n")
			_, err := schemas.VerifyExport(strings.NewReader(in))
			var b *schemas.ExportBreak
			if !errors.As(err, &b) {
				t.Fatalf("verified a damaged export: %v", err)
			}
			if b.Seq != tc.seq || b.EventID != tc.eventID || !strings.Contains(b.Reason, tc.reason) {
				t.Fatalf("break %q (seq %d, event %q), want seq %d, event %q, reason with %q",
					b, b.Seq, b.EventID, tc.seq, tc.eventID, tc.reason)
			}
			if tc.seq != 0 && !strings.HasPrefix(b.Error(), "seq ") {
				t.Fatalf("break %q does not name the event", b)
			}
		})
	}
}

// The log position is where an event was read from, not part of the
// event: the hash does not cover it, so changing it breaks nothing.
func TestVerifyExportLeavesLogPositionsUnchecked(t *testing.T) {
	lines := readGoldenExport(t)
	lines[4] = strings.Replace(lines[4], `"log_offset":16`, `"log_offset":17`, 1)
	if _, err := verifyLines(lines); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyExportRefusesANewerFormat(t *testing.T) {
	lines := readGoldenExport(t)
	lines[0] = strings.Replace(lines[0], `"logbook_export":1`, `"logbook_export":2`, 1)
	_, err := verifyLines(lines)
	var f *schemas.ExportFormatError
	if !errors.As(err, &f) || f.Format != 2 {
		t.Fatalf("format 2: %v, want an ExportFormatError", err)
	}
}

// What Seal writes exports and verifies; the head read from the last line
// is the chain's.
func TestExportWriterOfSealedEvents(t *testing.T) {
	ws := "0193a5c0-0000-7000-8000-00000000a009"
	now := time.Date(2025, 1, 2, 3, 4, 5, 6789, time.UTC)
	evs := []domain.Event{
		{Type: domain.EvWorkspaceCreated, Aggregate: domain.AggregateRef{Type: domain.AggregateWorkspace, ID: ws, Version: 1},
			OccurredAt: now, Payload: domain.WorkspaceCreated{Name: "w"}},
		{Type: domain.EvWorkspaceRenamed, Aggregate: domain.AggregateRef{Type: domain.AggregateWorkspace, ID: ws, Version: 2},
			OccurredAt: now, Payload: domain.WorkspaceRenamed{Name: "<é>"}},
	}
	sealed, chain, err := schemas.Seal(schemas.Chain{}, schemas.EventMeta{WorkspaceID: ws, CommandID: "c",
		Actor: domain.Actor{ID: "a", Role: domain.RoleAdmin}}, evs)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	x, err := schemas.NewExportWriter(&out, ws, now)
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range sealed {
		if err := x.Event(schemas.TrailEvent{EventEnvelope: s, LogOffset: int64(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := schemas.VerifyExport(bytes.NewReader(out.Bytes()))
	if err != nil || rep.Head != chain || rep.Events != 2 {
		t.Fatalf("report %+v, %v; want head %+v", rep, err, chain)
	}
	var last []byte
	for sc := bufio.NewScanner(bytes.NewReader(out.Bytes())); sc.Scan(); {
		last = append(last[:0], sc.Bytes()...)
	}
	head, ok := schemas.ExportHeadOf(last)
	if !ok || head.Seq != chain.Seq || head.Hash != chain.Hash || head.Events != 2 || head.WorkspaceID != ws {
		t.Fatalf("chain head line %s read as %+v, %v", last, head, ok)
	}
	if _, ok := schemas.ExportHeadOf(out.Bytes()[:bytes.IndexByte(out.Bytes(), '\n')]); ok {
		t.Fatal("the header read as a chain head")
	}
}
