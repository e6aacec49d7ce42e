package devbroker

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// journalFormat is the version of the commit journal's entries; an entry of
// a newer format stops the start rather than being misread.
const journalFormat = 1

// journalRotate is the size past which the journal is rewritten to hold its
// last entry only.
const journalRotate = 1 << 20

// commitEntry is a transaction whose commit the broker was about to write:
// what a real Kafka coordinator logs as PREPARE_COMMIT before it writes the
// markers.
type commitEntry struct {
	V       int           `json:"v"`
	TxnID   string        `json:"txn_id"`
	PID     int64         `json:"pid"`
	Epoch   int16         `json:"epoch"`
	Parts   []txnPart     `json:"parts"`
	Offsets []groupOffset `json:"offsets,omitempty"`
}

// txnPart is a partition the transaction wrote to; From is the high
// watermark before its first record there, so its records lie at or above.
type txnPart struct {
	Topic     string `json:"topic"`
	Partition int32  `json:"partition"`
	From      int64  `json:"from"`
}

// groupOffset is an offset the transaction commits for a consumer group.
type groupOffset struct {
	Group       string `json:"group"`
	Topic       string `json:"topic"`
	Partition   int32  `json:"partition"`
	Offset      int64  `json:"offset"`
	LeaderEpoch int32  `json:"leader_epoch"`
	Metadata    string `json:"metadata,omitempty"`
}

// journal is an append-only file of commitEntry lines. Only the last entry
// matters: the broker handles one request at a time, so an EndTxn is fully
// written before the next one is journaled.
type journal struct {
	path string
	sync bool
	f    *os.File
	size int64
}

func openJournal(path string, sync bool) (*journal, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &journal{path: path, sync: sync, f: f, size: st.Size()}, nil
}

// append writes e as one line in one write, so a crash leaves it whole or
// torn, never interleaved; a torn last line is ignored by readLastEntry.
func (j *journal) append(e commitEntry) error {
	e.V = journalFormat
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	b = append(b, '\n')
	if j.size+int64(len(b)) > journalRotate {
		return j.replace(b)
	}
	n, err := j.f.Write(b)
	j.size += int64(n)
	if err != nil {
		return err
	}
	if j.sync {
		return j.f.Sync()
	}
	return nil
}

// replace swaps the file for one holding line only, by rename so a crash
// leaves the old file or the new one.
func (j *journal) replace(line []byte) error {
	tmp := j.path + ".tmp"
	if err := os.WriteFile(tmp, line, 0o600); err != nil {
		return err
	}
	if j.sync {
		if err := syncFile(tmp); err != nil {
			return err
		}
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return err
	}
	if j.sync {
		if err := syncFile(filepath.Dir(j.path)); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	j.f.Close()
	j.f, j.size = f, int64(len(line))
	return nil
}

// reset empties the journal once every entry in it is known complete.
func (j *journal) reset() error { return j.replace(nil) }

func (j *journal) close() error { return j.f.Close() }

func syncFile(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

// errNewerJournal is a journal written by a newer logbook.
var errNewerJournal = errors.New("the transaction journal was written by a newer logbook")

// readLastEntry returns the journal's last complete entry, if any. A torn
// last line (a crash while appending it) is skipped: its EndTxn never
// reached the broker, so the entry before it is the last that could have.
func readLastEntry(path string) (*commitEntry, error) {
	raw, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	lines := bytes.Split(raw, []byte{'\n'})
	// Whatever follows the last newline is torn or empty.
	for i := len(lines) - 2; i >= 0; i-- {
		if len(bytes.TrimSpace(lines[i])) == 0 {
			continue
		}
		var e commitEntry
		if err := json.Unmarshal(lines[i], &e); err != nil {
			return nil, fmt.Errorf("transaction journal %s line %d: %w", path, i+1, err)
		}
		switch {
		case e.V > journalFormat:
			return nil, fmt.Errorf("%w (format %d, this one reads up to %d): %s", errNewerJournal, e.V, journalFormat, path)
		case e.V < 1:
			return nil, fmt.Errorf("transaction journal %s line %d: no format version", path, i+1)
		}
		return &e, nil
	}
	return nil, nil
}
