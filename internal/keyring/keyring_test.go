package keyring_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/keyring"
)

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func masterKeys(t *testing.T, lines ...string) *fieldcrypt.Local {
	t.Helper()
	l, err := fieldcrypt.ParseMasterKeys(strings.Join(lines, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func newKey(t *testing.T, id string) string {
	t.Helper()
	k, err := fieldcrypt.NewMasterKey(id)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func setup(t *testing.T) kafka.Config {
	t.Helper()
	cfg := kafkatest.Config(t, 1)
	if err := kafka.EnsureTopics(ctxFor(t), cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func open(t *testing.T, cfg kafka.Config, ks fieldcrypt.KeyService) *keyring.Ring {
	t.Helper()
	r, err := keyring.Open(ctxFor(t), cfg, ks)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.Close)
	return r
}

// The topic plus the master key is all another process (or a rebuild
// after losing every database) needs to open what a key sealed.
func TestKeysComeBackFromTheLog(t *testing.T) {
	cfg := setup(t)
	mk := masterKeys(t, newKey(t, "m1"))
	a := open(t, cfg, mk)
	k, err := a.Create(ctxFor(t), "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := k.Seal("task/t1/input", "MARKER secret")
	if err != nil {
		t.Fatal(err)
	}
	if again, err := a.Create(ctxFor(t), "ws-1"); err != nil || again.Generation != 1 {
		t.Fatalf("second Create: %v", err)
	}

	b := open(t, cfg, mk) // a fresh process
	kb, err := b.Key(ctxFor(t), "ws-1")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := kb.Open("task/t1/input", sealed); err != nil || got != "MARKER secret" {
		t.Fatalf("open in another process: %q %v", got, err)
	}
	// Created after b opened: a miss reads the topic again.
	if _, err := a.Create(ctxFor(t), "ws-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Key(ctxFor(t), "ws-2"); err != nil {
		t.Fatalf("a key written after Open: %v", err)
	}
	if _, err := b.Key(ctxFor(t), "ws-none"); !errors.Is(err, keyring.ErrNoKey) {
		t.Fatalf("unknown workspace: %v", err)
	}

	// The topic holds the key wrapped, never in clear.
	raw := readAll(t, cfg)
	for _, r := range raw {
		if strings.Contains(string(r.Value), "MARKER") {
			t.Fatal("plaintext in the keys topic")
		}
	}
	wrong := open(t, cfg, masterKeys(t, newKey(t, "other")))
	if _, err := wrong.Key(ctxFor(t), "ws-1"); !errors.Is(err, fieldcrypt.ErrUnknownMasterKey) {
		t.Fatalf("a key read with the wrong master key: %v", err)
	}
}

// Erasing destroys the key everywhere: this process at once, another at
// its next read, and no Create brings it back.
func TestEraseIsFinal(t *testing.T) {
	cfg := setup(t)
	mk := masterKeys(t, newKey(t, "m1"))
	a, b := open(t, cfg, mk), open(t, cfg, mk)
	if _, err := a.Create(ctxFor(t), "ws"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Key(ctxFor(t), "ws"); err != nil {
		t.Fatal(err)
	}
	if err := a.Erase(ctxFor(t), "ws"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Key(ctxFor(t), "ws"); !errors.Is(err, keyring.ErrErased) {
		t.Fatalf("after erase: %v", err)
	}
	if err := b.Refresh(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Key(ctxFor(t), "ws"); !errors.Is(err, keyring.ErrErased) {
		t.Fatalf("another process after its refresh: %v", err)
	}
	if _, err := a.Create(ctxFor(t), "ws"); !errors.Is(err, keyring.ErrErased) {
		t.Fatalf("Create after erase: %v", err)
	}
	// A key record written after the tombstone (a rotation racing the
	// erase) is not used and is erased again.
	v, _ := json.Marshal(map[string]any{"v": 1, "workspace": "ws", "generation": 1, "master_key_id": "m1", "wrapped": []byte("x")})
	produce(t, cfg, &kgo.Record{Key: []byte("ws"), Value: v})
	if err := b.Refresh(ctxFor(t)); err != nil {
		t.Fatal(err)
	}
	recs := readAll(t, cfg)
	if last := recs[len(recs)-1]; string(last.Key) != "ws" || last.Value != nil {
		t.Fatalf("the revived key was not erased again: last record %q=%q", last.Key, last.Value)
	}
	if _, err := open(t, cfg, mk).Key(ctxFor(t), "ws"); !errors.Is(err, keyring.ErrErased) {
		t.Fatalf("a fresh process: %v", err)
	}
}

// Rotating the master key rewraps every data key under the new one, so the
// old one can be retired; no event is rewritten.
func TestMasterKeyRotation(t *testing.T) {
	cfg := setup(t)
	old, cur := newKey(t, "2026-01"), newKey(t, "2026-06")
	a := open(t, cfg, masterKeys(t, old))
	var sealed []string
	for _, ws := range []string{"w1", "w2", "w3"} {
		k, err := a.Create(ctxFor(t), ws)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := k.Seal("f", ws+" data")
		sealed = append(sealed, s)
	}
	if err := a.Erase(ctxFor(t), "w3"); err != nil {
		t.Fatal(err)
	}
	b := open(t, cfg, masterKeys(t, cur, old))
	n, err := b.Rewrap(ctxFor(t))
	if err != nil || n != 2 {
		t.Fatalf("rewrapped %d (want 2: the erased one stays erased): %v", n, err)
	}
	if n, err := b.Rewrap(ctxFor(t)); err != nil || n != 0 {
		t.Fatalf("second rewrap: %d %v", n, err)
	}
	// Retire the old key: a process holding only the new one reads all.
	c := open(t, cfg, masterKeys(t, cur))
	for i, ws := range []string{"w1", "w2"} {
		k, err := c.Key(ctxFor(t), ws)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := k.Open("f", sealed[i]); err != nil || got != ws+" data" {
			t.Fatalf("%s after rotation: %q %v", ws, got, err)
		}
	}
	if _, err := c.Key(ctxFor(t), "w3"); !errors.Is(err, keyring.ErrErased) {
		t.Fatalf("w3: %v", err)
	}
}

// A record of a later format is refused, not read as a guess.
func TestLaterRecordFormatIsRefused(t *testing.T) {
	cfg := setup(t)
	v, _ := json.Marshal(map[string]any{"v": 2, "workspace": "ws"})
	produce(t, cfg, &kgo.Record{Key: []byte("ws"), Value: v})
	_, err := keyring.Open(ctxFor(t), cfg, masterKeys(t, newKey(t, "m")))
	if err == nil || !strings.Contains(err.Error(), "format 2") {
		t.Fatalf("got %v", err)
	}
}

func produce(t *testing.T, cfg kafka.Config, r *kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	r.Topic = cfg.Topics().Keys
	if err := cl.ProduceSync(ctxFor(t), r).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func readAll(t *testing.T, cfg kafka.Config) []*kgo.Record {
	t.Helper()
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var out []*kgo.Record
	err = kafka.ReadToEnd(ctxFor(t), cl, cfg.Topics().Keys, map[int32]int64{0: 0}, func(r *kgo.Record) error {
		out = append(out, r)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// An erased key leaves the topic itself within the documented bound
// (about twice KeysCompactionLag: a roll marker closes the segment once the
// topic has been quiet for the lag, then the cleaner drops the superseded
// record); shortened here to seconds.
func TestErasedKeyLeavesTheLog(t *testing.T) {
	cfg := kafkatest.Config(t, 1)
	if !kafkatest.Real() {
		// kfake compacts every log.cleaner.backoff.ms, an hour unless set;
		// Kafka's default is 15s.
		c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.BrokerConfigs(map[string]string{"log.cleaner.backoff.ms": "1000"}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(c.Close)
		cfg.Brokers = c.ListenAddrs()
	}
	cfg.KeysCompactionLag = 2 * time.Second
	if err := kafka.EnsureTopics(ctxFor(t), cfg); err != nil {
		t.Fatal(err)
	}
	mk := masterKeys(t, newKey(t, "m1"))
	r := open(t, cfg, mk)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go r.Run(ctx)
	if _, err := r.Create(ctxFor(t), "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create(ctxFor(t), "gone"); err != nil {
		t.Fatal(err)
	}
	if err := r.Erase(ctxFor(t), "gone"); err != nil {
		t.Fatal(err)
	}
	erased := time.Now()
	deadline := erased.Add(2 * time.Minute)
	for {
		keyLeft, keepLeft := false, false
		for _, rec := range readAll(t, cfg) {
			keyLeft = keyLeft || (string(rec.Key) == "gone" && rec.Value != nil)
			keepLeft = keepLeft || (string(rec.Key) == "keep" && rec.Value != nil)
		}
		if !keepLeft {
			t.Fatal("compaction dropped a live workspace's key")
		}
		if !keyLeft {
			t.Logf("erased key gone from the topic after %v", time.Since(erased).Round(time.Second))
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the erased key is still in the topic after 2 minutes")
		}
		time.Sleep(time.Second)
	}
	// What remains still reads: the live key, the erasure.
	fresh := open(t, cfg, mk)
	if _, err := fresh.Key(ctxFor(t), "keep"); err != nil {
		t.Fatal(err)
	}
	if _, err := fresh.Key(ctxFor(t), "gone"); err == nil {
		t.Fatal("the erased workspace has a key")
	}
}
