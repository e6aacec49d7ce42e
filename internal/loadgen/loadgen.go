package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Config is one run.
type Config struct {
	URL, Key   string
	Workspaces int
	// Commands stops the run once this many commands were sent; Duration
	// once it has lasted this long. At least one is set; both may be.
	Commands int
	Duration time.Duration
	// Concurrency is the number of clients of a closed loop, or the cap on
	// requests in flight of an open loop.
	Concurrency int
	// Rate, when set, makes the loop open: commands start at this rate per
	// second whatever the answers, and latency counts from the moment each
	// was due, so a slow server cannot hide its queueing.
	Rate       float64
	Mix        Mix
	InputBytes int
	// Retries bounds the attempts after a 429/503 (which wait Retry-After)
	// or a failed connection; the Idempotency-Key stays the same, so a
	// retry never makes a second command.
	Retries int
	Seed    uint64
	// Drain bounds the wait, after the last command, for every workspace's
	// last acknowledged command to be visible in the read models.
	Drain time.Duration
	// HTTP is the client; nil for one sized to Concurrency.
	HTTP *http.Client
	// Progress receives a line a second while the run lasts; nil for none.
	Progress io.Writer
	// Lag samples consumer lag by group once a second; nil to sample the
	// decider's from /v1/status.
	Lag func(context.Context) (map[string]int64, error)
	// Reuse, when set, is the run's workspaces (a past run's), created
	// before: Workspaces is its length and the run creates none.
	Reuse []string
}

func (c *Config) validate() error {
	if len(c.Reuse) > 0 {
		c.Workspaces = len(c.Reuse)
	}
	switch {
	case c.URL == "" || c.Key == "":
		return errors.New("a URL and an API key are required")
	case c.Workspaces < 1 || c.Workspaces > 1_000_000:
		return errors.New("workspaces must be 1..1000000")
	case c.Commands < 0 || c.Duration < 0 || (c.Commands == 0 && c.Duration == 0):
		return errors.New("set a number of commands, a duration, or both")
	case c.Concurrency < 1 || c.Concurrency > 4096:
		return errors.New("concurrency must be 1..4096")
	case c.Rate < 0 || c.Rate > 1_000_000:
		return errors.New("rate must be 0 (closed loop) up to 1000000 commands/s")
	case c.Retries < 0 || c.Retries > 100:
		return errors.New("retries must be 0..100")
	case c.Mix.total == 0:
		return errors.New("a mix is required")
	}
	if c.Drain <= 0 {
		c.Drain = 2 * time.Minute
	}
	if c.HTTP == nil {
		c.HTTP = &http.Client{Timeout: 30 * time.Second,
			Transport: &http.Transport{MaxIdleConnsPerHost: c.Concurrency, MaxIdleConns: c.Concurrency}}
	}
	return nil
}

// Acked is a command the server acknowledged (2xx with a command id): the
// checker follows each to its outcome.
type Acked struct {
	ID        string `json:"id"`
	Op        Op     `json:"op,omitempty"` // "" for the set-up commands (workspace create, member add)
	Workspace string `json:"workspace"`
	Task      string `json:"task,omitempty"`
}

// runner holds one run's state.
type runner struct {
	cfg    Config
	runID  string
	member string
	input  string
	spaces []*space
	stats  *stats

	ackMu sync.Mutex
	acked []Acked

	sent atomic.Int64 // commands begun, for the Commands bound
}

// Run sends the load, waits for it to reach the read models, and returns
// the figures. The caller checks the outcome with Check.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	r := &runner{cfg: cfg, runID: uuid.NewString()[:8],
		input: strings.Repeat("lorem ipsum ", cfg.InputBytes/12+1)[:cfg.InputBytes]}
	r.member = "loadgen-" + r.runID
	res := &Result{Format: ReportFormat, Config: reportConfig(cfg), RunID: r.runID}

	t0 := time.Now()
	if err := r.setup(ctx); err != nil {
		return nil, err
	}
	res.SetupSeconds = time.Since(t0).Seconds()

	r.stats = newStats()
	sampler, samplerDone := r.sample(ctx)
	start := time.Now()
	if cfg.Rate > 0 {
		r.openLoop(ctx, start)
	} else {
		r.closedLoop(ctx, start)
	}
	sent := time.Since(start)
	lastAcked := r.lastPerSpace()
	drainErr := r.drain(ctx, lastAcked)
	e2e := time.Since(start)
	sampler()
	<-samplerDone

	r.stats.fill(res, sent, e2e)
	res.Timeline = r.stats.timeline
	res.Workspaces = make([]string, len(r.spaces))
	for i, s := range r.spaces {
		res.Workspaces[i] = s.id
	}
	res.History = r.acked
	if drainErr != nil {
		res.DrainError = drainErr.Error()
	}
	return res, nil
}

