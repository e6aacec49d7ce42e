package main_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// fleet is the load of the crash-loop tests: concurrent clients creating
// workspaces, then tasks in them, on whichever process serves now. Every
// request carries its own Idempotency-Key and is retried with it until it is
// acknowledged (200/201/202 with a command id). Errors while no process
// serves are expected and acknowledge nothing. It only targets the loopback
// URLs the test gives it.
type fleet struct {
	key     string
	spaces  int           // workspaces to create in all
	workers int           // concurrent clients
	pause   time.Duration // between two task commands of one client: bounds the rate
	seed    uint64
	http    *http.Client
	url     atomic.Pointer[string]

	mu         sync.Mutex
	acked      map[string]ackedCommand // command id → what it was
	unexpected []string                // answers other than an acknowledgement, 429 or 503

	acks, sent, unreachable, refused atomic.Int64
	last                             atomic.Pointer[string] // the latest acknowledged command id
}

type ackedCommand struct {
	kind      string // "workspace" or "task"
	workspace string
	entity    string // the workspace's or the task's id
}

func newFleet(key string, spaces, workers int, seed uint64) *fleet {
	return &fleet{key: key, spaces: spaces, workers: workers, pause: 40 * time.Millisecond, seed: seed,
		acked: map[string]ackedCommand{},
		http: &http.Client{Timeout: 20 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: workers}}}
}

// serve points the clients at a new process.
func (f *fleet) serve(url string) { f.url.Store(&url) }

// run sends until ctx ends; in-flight requests are abandoned unacknowledged.
func (f *fleet) run(ctx context.Context) {
	var wg sync.WaitGroup
	for w := 0; w < f.workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			f.client(ctx, w)
		}()
	}
	wg.Wait()
	f.http.CloseIdleConnections()
}

// client w creates workspaces w, w+workers, … (one every tenth command) and
// tasks in the workspaces it created.
func (f *fleet) client(ctx context.Context, w int) {
	rng := rand.New(rand.NewPCG(f.seed, uint64(w)))
	var mine []string
	nextWS := w
	for n := 0; ctx.Err() == nil; n++ {
		if nextWS < f.spaces && (len(mine) == 0 || n%10 == 0) {
			a, ok := f.send(ctx, "workspace", "", "/v1/workspaces", fmt.Sprintf("crash-ws-%d", nextWS),
				map[string]any{"name": fmt.Sprintf("crash-%d", nextWS)}, "wait=5")
			if ok {
				mine = append(mine, a.entity)
			}
			if ok || ctx.Err() == nil {
				nextWS += f.workers // acknowledged, or answered for good
			}
			continue
		}
		if len(mine) == 0 {
			return // more clients than workspaces
		}
		ws := mine[rng.IntN(len(mine))]
		prefer := ""
		if n%5 == 0 {
			prefer = "wait=2"
		}
		f.send(ctx, "task", ws, "/v1/workspaces/"+ws+"/tasks", fmt.Sprintf("crash-task-%d-%d", w, n),
			map[string]any{"title": fmt.Sprintf("crash %d-%d", w, n), "input": "x", "priority": n % 10}, prefer)
		sleepCtx(ctx, f.pause)
	}
}

// send posts until the command is acknowledged, refused for good, or ctx ends.
func (f *fleet) send(ctx context.Context, kind, ws, path, key string, body any, prefer string) (ackedCommand, bool) {
	raw, _ := json.Marshal(body)
	for ctx.Err() == nil {
		f.sent.Add(1)
		status, out, err := f.post(ctx, path, key, raw, prefer)
		id, _ := out["command_id"].(string)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				f.unreachable.Add(1)
				sleepCtx(ctx, 100*time.Millisecond)
			}
		case (status == 200 || status == 201 || status == 202) && id != "":
			a := ackedCommand{kind: kind, workspace: ws}
			if kind == "workspace" {
				a.workspace, _ = out["workspace_id"].(string)
				a.entity = a.workspace
			} else {
				a.entity, _ = out["task_id"].(string)
			}
			f.mu.Lock()
			f.acked[id] = a
			f.mu.Unlock()
			f.acks.Add(1)
			f.last.Store(&id)
			return a, true
		case status == 429 || status == 503:
			f.refused.Add(1)
			sleepCtx(ctx, 200*time.Millisecond)
		default:
			// Every command the fleet sends is valid: any other answer is
			// recorded for the checks, and retrying would get it again.
			f.mu.Lock()
			f.unexpected = append(f.unexpected, fmt.Sprintf("POST %s (key %s): %d %v", path, key, status, out))
			f.mu.Unlock()
			return ackedCommand{}, false
		}
	}
	return ackedCommand{}, false
}

func (f *fleet) post(ctx context.Context, path, key string, body []byte, prefer string) (int, map[string]any, error) {
	req, err := http.NewRequestWithContext(ctx, "POST", *f.url.Load()+path, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+f.key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	resp, err := f.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return 0, nil, err // cut off mid-answer: not an acknowledgement
	}
	return resp.StatusCode, out, nil
}

// decided reports whether the serving process shows an outcome for id.
func (f *fleet) decided(id string) bool {
	req, err := http.NewRequest("GET", *f.url.Load()+"/v1/commands/"+id, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Authorization", "Bearer "+f.key)
	resp, err := f.http.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var out struct {
		Status string `json:"status"`
	}
	return resp.StatusCode == 200 && json.NewDecoder(resp.Body).Decode(&out) == nil && out.Status != "pending"
}

// snapshot copies what was acknowledged and the unexpected answers.
func (f *fleet) snapshot() (map[string]ackedCommand, []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	acked := make(map[string]ackedCommand, len(f.acked))
	for k, v := range f.acked {
		acked[k] = v
	}
	return acked, append([]string(nil), f.unexpected...)
}

func sleepCtx(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
