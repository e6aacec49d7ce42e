package producers_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/auth"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/producers"
	"github.com/logbook-dev/logbook/schemas"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// The tests read envelopes and write results as JSON, so they compile (and
// fail) against an API without request digests too.

// decidedLog is the log and the commands read model at once: every append
// is decided at once, accepted, and the first outcome per command id is
// kept with the envelope's digest, as decider and projection do.
type decidedLog struct {
	mu       sync.Mutex
	appended []map[string]any
	first    map[string]*schemas.Result
	digest   bool // record the digest in the outcome (false: a row from before digests)
}

func newDecidedLog() *decidedLog {
	return &decidedLog{first: map[string]*schemas.Result{}, digest: true}
}

func (l *decidedLog) Append(_ context.Context, env schemas.CommandEnvelope) error {
	m := asMap(env)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.appended = append(l.appended, m)
	if l.first[env.ID] == nil {
		res := map[string]any{"command_id": env.ID, "command_type": env.Type, "workspace_id": env.WorkspaceID,
			"status": "accepted", "aggregate_id": "agg-1", "decided_at": time.Now().UTC()}
		if l.digest {
			res["request_digest"] = m["request_digest"]
		}
		var r schemas.Result
		raw, _ := json.Marshal(res)
		_ = json.Unmarshal(raw, &r)
		l.first[env.ID] = &r
	}
	return nil
}

func (l *decidedLog) Outcome(_ context.Context, id string) (*schemas.Result, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.first[id], nil
}

func (l *decidedLog) appends() []map[string]any {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]map[string]any(nil), l.appended...)
}

func asMap(v any) map[string]any {
	raw, _ := json.Marshal(v)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

// router mounts the command API for one principal.
func router(cfg producers.Config) http.Handler {
	r := chi.NewRouter()
	r.Use(func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			next.ServeHTTP(w, req.WithContext(auth.WithPrincipal(req.Context(), auth.Principal{ID: "p-1", Role: auth.RoleAdmin})))
		})
	})
	producers.New(cfg).Routes(r)
	return r
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
}

func post(h http.Handler, path, body string, headers ...string) answer {
	req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	a := answer{status: rec.Code, header: rec.Header()}
	_ = json.Unmarshal(rec.Body.Bytes(), &a.body)
	return a
}

func isKeyReused(a answer) bool {
	return a.status == http.StatusUnprocessableEntity && a.header.Get("Content-Type") == "application/problem+json" &&
		a.body["code"] == "idempotency_key_reused" && a.body["field"] == "Idempotency-Key"
}

func TestSameKeyWithAnotherBodyIsRefusedOnceDecided(t *testing.T) {
	l := newDecidedLog()
	h := router(producers.Config{Log: l, Lookup: l, Logger: quiet})
	path := "/v1/workspaces/" + uuid.NewString() + "/tasks"

	first := post(h, path, `{"title":"a","priority":1}`, "Idempotency-Key", "k-1")
	if first.status != http.StatusAccepted || len(l.appends()) != 1 {
		t.Fatalf("first request: %d %v", first.status, first.body)
	}
	d, _ := l.appends()[0]["request_digest"].(string)
	if len(d) != 64 {
		t.Fatalf("the command of a keyed request must carry the request digest, got %q", d)
	}
	// The same request, formatted otherwise: the first outcome, from the
	// read model.
	again := post(h, path, "{ \"priority\" : 1,\n \"title\": \"a\" }", "Idempotency-Key", "k-1")
	if again.status != http.StatusCreated || again.body["command_id"] != first.body["command_id"] || again.body["task_id"] != first.body["task_id"] {
		t.Fatalf("retry: %d %v, want the first outcome of %v", again.status, again.body, first.body)
	}
	// Another body under the same key: refused, and nothing appended.
	for _, body := range []string{`{"title":"b","priority":1}`, `{"title":"a","priority":2}`, `{"title":"a"}`} {
		other := post(h, path, body, "Idempotency-Key", "k-1")
		if !isKeyReused(other) || other.header.Get("X-Command-ID") != first.body["command_id"] {
			t.Fatalf("%s under a used key: %d %v, want 422 idempotency_key_reused", body, other.status, other.body)
		}
	}
	if n := len(l.appends()); n != 1 {
		t.Fatalf("%d commands appended, want 1", n)
	}
	// The same body on another route under the same key is another command.
	if r := post(h, "/v1/workspaces/"+uuid.NewString()+"/tasks", `{"title":"b","priority":1}`, "Idempotency-Key", "k-1"); r.status != http.StatusAccepted {
		t.Fatalf("same key on another route: %d %v", r.status, r.body)
	}
	// Without a key there is no digest to keep.
	post(h, path, `{"title":"a"}`)
	if last := l.appends()[len(l.appends())-1]; last["request_digest"] != nil {
		t.Fatalf("unkeyed command carries a digest: %v", last)
	}
}