// setup creates the run's workspaces, and a member to assign tasks to when
// the mix assigns, each acknowledged and decided before the load begins.
func (r *runner) setup(ctx context.Context) error {
	r.spaces = make([]*space, r.cfg.Workspaces)
	var (
		next    atomic.Int64
		errOnce sync.Once
		first   error
		failed  atomic.Bool
		wg      sync.WaitGroup
	)
	fail := func(err error) { errOnce.Do(func() { first = err; failed.Store(true) }) }
	for range min(r.cfg.Concurrency, 256, r.cfg.Workspaces) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil && !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(r.spaces) {
					return
				}
				if i < len(r.cfg.Reuse) {
					r.spaces[i] = &space{id: r.cfg.Reuse[i]}
				} else {
					a, err := r.setupCommand(ctx, "/v1/workspaces", fmt.Sprintf("%s-ws-%d", r.runID, i),
						map[string]any{"name": fmt.Sprintf("load %s %d", r.runID, i)})
					if err != nil {
						fail(fmt.Errorf("create workspace %d: %w", i, err))
						return
					}
					r.spaces[i] = &space{id: a.Workspace}
				}
				if !r.cfg.Mix.needsMember() {
					continue
				}
				ws := r.spaces[i].id
				if _, err := r.setupCommand(ctx, "/v1/workspaces/"+ws+"/members", fmt.Sprintf("%s-member-%d", r.runID, i),
					map[string]any{"principal_id": r.member, "role": "writer"}); err != nil {
					fail(fmt.Errorf("add a member to workspace %s: %w", ws, err))
					return
				}
			}
		}()
	}
	wg.Wait()
	if first != nil {
		return first
	}
	return ctx.Err()
}

// setupRetries is the least number of retries of a set-up command: the
// load cannot start without its workspaces.
const setupRetries = 20

// setupCommand sends one set-up command and waits for its outcome.
func (r *runner) setupCommand(ctx context.Context, path, key string, body map[string]any) (Acked, error) {
	raw, _ := json.Marshal(body)
	for attempt := 0; ; attempt++ {
		ans, err := r.post(ctx, path, key, raw, "wait=30")
		switch {
		case err == nil && ans.acknowledged():
			ws := ans.Workspace
			if ws == "" {
				ws = strings.Split(strings.TrimPrefix(path, "/v1/workspaces/"), "/")[0]
			}
			if ans.Status != "" && ans.Status != "accepted" {
				return Acked{}, fmt.Errorf("%s: %s", ans.Status, ans.Raw)
			}
			a := Acked{ID: ans.CommandID, Workspace: ws}
			r.ackMu.Lock()
			r.acked = append(r.acked, a)
			r.ackMu.Unlock()
			return a, nil
		case attempt >= max(r.cfg.Retries, setupRetries):
			if err != nil {
				return Acked{}, err
			}
			return Acked{}, fmt.Errorf("HTTP %d: %s", ans.Code, ans.Raw)
		case err != nil:
			sleep(ctx, backoff(attempt))
		case ans.Code == http.StatusTooManyRequests || ans.Code == http.StatusServiceUnavailable:
			sleep(ctx, ans.RetryAfter)
		default:
			return Acked{}, fmt.Errorf("HTTP %d: %s", ans.Code, ans.Raw)
		}
	}
}

// closedLoop runs Concurrency clients, each sending its next command when
// the last one is answered.
func (r *runner) closedLoop(ctx context.Context, start time.Time) {
	sending, cancel := r.bound(ctx, start)
	defer cancel()
	var wg sync.WaitGroup
	for w := range r.cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(r.cfg.Seed, uint64(w)))
			for sending.Err() == nil {
				n, ok := r.take()
				if !ok {
					return
				}
				r.one(ctx, rng, n, time.Now())
			}
		}()
	}
	wg.Wait()
}

