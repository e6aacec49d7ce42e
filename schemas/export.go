package schemas

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// An export is one workspace's event trail as a file auditors keep and
// verify offline: JSON lines, a header, the events in seq order exactly as
// the trail serves them, and a last line with the chain head. A file
// without that last line is incomplete.
//
//	{"logbook_export":1,"workspace_id":"…","exported_at":"…"}
//	{"id":"…","seq":1,…,"prev_hash":"","hash":"…","log_partition":3,"log_offset":0}
//	…
//	{"chain_head":{"workspace_id":"…","seq":N,"hash":"…","events":N}}

// ExportFormat is the export format this version writes, and the newest it
// reads.
const ExportFormat = 1

// ExportMediaType is the Content-Type of an export: newline-delimited JSON,
// the name streaming JSON tools know.
const ExportMediaType = "application/x-ndjson"

// MaxExportLine bounds one line of an export, far above the largest event
// the API accepts.
const MaxExportLine = 16 << 20

// ExportHeader is the first line of an export.
type ExportHeader struct {
	Format      int       `json:"logbook_export"`
	WorkspaceID string    `json:"workspace_id"`
	ExportedAt  time.Time `json:"exported_at"`
}

// TrailEvent is an event of the trail as the API serves it: the envelope as
// stored and hashed, and where it sits in the log. The log position is not
// covered by the hash.
type TrailEvent struct {
	EventEnvelope
	LogPartition int32 `json:"log_partition"`
	LogOffset    int64 `json:"log_offset"`
}

// ExportHead is the chain head an export ends with: its last event's seq
// and hash, and how many events it holds.
type ExportHead struct {
	WorkspaceID string `json:"workspace_id"`
	Seq         int64  `json:"seq"`
	Hash        string `json:"hash"`
	Events      int64  `json:"events"`
}

// exportTrailer is the last line of an export.
type exportTrailer struct {
	ChainHead *ExportHead `json:"chain_head"`
}

// ExportWriter writes an export, line by line.
type ExportWriter struct {
	w    io.Writer
	head ExportHead
}

// NewExportWriter writes the header of workspaceID's export to w.
func NewExportWriter(w io.Writer, workspaceID string, exportedAt time.Time) (*ExportWriter, error) {
	x := &ExportWriter{w: w, head: ExportHead{WorkspaceID: workspaceID}}
	return x, x.line(ExportHeader{Format: ExportFormat, WorkspaceID: workspaceID, ExportedAt: Timestamp(exportedAt)})
}

// Event writes the next event. The writer does not verify it: an export
// shows the trail as stored, breaks included, for the verifier to find.
func (x *ExportWriter) Event(e TrailEvent) error {
	if err := x.line(e); err != nil {
		return err
	}
	x.head.Seq, x.head.Hash = e.Seq, e.Hash
	x.head.Events++
	return nil
}

// Close writes the chain head: the export is complete. It does not close
// the underlying writer.
func (x *ExportWriter) Close() error {
	head := x.head
	return x.line(exportTrailer{ChainHead: &head})
}

func (x *ExportWriter) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("schemas: export line: %w", err)
	}
	_, err = x.w.Write(append(b, '\n'))
	return err
}

// ExportHeadOf reads line as an export's last line.
func ExportHeadOf(line []byte) (ExportHead, bool) {
	var t exportTrailer
	if strictUnmarshal(line, &t) != nil || t.ChainHead == nil {
		return ExportHead{}, false
	}
	return *t.ChainHead, true
}

// ExportReport describes an export that verified.
type ExportReport struct {
	WorkspaceID string
	ExportedAt  time.Time
	Events      int64
	Head        Chain
}

// ExportBreak is the first thing wrong in an export: at an event (Seq and
// EventID set, as far as the line tells them) or elsewhere (Line only).
type ExportBreak struct {
	Line    int
	Seq     int64
	EventID string
	Reason  string
}

func (b *ExportBreak) Error() string {
	if b.EventID != "" || b.Seq != 0 {
		return fmt.Sprintf("seq %d (event %s): %s", b.Seq, b.EventID, b.Reason)
	}
	return fmt.Sprintf("line %d: %s", b.Line, b.Reason)
}

// ExportFormatError is an export in a format newer than this version reads.
type ExportFormatError struct{ Format int }

func (e *ExportFormatError) Error() string {
	return fmt.Sprintf("export format %d is newer than this logbook reads (%d)", e.Format, ExportFormat)
}

