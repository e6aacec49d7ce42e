package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pgtest"
	"github.com/logbook-dev/logbook/internal/signing"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "logbook-e2e-")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "logbook")
	out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build logbook: %v\n%s", err, out)
		os.Exit(1)
	}
	code := pgtest.Run(m)
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running logbook process.
type proc struct {
	t   testing.TB
	cmd *exec.Cmd
	URL string
	// Metrics is the LOGBOOK_METRICS_ADDR listener's base URL, if set.
	Metrics string
	Key     string
	Kafka   string
	stderr  *lockedBuffer
	done    chan struct{}
	err     error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// start runs `logbook args...` and waits for it to print "ready".
func start(t testing.TB, env []string, args ...string) *proc {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &proc{t: t, cmd: cmd, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.kill() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "http: "):
				p.URL = strings.TrimPrefix(line, "http: ")
			case strings.HasPrefix(line, "metrics: "):
				p.Metrics = strings.TrimPrefix(line, "metrics: ")
			case strings.HasPrefix(line, "kafka: "):
				p.Kafka = strings.TrimPrefix(line, "kafka: ")
			case strings.HasPrefix(line, "admin key (shown once, keep it): "):
				p.Key = strings.TrimPrefix(line, "admin key (shown once, keep it): ")
			case line == "ready":
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-p.done:
		t.Fatalf("logbook %v exited before ready: %v\n%s", args, p.err, p.stderr.String())
	case <-time.After(90 * time.Second):
		t.Fatalf("logbook %v not ready after 90s\n%s", args, p.stderr.String())
	}
	return p
}

// stop sends SIGTERM and expects a clean exit.
func (p *proc) stop() {
	p.t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		if p.err != nil {
			p.t.Fatalf("logbook exited uncleanly: %v\n%s", p.err, p.stderr.String())
		}
	case <-time.After(60 * time.Second):
		p.t.Fatalf("logbook did not stop within 60s\n%s", p.stderr.String())
	}
}

func (p *proc) kill() {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// client talks HTTP to logbook as a user would.
type client struct {
	t    testing.TB
	base string
	key  string
	http *http.Client
}

func newClient(t testing.TB, base, key string) *client {
	return &client{t: t, base: base, key: key, http: &http.Client{Timeout: 60 * time.Second,
		Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
}

type response struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    []byte
}

func (r response) str(k string) string { s, _ := r.Body[k].(string); return s }

func (c *client) do(method, path string, body any, headers ...string) response {
	c.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, _ := json.Marshal(b)
		rd = bytes.NewReader(raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		c.t.Errorf("%s %s: %v", method, path, err)
		return response{}
	}
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		// Errorf, not Fatalf: do runs on worker goroutines too.
		c.t.Errorf("%s %s: %v", method, path, err)
		return response{}
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	out := response{Status: resp.StatusCode, Header: resp.Header, Raw: raw}
	_ = json.Unmarshal(raw, &out.Body)
	if resp.StatusCode >= 500 && resp.StatusCode != 503 {
		c.t.Errorf("%s %s answered %d: %s", method, path, resp.StatusCode, raw)
	}
	return out
}

// must asserts a status.
func (c *client) must(want int, method, path string, body any, headers ...string) response {
	c.t.Helper()
	r := c.do(method, path, body, headers...)
	if r.Status != want {
		c.t.Fatalf("%s %s = %d, want %d: %s", method, path, r.Status, want, r.Raw)
	}
	return r
}

const wait = "Prefer"

// eventually polls cond until it holds or the deadline passes.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// parallel runs fn(i) for i in [0,n) on `workers` goroutines.
func parallel(n, workers int, fn func(i int)) {
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	// A worker whose fn called t.FailNow is gone: once all are, stop
	// feeding them rather than block forever.
	gone := make(chan struct{})
	go func() { wg.Wait(); close(gone) }()
	for i := 0; i < n; i++ {
		select {
		case next <- i:
		case <-gone:
			return
		}
	}
	close(next)
	<-gone
}

const testKey = "lbk_test-admin-key-0123456789abcdefghijkl"

// serveEnv is the environment of a `logbook serve` process on the given
// broker and database; extra entries override.
func serveEnv(brokers []string, prefix, dbURL string, partitions int, extra ...string) []string {
	env := []string{
		"LOGBOOK_KAFKA_BROKERS=" + strings.Join(brokers, ","),
		"LOGBOOK_TOPIC_PREFIX=" + prefix,
		"LOGBOOK_PARTITIONS=" + strconv.Itoa(partitions),
		"LOGBOOK_DATABASE_URL=" + dbURL,
		"LOGBOOK_ADMIN_KEY=" + testKey,
		"LOGBOOK_LOG_LEVEL=warn",
		"LOGBOOK_MASTER_KEY=" + testMasterKey,
		"LOGBOOK_SIGNING_KEY=" + testSigningKey,
	}
	return append(env, extra...)
}

// testSigningKey signs the commands of the processes serveEnv starts;
// their deciders accept its public key.
var testSigningKey = func() string {
	k, _, err := signing.NewKey("test")
	if err != nil {
		panic(err)
	}
	return k
}()

// testMasterKey is the master key of the processes a test starts with
// serveEnv: every process of one deployment shares it.
var testMasterKey = func() string {
	k, err := fieldcrypt.NewMasterKey("test")
	if err != nil {
		panic(err)
	}
	return k
}()

// clusterEnv is serveEnv on the test broker (kfake or the real one) with
// its own topic prefix and a fresh database.
func clusterEnv(t *testing.T, partitions int, extra ...string) []string {
	cfg := kafkatest.Config(t, int32(partitions))
	return serveEnv(cfg.Brokers, cfg.Prefix, pgtest.URL(t), partitions, append(saslEnv(cfg), extra...)...)
}

// saslEnv is the principal of the test broker, for logbook processes.
func saslEnv(cfg kafka.Config) []string {
	if cfg.SASL.User == "" {
		return nil
	}
	return []string{"LOGBOOK_KAFKA_USER=" + cfg.SASL.User, "LOGBOOK_KAFKA_PASSWORD=" + cfg.SASL.Password}
}

// cursorParam is the query parameter that asks for the page after cursor;
// none for the first page (an empty cursor is refused).
func cursorParam(cursor string) string {
	if cursor == "" {
		return ""
	}
	return "&cursor=" + cursor
}