// openLoop starts commands at Rate per second. A command due while
// Concurrency are in flight is not sent and is counted as dropped by the
// client: the server is not keeping up.
func (r *runner) openLoop(ctx context.Context, start time.Time) {
	sending, cancel := r.bound(ctx, start)
	defer cancel()
	interval := time.Duration(float64(time.Second) / r.cfg.Rate)
	slots := make(chan struct{}, r.cfg.Concurrency)
	rng := rand.New(rand.NewPCG(r.cfg.Seed, 0))
	var wg sync.WaitGroup
	for i := int64(0); sending.Err() == nil; i++ {
		due := start.Add(time.Duration(i) * interval)
		if d := time.Until(due); d > 0 && !sleep(sending, d) {
			break
		}
		n, ok := r.take()
		if !ok {
			break
		}
		select {
		case slots <- struct{}{}:
		default:
			r.stats.dropped.Add(1)
			continue
		}
		seed := rng.Uint64()
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			r.one(ctx, rand.New(rand.NewPCG(seed, uint64(n))), n, due)
		}()
	}
	wg.Wait()
}

// bound stops the start of new commands after Duration, when set; those in
// flight still get their answer.
func (r *runner) bound(ctx context.Context, start time.Time) (context.Context, context.CancelFunc) {
	if r.cfg.Duration > 0 {
		return context.WithDeadline(ctx, start.Add(r.cfg.Duration))
	}
	return context.WithCancel(ctx)
}

// take numbers the next command, false once Commands were sent.
func (r *runner) take() (uint64, bool) {
	n := r.sent.Add(1)
	if r.cfg.Commands > 0 && n > int64(r.cfg.Commands) {
		return 0, false
	}
	return uint64(n - 1), true
}

// one plans, sends and accounts for one command due at due.
func (r *runner) one(ctx context.Context, rng *rand.Rand, n uint64, due time.Time) {
	c := pickSpace(r.spaces, rng).plan(r.cfg.Mix.pick(rng), r.member, r.input, n)
	raw, _ := json.Marshal(c.body)
	key := fmt.Sprintf("%s-%d", r.runID, n)
	r.stats.sent(c.op)
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		ans, err := r.post(ctx, c.path, key, raw, "")
		switch {
		case err == nil && ans.acknowledged():
			r.stats.acknowledged(c.op, time.Since(t0), time.Since(due))
			task := c.task
			if c.op == OpCreate {
				task = ans.Task
			}
			r.ackMu.Lock()
			r.acked = append(r.acked, Acked{ID: ans.CommandID, Op: c.op, Workspace: c.ws.id, Task: task})
			r.ackMu.Unlock()
			c.ws.settle(c, ans.Task)
			return
		case ctx.Err() != nil:
			r.stats.abandoned.Add(1) // the run ended with it in flight
			return
		case attempt >= r.cfg.Retries:
			if err != nil {
				r.stats.failed(c.op, err.Error())
			} else if ans.Code == http.StatusTooManyRequests || ans.Code == http.StatusServiceUnavailable {
				r.stats.refused(c.op)
			} else {
				r.stats.failed(c.op, fmt.Sprintf("%s %s: HTTP %d %s", "POST", c.path, ans.Code, ans.Raw))
			}
			return
		case err != nil:
			r.stats.retried.Add(1)
			sleep(ctx, backoff(attempt))
		case ans.Code == http.StatusTooManyRequests || ans.Code == http.StatusServiceUnavailable:
			r.stats.throttled(ans.Code)
			sleep(ctx, jitter(ans.RetryAfter, rng))
		default:
			// Every command of the mix is valid in the state loadgen
			// tracks: another answer is a finding, and sending it again
			// would get it again.
			r.stats.failed(c.op, fmt.Sprintf("POST %s: HTTP %d %s", c.path, ans.Code, ans.Raw))
			return
		}
	}
}

// answer is what loadgen reads of a response.
type answer struct {
	Code       int
	RetryAfter time.Duration
	CommandID  string `json:"command_id"`
	Workspace  string `json:"workspace_id"`
	Task       string `json:"task_id"`
	Status     string `json:"status"`
	Raw        string
}

func (a answer) acknowledged() bool { return a.Code >= 200 && a.Code < 300 && a.CommandID != "" }

// maxRetryAfter caps a server's Retry-After, so a run always ends.
const maxRetryAfter = 10 * time.Second

