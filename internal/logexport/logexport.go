// Package logexport writes the log's facts to files and back: `logbook log
// export` and `logbook log import`, for a backup kept off the cluster and a
// recovery into an empty one.
//
// An export directory holds manifest.json and one file per topic partition,
// <topic>/<partition>.jsonl, a JSON line per committed record in log order.
// The manifest says the format, each file's record count and SHA-256, and
// every workspace's chain head (last seq and hash), so an import can tell a
// complete, untouched export from a damaged one before it writes anything.
package logexport

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/schemas"
)

// Format is the export format this version writes; Import reads it and
// refuses any other loudly.
const Format = 1

// The topics an export carries, by role: the events (the facts), the
// command results (outcomes and idempotency), the access audit and the
// wrapped data keys (without them sealed fields cannot be read). Commands
// are inputs: every decided one is in the events and results. The decider's
// state is rebuilt from those on import.
const (
	TopicEvents  = "events"
	TopicResults = "results"
	TopicAccess  = "access"
	TopicKeys    = "workspace-keys"
)

// Manifest describes an export.
type Manifest struct {
	Format     int                   `json:"format"`
	ExportedAt time.Time             `json:"exported_at"`
	Topics     map[string]TopicFiles `json:"topics"` // by role (TopicEvents, ...)
	// Heads are each workspace's chain head in the exported events.
	Heads map[string]schemas.Chain `json:"heads"`
}

// TopicFiles are one topic's files.
type TopicFiles struct {
	Partitions int32             `json:"partitions"`
	Files      map[string]FileID `json:"files"` // by partition, as a decimal string
}

// FileID is what one file holds.
type FileID struct {
	Records int64  `json:"records"`
	SHA256  string `json:"sha256"`
}

// Record is one line of a partition file: a committed record as it was.
type Record struct {
	Offset    int64     `json:"offset"` // in the exported cluster; informative
	Key       []byte    `json:"key,omitempty"`
	Value     []byte    `json:"value,omitempty"`
	Headers   []Header  `json:"headers,omitempty"` // in order; a key may repeat
	Timestamp time.Time `json:"timestamp"`
}

// Header is one record header.
type Header struct {
	Key   string `json:"key"`
	Value []byte `json:"value,omitempty"`
}

// Progress reports records done per topic role.
type Progress func(role string, records int64)

func topicNames(t kafka.Topics) map[string]string {
	return map[string]string{TopicEvents: t.Events, TopicResults: t.Results, TopicAccess: t.Access, TopicKeys: t.Keys}
}

// roles in the order they are written: keys before the events that need
// them, events before the results that refer to them.
var roles = []string{TopicKeys, TopicEvents, TopicResults, TopicAccess}

// Export writes every committed record the topics hold when it starts into
// dir, which must not exist or be empty. It checks the hash chains as it
// goes and refuses to write a broken one.
func Export(ctx context.Context, cfg kafka.Config, dir string, progress Progress) (Manifest, error) {
	m := Manifest{Format: Format, ExportedAt: time.Now().UTC(), Topics: map[string]TopicFiles{}, Heads: map[string]schemas.Chain{}}
	if entries, err := os.ReadDir(dir); err == nil && len(entries) > 0 {
		return m, fmt.Errorf("export: %s is not empty", dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return m, fmt.Errorf("export: %w", err)
	}
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return m, fmt.Errorf("export: %w", err)
	}
	defer cl.Close()
	names := topicNames(cfg.Topics())
	for _, role := range roles {
		tf, err := exportTopic(ctx, cl, names[role], filepath.Join(dir, role), role == TopicEvents, m.Heads, func(n int64) {
			if progress != nil {
				progress(role, n)
			}
		})
		if err != nil {
			return m, fmt.Errorf("export %s: %w", role, err)
		}
		m.Topics[role] = tf
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return m, err
	}
	// The manifest last: a directory without one is an export that did
	// not finish.
	return m, writeFile(filepath.Join(dir, "manifest.json"), append(b, '\n'))
}