// VerifyExport checks an export with nothing but its content: a header this
// version reads; events of that workspace whose seq runs gapless from 1,
// each prev_hash the previous hash and each hash recomputed (Verify); and a
// chain head equal to the last event, after which nothing follows. The
// first failure is an *ExportBreak (a file without its chain head is
// truncated); a newer format is an *ExportFormatError; other errors are
// the reader's.
func VerifyExport(r io.Reader) (ExportReport, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), MaxExportLine)
	v := exportVerifier{}
	for sc.Scan() {
		v.line++
		if err := v.next(sc.Bytes()); err != nil {
			return ExportReport{}, err
		}
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return ExportReport{}, &ExportBreak{Line: v.line + 1, Reason: fmt.Sprintf("line longer than %d bytes", MaxExportLine)}
		}
		return ExportReport{}, err
	}
	switch {
	case v.line == 0:
		return ExportReport{}, &ExportBreak{Line: 1, Reason: "empty file: not a logbook export"}
	case !v.ended:
		return ExportReport{}, &ExportBreak{Line: v.line + 1, Reason: fmt.Sprintf(
			"no chain head after seq %d: the export is truncated", v.chain.Seq)}
	}
	return ExportReport{WorkspaceID: v.header.WorkspaceID, ExportedAt: v.header.ExportedAt,
		Events: v.events, Head: v.chain}, nil
}

// exportVerifier is VerifyExport's state between lines.
type exportVerifier struct {
	line   int
	header ExportHeader
	chain  Chain
	events int64
	ended  bool
}

func (v *exportVerifier) next(line []byte) error {
	switch {
	case v.ended:
		return v.broken("data after the chain head")
	case v.line == 1:
		return v.readHeader(line)
	}
	var e TrailEvent
	err := strictUnmarshal(line, &e)
	if err != nil {
		if head, ok := ExportHeadOf(line); ok {
			return v.readHead(head)
		}
		return v.brokenEvent(line, fmt.Sprintf("not an event of this format: %v", err))
	}
	if e.WorkspaceID != v.header.WorkspaceID {
		return &ExportBreak{Line: v.line, Seq: e.Seq, EventID: e.ID,
			Reason: fmt.Sprintf("workspace_id %q is not the exported workspace", e.WorkspaceID)}
	}
	next, err := Verify(v.chain, e.EventEnvelope)
	var ce *ChainError
	if errors.As(err, &ce) {
		return &ExportBreak{Line: v.line, Seq: e.Seq, EventID: e.ID, Reason: ce.Reason}
	}
	if err != nil {
		return &ExportBreak{Line: v.line, Seq: e.Seq, EventID: e.ID, Reason: err.Error()}
	}
	v.chain = next
	v.events++
	return nil
}

func (v *exportVerifier) readHeader(line []byte) error {
	var version struct {
		Format *int `json:"logbook_export"`
	}
	if json.Unmarshal(line, &version) != nil || version.Format == nil {
		return v.broken("no logbook_export header: not a logbook export")
	}
	if *version.Format > ExportFormat {
		return &ExportFormatError{Format: *version.Format}
	}
	if err := strictUnmarshal(line, &v.header); err != nil {
		return v.broken(fmt.Sprintf("header: %v", err))
	}
	if v.header.Format < 1 || v.header.WorkspaceID == "" {
		return v.broken("header: no format version or no workspace_id")
	}
	return nil
}

func (v *exportVerifier) readHead(h ExportHead) error {
	switch {
	case h.WorkspaceID != v.header.WorkspaceID:
		return v.broken(fmt.Sprintf("chain head names workspace %q, not the exported one", h.WorkspaceID))
	case h.Seq != v.chain.Seq || h.Hash != v.chain.Hash:
		return v.broken(fmt.Sprintf("chain head (seq %d, hash %s) is not the last event (seq %d, hash %s)",
			h.Seq, h.Hash, v.chain.Seq, v.chain.Hash))
	case h.Events != v.events:
		return v.broken(fmt.Sprintf("chain head counts %d events, the export holds %d", h.Events, v.events))
	}
	v.ended = true
	return nil
}

func (v *exportVerifier) broken(reason string) error {
	return &ExportBreak{Line: v.line, Reason: reason}
}

// brokenEvent names the event of an unreadable line as far as it can be
// read.
func (v *exportVerifier) brokenEvent(line []byte, reason string) error {
	var id struct {
		ID  string `json:"id"`
		Seq int64  `json:"seq"`
	}
	if json.Unmarshal(line, &id) != nil || id.ID == "" {
		return v.broken(reason)
	}
	return &ExportBreak{Line: v.line, Seq: id.Seq, EventID: id.ID, Reason: reason}
}