func TestOutcomeRecordedBeforeDigestsAnswersAnyRequest(t *testing.T) {
	l := newDecidedLog()
	l.digest = false // the commands row predates request digests
	h := router(producers.Config{Log: l, Lookup: l, Logger: quiet})
	path := "/v1/workspaces/" + uuid.NewString() + "/tasks"
	first := post(h, path, `{"title":"a"}`, "Idempotency-Key", "k-1")
	other := post(h, path, `{"title":"b"}`, "Idempotency-Key", "k-1")
	if other.status != http.StatusCreated || other.body["command_id"] != first.body["command_id"] {
		t.Fatalf("no digest recorded, so no comparison: want the first outcome, got %d %v", other.status, other.body)
	}
}

// racingLog takes two commands under one id and then answers as the decider
// does when both were in flight: the first appended is decided, the second
// is refused with its own digest. It keeps writing both results, in that
// order, so the outcome reader (which starts at the end of the topic) sees
// them whenever it starts.
type racingLog struct {
	cl    *kgo.Client
	topic string

	mu     sync.Mutex
	envs   []map[string]any
	cancel context.CancelFunc
}

func (l *racingLog) Append(_ context.Context, env schemas.CommandEnvelope) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.envs = append(l.envs, asMap(env))
	if len(l.envs) != 2 {
		return nil
	}
	first, second := l.envs[0], l.envs[1]
	results := []map[string]any{
		{"command_id": env.ID, "command_type": env.Type, "workspace_id": env.WorkspaceID, "status": "accepted",
			"aggregate_id": "agg-1", "decided_at": time.Now().UTC(), "request_digest": first["request_digest"]},
		{"command_id": env.ID, "command_type": env.Type, "workspace_id": env.WorkspaceID, "status": "rejected",
			"code": "idempotency_key_reused", "field": "Idempotency-Key", "reason": "reused",
			"decided_at": time.Now().UTC(), "request_digest": second["request_digest"]},
	}
	ctx, cancel := context.WithCancel(context.Background())
	l.cancel = cancel
	go func() {
		for ctx.Err() == nil {
			for _, res := range results {
				val, _ := json.Marshal(res)
				l.cl.ProduceSync(ctx, &kgo.Record{Topic: l.topic, Key: []byte(env.WorkspaceID), Value: val,
					Headers: []kgo.RecordHeader{{Key: schemas.HeaderCommandID, Value: []byte(env.ID)}}})
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
	return nil
}

func (l *racingLog) firstTitle() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	p, _ := l.envs[0]["payload"].(map[string]any)
	s, _ := p["title"].(string)
	return s
}

func TestWaitingRequestsGetTheOutcomeOfTheirOwnRequest(t *testing.T) {
	cfg := kafkatest.Config(t, 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := kafka.EnsureTopics(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	outcomes, err := producers.NewOutcomes(cfg, quiet)
	if err != nil {
		t.Fatal(err)
	}
	defer outcomes.Close()
	go outcomes.Run(ctx)
	l := &racingLog{cl: cl, topic: cfg.Topics().Results}
	defer func() {
		l.mu.Lock()
		if l.cancel != nil {
			l.cancel()
		}
		l.mu.Unlock()
	}()
	h := router(producers.Config{Log: l, Watcher: outcomes, Logger: quiet})

	path := "/v1/workspaces/" + uuid.NewString() + "/tasks"
	titles := []string{"a", "b"}
	answers := make([]answer, 2)
	var wg sync.WaitGroup
	for i, title := range titles {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers[i] = post(h, path, `{"title":"`+title+`"}`, "Idempotency-Key", "k-1", "Prefer", "wait=10")
		}()
	}
	wg.Wait()
	winner := l.firstTitle()
	for i, a := range answers {
		if titles[i] == winner {
			if a.status != http.StatusCreated {
				t.Errorf("the request decided first (%s): %d %v, want 201", titles[i], a.status, a.body)
			}
		} else if !isKeyReused(a) {
			t.Errorf("the other request under the key (%s): %d %v, want 422 idempotency_key_reused", titles[i], a.status, a.body)
		}
	}
}
