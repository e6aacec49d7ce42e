// Package keyring keeps every workspace's data key, wrapped by the master
// key, in the compacted workspace-keys topic: one record per workspace,
// keyed by its id. So the log plus the master key restores every sensitive
// field (a disaster that loses Postgres loses nothing readable), and
// erasing a workspace is a tombstone that compaction turns into the key's
// absence from every copy of the topic within a bound set by the topic's
// configuration (kafka.Config.KeysCompactionLag).
//
// Each process holds the keys it has read in memory and re-reads the topic
// from where it stopped every RefreshEvery and whenever it misses a key; a
// key erased elsewhere leaves its cache by the next refresh.
package keyring

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/kafka"
)

// RefreshEvery bounds how long a process keeps a key erased by another.
const RefreshEvery = 5 * time.Second

// rollKey keys the marker records that make the broker close the topic's
// active segment, which compaction never cleans: without a later write, an
// erased key would stay beside its tombstone for as long as the topic is
// quiet. Workspace ids never take this form.
const rollKey = "logbook.keys.roll"

// recordFormat is the format of the topic's values; a later one is
// refused, never read as a guess.
const recordFormat = 1

// record is a workspace-keys value.
type record struct {
	V           int       `json:"v"`
	Workspace   string    `json:"workspace"`
	Generation  int       `json:"generation"`
	MasterKeyID string    `json:"master_key_id"`
	Wrapped     []byte    `json:"wrapped"`
	CreatedAt   time.Time `json:"created_at"`
}

var (
	// ErrNoKey means the workspace has no data key (yet).
	ErrNoKey = errors.New("keyring: the workspace has no data key")
	// ErrErased means the workspace's data key was destroyed.
	ErrErased = errors.New("keyring: the workspace was erased")
)

// Ring is a process's view of the workspace keys.
type Ring struct {
	ks    fieldcrypt.KeyService
	cl    *kgo.Client
	topic string
	lag   time.Duration // the topic's segment.ms and max.compaction.lag.ms

	mu      sync.Mutex
	keys    map[string]*fieldcrypt.DataKey
	wrapped map[string]record // as stored: what rotation rewraps
	erased  map[string]bool
	revived map[string]bool // erased workspaces a key record followed: to erase again
	next    int64           // offset of the next record to read
	dirty   bool            // a tombstone or replaced key since the last roll marker
	last    time.Time       // newest record timestamp read

	readMu   sync.Mutex // one read of the topic at a time
	createMu sync.Mutex // one key creation at a time
}

// ErrNoKeyService means the ring was built without a key service: it can
// erase keys, not make or open them.
var ErrNoKeyService = errors.New("keyring: no master key configured (LOGBOOK_MASTER_KEY_FILE or LOGBOOK_MASTER_KEY)")

// Open connects to the topic and reads it to its end.
func Open(ctx context.Context, cfg kafka.Config, ks fieldcrypt.KeyService) (*Ring, error) {
	r, err := New(cfg, ks)
	if err != nil {
		return nil, err
	}
	if err := r.Refresh(ctx); err != nil {
		r.Close()
		return nil, err
	}
	return r, nil
}

// New connects to the topic without reading it: Run and the first key
// asked for read it. A process that must start while the log is down (to
// serve reads) uses New. ks may be nil for a process that only erases.
func New(cfg kafka.Config, ks fieldcrypt.KeyService) (*Ring, error) {
	cl, err := kgo.NewClient(append(cfg.Opts(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(0),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
	)...)
	if err != nil {
		return nil, err
	}
	lag := cfg.KeysCompactionLag
	if lag <= 0 {
		lag = 24 * time.Hour
	}
	return &Ring{ks: ks, cl: cl, topic: cfg.Topics().Keys, lag: lag, keys: map[string]*fieldcrypt.DataKey{},
		wrapped: map[string]record{}, erased: map[string]bool{}, revived: map[string]bool{}}, nil
}

// Close releases the Kafka client.
func (r *Ring) Close() { r.cl.Close() }

// Run refreshes every RefreshEvery until ctx ends, and writes a roll
// marker once the topic has had something to clean and no write for the
// compaction lag, so the broker closes the segment and compacts it: an
// erased key is gone from the topic within about twice the lag (the roll,
// then a cleaner pass), whichever process erased it and even if it died.
func (r *Ring) Run(ctx context.Context) {
	every := min(RefreshEvery, max(r.lag/4, 100*time.Millisecond))
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			rctx, cancel := context.WithTimeout(ctx, RefreshEvery*2)
			_ = r.Refresh(rctx) // the next tick tries again; a miss refreshes too
			_ = r.rollIfDue(rctx)
			cancel()
		}
	}
}

func (r *Ring) rollIfDue(ctx context.Context) error {
	r.mu.Lock()
	due := r.dirty && time.Since(r.last) > r.lag
	r.mu.Unlock()
	if !due {
		return nil
	}
	v := []byte(`{"v":1}`)
	if err := r.cl.ProduceSync(ctx, &kgo.Record{Topic: r.topic, Partition: 0, Key: []byte(rollKey), Value: v}).FirstErr(); err != nil {
		return err
	}
	return r.Refresh(ctx)
}