func (r *runner) post(ctx context.Context, path, key string, body []byte, prefer string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.cfg.URL+path, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+r.cfg.Key)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Idempotency-Key", key)
	if prefer != "" {
		req.Header.Set("Prefer", prefer)
	}
	resp, err := r.cfg.HTTP.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return answer{}, err // cut off mid-answer: not an acknowledgement
	}
	a := answer{}
	_ = json.Unmarshal(raw, &a)
	a.Code = resp.StatusCode
	a.Raw = truncate(string(raw), 300)
	a.RetryAfter = time.Second
	if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s >= 0 {
		a.RetryAfter = min(time.Duration(s)*time.Second, maxRetryAfter)
	}
	return a, nil
}

// lastPerSpace is each workspace's last acknowledged command.
func (r *runner) lastPerSpace() map[string]string {
	r.ackMu.Lock()
	defer r.ackMu.Unlock()
	last := map[string]string{}
	for _, a := range r.acked {
		last[a.Workspace] = a.ID
	}
	return last
}

// drain waits until each workspace's last acknowledged command is decided
// and its events are in the read models.
func (r *runner) drain(ctx context.Context, last map[string]string) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Drain)
	defer cancel()
	type job struct{ ws, id string }
	jobs := make(chan job)
	var (
		wg      sync.WaitGroup
		errOnce sync.Once
		first   error
	)
	for range min(32, max(1, len(last))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				if err := r.awaitVisible(ctx, j.ws, j.id); err != nil {
					errOnce.Do(func() { first = err; cancel() })
				}
			}
		}()
	}
	for ws, id := range last {
		if ctx.Err() != nil {
			break
		}
		jobs <- job{ws, id}
	}
	close(jobs)
	wg.Wait()
	return first
}

// awaitVisible polls the command's outcome, then the workspace, until the
// workspace shows the command's last event.
func (r *runner) awaitVisible(ctx context.Context, ws, id string) error {
	var seq float64
	for {
		var out struct {
			Status string `json:"status"`
			Events []struct {
				Seq float64 `json:"seq"`
			} `json:"events"`
		}
		code, err := r.get(ctx, "/v1/commands/"+id, &out)
		if err == nil && code == http.StatusOK && out.Status != "" {
			for _, e := range out.Events {
				seq = max(seq, e.Seq)
			}
			break
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return fmt.Errorf("command %s of workspace %s: no outcome in time", id, ws)
		}
	}
	for {
		var out struct {
			LastSeq float64 `json:"last_seq"`
		}
		code, err := r.get(ctx, "/v1/workspaces/"+ws, &out)
		if err == nil && code == http.StatusOK && out.LastSeq >= seq {
			return nil
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return fmt.Errorf("workspace %s: seq %.0f not in the read models in time", ws, seq)
		}
	}
}

func (r *runner) get(ctx context.Context, path string, into any) (int, error) {
	return getJSON(ctx, r.cfg.HTTP, r.cfg.URL+path, r.cfg.Key, into)
}

// sample records a timeline sample and a progress line every second until
// the returned stop is called; done closes after the last sample.
func (r *runner) sample(ctx context.Context) (stop func(), done <-chan struct{}) {
	ctx, cancel := context.WithCancel(ctx)
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				r.stats.tick(r.lag(context.Background()), r.cfg.Progress)
				return
			case <-tick.C:
				r.stats.tick(r.lag(ctx), r.cfg.Progress)
			}
		}
	}()
	return cancel, ch
}

// lag samples consumer lag within a short bound; nil when it cannot.
func (r *runner) lag(ctx context.Context) map[string]int64 {
	ctx, cancel := context.WithTimeout(ctx, 800*time.Millisecond)
	defer cancel()
	if r.cfg.Lag != nil {
		l, err := r.cfg.Lag(ctx)
		if err != nil {
			return nil
		}
		return l
	}
	var st struct {
		Decider struct {
			Lag *int64 `json:"lag"`
		} `json:"decider"`
	}
	if code, err := r.get(ctx, "/v1/status", &st); err != nil || code != http.StatusOK || st.Decider.Lag == nil {
		return nil
	}
	return map[string]int64{"decider": *st.Decider.Lag}
}

func backoff(attempt int) time.Duration {
	return min(100*time.Millisecond<<min(attempt, 6), 5*time.Second)
}

// jitter spreads retries of many clients over ±20% of d.
func jitter(d time.Duration, rng *rand.Rand) time.Duration {
	return d - d/5 + time.Duration(rng.Int64N(int64(d/5*2)+1))
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