func exportTopic(ctx context.Context, cl *kgo.Client, topic, dir string, chained bool, heads map[string]schemas.Chain, progress func(int64)) (TopicFiles, error) {
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		return TopicFiles{}, err
	}
	if err := ends.Error(); err != nil {
		return TopicFiles{}, err
	}
	tf := TopicFiles{Files: map[string]FileID{}}
	from := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { from[o.Partition] = 0 })
	tf.Partitions = int32(len(from))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return tf, err
	}
	type file struct {
		f   *os.File
		w   *bufio.Writer
		h   hash.Hash
		enc *json.Encoder
		n   int64
	}
	files := map[int32]*file{}
	defer func() {
		for _, f := range files {
			f.f.Close()
		}
	}()
	for p := range from {
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("%d.jsonl", p)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return tf, err
		}
		ff := &file{f: f, h: sha256.New()}
		ff.w = bufio.NewWriterSize(io.MultiWriter(f, ff.h), 1<<20)
		ff.enc = json.NewEncoder(ff.w)
		files[p] = ff
	}
	var total int64
	err = kafka.ReadToEnd(ctx, cl, topic, from, func(r *kgo.Record) error {
		if chained {
			var env schemas.EventEnvelope
			if err := json.Unmarshal(r.Value, &env); err != nil || env.WorkspaceID == "" {
				return fmt.Errorf("record %d/%d is not an event", r.Partition, r.Offset)
			}
			next, err := schemas.Verify(heads[env.WorkspaceID], env)
			if err != nil {
				return fmt.Errorf("record %d/%d: %w", r.Partition, r.Offset, err)
			}
			heads[env.WorkspaceID] = next
		}
		rec := Record{Offset: r.Offset, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp.UTC()}
		for _, h := range r.Headers {
			rec.Headers = append(rec.Headers, Header{Key: h.Key, Value: h.Value})
		}
		f := files[r.Partition]
		if err := f.enc.Encode(rec); err != nil {
			return err
		}
		f.n++
		total++
		if total%10000 == 0 {
			progress(total)
		}
		return nil
	})
	if err != nil {
		return tf, err
	}
	for p, f := range files {
		if err := f.w.Flush(); err != nil {
			return tf, err
		}
		if err := f.f.Sync(); err != nil {
			return tf, err
		}
		tf.Files[fmt.Sprint(p)] = FileID{Records: f.n, SHA256: hexSum(f.h)}
	}
	progress(total)
	return tf, nil
}

// Import reads an export and writes it into the cluster, whose topics must
// exist with the export's partition counts (a workspace's partition is its
// key's hash: another count would move workspaces) and hold nothing. Every
// file is checked against the manifest, and the events against the chain
// heads, before anything is written. Records keep their partition, order,
// key, value, headers and timestamp; offsets are the new cluster's.
func Import(ctx context.Context, cfg kafka.Config, dir string, progress Progress) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return m, fmt.Errorf("import: no manifest (an export that did not finish?): %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("import: manifest: %w", err)
	}
	if m.Format != Format {
		return m, fmt.Errorf("import: export format %d; this version reads format %d", m.Format, Format)
	}
	if err := check(dir, m); err != nil {
		return m, err
	}
	cl, err := kgo.NewClient(append(cfg.Opts(),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(5*time.Millisecond))...)
	if err != nil {
		return m, fmt.Errorf("import: %w", err)
	}
	defer cl.Close()
	names := topicNames(cfg.Topics())
	adm := kadm.NewClient(cl)
	for _, role := range roles {
		topic, tf := names[role], m.Topics[role]
		ends, err := adm.ListEndOffsets(ctx, topic)
		if err != nil {
			return m, fmt.Errorf("import: %w", err)
		}
		if err := ends.Error(); err != nil {
			return m, fmt.Errorf("import: %s: %w", topic, err)
		}
		var parts int32
		var problems []error
		ends.Each(func(o kadm.ListedOffset) {
			parts++
			if o.Offset > 0 {
				problems = append(problems, fmt.Errorf("%s partition %d is not empty", topic, o.Partition))
			}
		})
		if parts != tf.Partitions {
			problems = append(problems, fmt.Errorf("%s has %d partitions, the export %d", topic, parts, tf.Partitions))
		}
		if err := errors.Join(problems...); err != nil {
			return m, fmt.Errorf("import into an empty cluster only: %w", err)
		}
	}
	for _, role := range roles {
		if err := importTopic(ctx, cl, names[role], filepath.Join(dir, role), m.Topics[role], func(n int64) {
			if progress != nil {
				progress(role, n)
			}
		}); err != nil {
			return m, fmt.Errorf("import %s: %w", role, err)
		}
	}
	return m, nil
}