// Refresh reads what was written to the topic since the last read. Erasure
// is final: a key written after a workspace's tombstone (a rotation racing
// an erase) is not used, and is erased again here.
func (r *Ring) Refresh(ctx context.Context) error {
	r.readMu.Lock()
	defer r.readMu.Unlock()
	r.mu.Lock()
	from := r.next
	r.mu.Unlock()
	err := kafka.ReadToEnd(ctx, r.cl, r.topic, map[int32]int64{0: from}, func(rec *kgo.Record) error {
		if err := r.apply(rec); err != nil {
			return err
		}
		r.mu.Lock()
		r.next = rec.Offset + 1
		r.mu.Unlock()
		return nil
	})
	if err != nil {
		return err
	}
	r.mu.Lock()
	revived := make([]string, 0, len(r.revived))
	for ws := range r.revived {
		revived = append(revived, ws)
	}
	r.mu.Unlock()
	for _, ws := range revived {
		if err := r.Erase(ctx, ws); err != nil {
			return err
		}
		r.mu.Lock()
		delete(r.revived, ws)
		r.mu.Unlock()
	}
	return nil
}

// apply folds one record into the cache: a tombstone erases, a key record
// replaces the workspace's key (a later generation, or the same key
// rewrapped under another master key).
func (r *Ring) apply(rec *kgo.Record) error {
	ws := string(rec.Key)
	r.mu.Lock()
	if rec.Timestamp.After(r.last) {
		r.last = rec.Timestamp
	}
	switch _, replaces := r.wrapped[ws]; {
	case ws == rollKey:
		r.dirty = false
	case rec.Value == nil || replaces:
		r.dirty = true
	}
	r.mu.Unlock()
	if ws == rollKey {
		return nil
	}
	if rec.Value == nil {
		r.forget(ws)
		return nil
	}
	r.mu.Lock()
	erased := r.erased[ws]
	if erased {
		r.revived[ws] = true
	}
	r.mu.Unlock()
	if erased {
		return nil
	}
	var v record
	if err := json.Unmarshal(rec.Value, &v); err != nil {
		return fmt.Errorf("keyring: record at offset %d: %w", rec.Offset, err)
	}
	if v.V < 1 || v.V > recordFormat {
		return fmt.Errorf("keyring: record at offset %d has format %d; this code reads 1 to %d", rec.Offset, v.V, recordFormat)
	}
	if v.Workspace != ws {
		return fmt.Errorf("keyring: record at offset %d is keyed %q but names another workspace", rec.Offset, ws)
	}
	// Unwrapped when asked for: an older record may be wrapped by a master
	// key already retired, and only the latest one per workspace counts.
	r.mu.Lock()
	if old, ok := r.wrapped[ws]; !ok || old.MasterKeyID != v.MasterKeyID || old.Generation != v.Generation || string(old.Wrapped) != string(v.Wrapped) {
		delete(r.keys, ws)
	}
	r.wrapped[ws] = v
	r.mu.Unlock()
	return nil
}

// wrapAAD binds a wrapped key to its workspace and generation, so a record
// copied under another workspace's id does not unwrap.
func wrapAAD(ws string, generation int) []byte {
	return []byte("logbook.dek.v1\x00" + ws + "\x00" + strconv.Itoa(generation))
}

// Create makes the workspace's data key (generation 1) and writes it, or
// returns the one it has. The key is in the topic before Create returns.
// Only a topic read to its end that holds no key for the workspace makes
// one: a read that fails is an error, never a reason for a new key, which
// would replace the old one and lose what it sealed.
func (r *Ring) Create(ctx context.Context, ws string) (*fieldcrypt.DataKey, error) {
	if k, err := r.Key(ctx, ws); !errors.Is(err, ErrNoKey) {
		return k, err
	}
	// One creation at a time in this process, and a second look once it is
	// this one's turn: concurrent first fields of a workspace share a key.
	r.createMu.Lock()
	defer r.createMu.Unlock()
	if k, err := r.Key(ctx, ws); !errors.Is(err, ErrNoKey) {
		return k, err
	}
	raw, err := fieldcrypt.NewDataKey()
	if err != nil {
		return nil, err
	}
	defer clear(raw)
	if _, err := r.write(ctx, ws, 1, raw); err != nil {
		return nil, err
	}
	// Two processes may still create a key for one workspace at once (the
	// first sensitive field of a workspace created before encryption, on
	// two API instances): the later record is the one compaction keeps, so
	// both use that one from here on.
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	return r.Key(ctx, ws)
}

func (r *Ring) write(ctx context.Context, ws string, generation int, raw []byte) (*fieldcrypt.DataKey, error) {
	if r.ks == nil {
		return nil, ErrNoKeyService
	}
	w, err := r.ks.Wrap(ctx, raw, wrapAAD(ws, generation))
	if err != nil {
		return nil, err
	}
	v := record{V: recordFormat, Workspace: ws, Generation: generation, MasterKeyID: w.MasterKeyID,
		Wrapped: w.Ciphertext, CreatedAt: time.Now().UTC()}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	if err := r.cl.ProduceSync(ctx, &kgo.Record{Topic: r.topic, Partition: 0, Key: []byte(ws), Value: b}).FirstErr(); err != nil {
		return nil, fmt.Errorf("keyring: write key of %s: %w", ws, err)
	}
	dk, err := fieldcrypt.OpenDataKey(ws, generation, raw)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.keys[ws], r.wrapped[ws] = dk, v
	r.mu.Unlock()
	return dk, nil
}

// Key returns the workspace's data key, reading the topic once more when
// this process has not seen it.
func (r *Ring) Key(ctx context.Context, ws string) (*fieldcrypt.DataKey, error) {
	if k, err, ok := r.cached(ctx, ws); ok {
		return k, err
	}
	if err := r.Refresh(ctx); err != nil {
		return nil, err
	}
	if k, err, ok := r.cached(ctx, ws); ok {
		return k, err
	}
	return nil, ErrNoKey
}

// cached returns the workspace's key if this process has read it,
// unwrapping it the first time.
func (r *Ring) cached(ctx context.Context, ws string) (*fieldcrypt.DataKey, error, bool) {
	for range 3 { // a record replaced while it was unwrapped: unwrap the new one
		r.mu.Lock()
		if r.erased[ws] {
			r.mu.Unlock()
			return nil, ErrErased, true
		}
		k, ok := r.keys[ws]
		v, stored := r.wrapped[ws]
		r.mu.Unlock()
		if ok || !stored {
			return k, nil, ok
		}
		if r.ks == nil {
			return nil, ErrNoKeyService, true
		}
		raw, err := r.ks.Unwrap(ctx, fieldcrypt.Wrapped{MasterKeyID: v.MasterKeyID, Ciphertext: v.Wrapped}, wrapAAD(ws, v.Generation))
		if err != nil {
			return nil, fmt.Errorf("keyring: workspace %s: %w", ws, err), true
		}
		k, err = fieldcrypt.OpenDataKey(ws, v.Generation, raw)
		clear(raw)
		if err != nil {
			return nil, err, true
		}
		r.mu.Lock()
		cur, still := r.wrapped[ws]
		if still && !r.erased[ws] && cur.MasterKeyID == v.MasterKeyID && string(cur.Wrapped) == string(v.Wrapped) {
			r.keys[ws] = k
			r.mu.Unlock()
			return k, nil, true
		}
		r.mu.Unlock()
	}
	return nil, fmt.Errorf("keyring: workspace %s: its key keeps changing", ws), true
}

// Erase destroys the workspace's data key: a tombstone in the topic, which
// compaction makes the key's absence, and the key gone from this process.
func (r *Ring) Erase(ctx context.Context, ws string) error {
	if err := r.cl.ProduceSync(ctx, &kgo.Record{Topic: r.topic, Partition: 0, Key: []byte(ws), Value: nil}).FirstErr(); err != nil {
		return fmt.Errorf("keyring: erase key of %s: %w", ws, err)
	}
	r.forget(ws)
	return nil
}

// forget drops an erased workspace's key from this process, for good.
func (r *Ring) forget(ws string) {
	r.mu.Lock()
	delete(r.keys, ws)
	delete(r.wrapped, ws)
	r.erased[ws] = true
	r.mu.Unlock()
}

// Rewrap writes again, under the key service's current master key, every
// key wrapped by another: master key rotation without rewriting any event.
// Compaction then drops the old wrappings; the old master key may be
// retired once it has (kafka.Config.KeysCompactionLag). It returns how
// many keys it rewrapped.
func (r *Ring) Rewrap(ctx context.Context) (int, error) {
	if r.ks == nil {
		return 0, ErrNoKeyService
	}
	if err := r.Refresh(ctx); err != nil {
		return 0, err
	}
	current := r.ks.Current()
	r.mu.Lock()
	var stale []record
	for _, v := range r.wrapped {
		if v.MasterKeyID != current {
			stale = append(stale, v)
		}
	}
	r.mu.Unlock()
	n := 0
	for _, v := range stale {
		if _, err, _ := r.cached(ctx, v.Workspace); errors.Is(err, ErrErased) {
			continue // erased since: never write its key again
		}
		raw, err := r.ks.Unwrap(ctx, fieldcrypt.Wrapped{MasterKeyID: v.MasterKeyID, Ciphertext: v.Wrapped}, wrapAAD(v.Workspace, v.Generation))
		if err != nil {
			return n, err
		}
		_, err = r.write(ctx, v.Workspace, v.Generation, raw)
		clear(raw)
		if err != nil {
			return n, err
		}
		n++
	}
	return n, nil
}