// check verifies every file's count and digest, and the events' chains up
// to the manifest's heads.
func check(dir string, m Manifest) error {
	heads := map[string]schemas.Chain{}
	for _, role := range roles {
		tf, ok := m.Topics[role]
		if !ok {
			return fmt.Errorf("import: the manifest has no %s", role)
		}
		for p := range tf.Partitions {
			id, ok := tf.Files[fmt.Sprint(p)]
			if !ok {
				return fmt.Errorf("import: the manifest has no file for %s partition %d", role, p)
			}
			var n int64
			sum, err := eachRecord(filepath.Join(dir, role, fmt.Sprintf("%d.jsonl", p)), func(r Record) error {
				n++
				if role != TopicEvents {
					return nil
				}
				var env schemas.EventEnvelope
				if err := json.Unmarshal(r.Value, &env); err != nil {
					return fmt.Errorf("line %d is not an event: %w", n, err)
				}
				next, err := schemas.Verify(heads[env.WorkspaceID], env)
				if err != nil {
					return fmt.Errorf("line %d: %w", n, err)
				}
				heads[env.WorkspaceID] = next
				return nil
			})
			if err != nil {
				return fmt.Errorf("import: %s partition %d: %w", role, p, err)
			}
			if n != id.Records || sum != id.SHA256 {
				return fmt.Errorf("import: %s partition %d: %d records with digest %s, the manifest says %d with %s",
					role, p, n, sum, id.Records, id.SHA256)
			}
		}
	}
	for ws, h := range m.Heads {
		if heads[ws] != h {
			return fmt.Errorf("import: workspace %s ends at seq %d in the files, at seq %d in the manifest", ws, heads[ws].Seq, h.Seq)
		}
	}
	if len(heads) != len(m.Heads) {
		return fmt.Errorf("import: the files hold %d workspaces, the manifest %d", len(heads), len(m.Heads))
	}
	return nil
}

func importTopic(ctx context.Context, cl *kgo.Client, topic, dir string, tf TopicFiles, progress func(int64)) error {
	parts := make([]int32, 0, tf.Partitions)
	for p := range tf.Partitions {
		parts = append(parts, p)
	}
	slices.Sort(parts)
	var total int64
	for _, p := range parts {
		written := kgo.AbortingFirstErrPromise(cl)
		_, err := eachRecord(filepath.Join(dir, fmt.Sprintf("%d.jsonl", p)), func(r Record) error {
			rec := &kgo.Record{Topic: topic, Partition: p, Key: r.Key, Value: r.Value, Timestamp: r.Timestamp}
			for _, h := range r.Headers {
				rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
			}
			// After a failure the promise aborts what is buffered: the
			// rest fails fast, and Flush and Err below report it.
			cl.Produce(ctx, rec, written.Promise())
			total++
			if total%10000 == 0 {
				progress(total)
			}
			return ctx.Err()
		})
		if ferr := cl.Flush(ctx); err == nil {
			err = ferr
		}
		if err == nil {
			err = written.Err()
		}
		if err != nil {
			return fmt.Errorf("partition %d: %w", p, err)
		}
	}
	progress(total)
	return nil
}

// eachRecord calls fn with each line of a partition file and returns the
// file's SHA-256.
func eachRecord(path string, fn func(Record) error) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	sc := bufio.NewScanner(io.TeeReader(f, h))
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	for sc.Scan() {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return "", fmt.Errorf("a line that is not a record: %w", err)
		}
		if err := fn(r); err != nil {
			return "", err
		}
	}
	if err := sc.Err(); err != nil {
		return "", err
	}
	return hexSum(h), nil
}

func hexSum(h hash.Hash) string { return hex.EncodeToString(h.Sum(nil)) }

func writeFile(path string, b []byte) error {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
