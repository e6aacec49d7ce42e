package main_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/kafkatest"
)

// clusterDir is the deploy/local/kafka.sh directory of a running three-node
// Apache Kafka cluster; `make test-kafka` sets it.
func clusterDir(t *testing.T) string {
	dir := os.Getenv("LOGBOOK_TEST_KAFKA_CLUSTER_DIR")
	if dir == "" || !kafkatest.Real() {
		t.Skip("needs a three-node Apache Kafka cluster: run `make test-kafka`")
	}
	return dir
}

func killNode(t *testing.T, dir string, node int) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, fmt.Sprintf("node%d", node), "pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		t.Fatalf("broker %d pid file %q", node, b) // never kill(0): that is our own process group
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatalf("kill broker %d: %v", node, err)
	}
}

func restartNode(t *testing.T, dir string, node int) {
	t.Helper()
	out, err := exec.Command("bash", filepath.Join(dir, fmt.Sprintf("node%d", node), "start.sh")).CombinedOutput()
	if err != nil {
		t.Fatalf("restart broker %d: %v\n%s", node, err, out)
	}
}

// loadClient sends task.create commands at a bounded rate until stopped,
// retrying refused ones with the same Idempotency-Key as a careful client
// would. It records the acknowledged command ids.
type loadClient struct {
	c       *client
	spaces  []string
	mu      sync.Mutex
	acked   map[string]string // command id → workspace
	sent    atomic.Int64
	nacked  atomic.Int64
	dropped atomic.Int64 // refused 20 times: never acknowledged
}

func (l *loadClient) run(stop <-chan struct{}, workers int) {
	var wg sync.WaitGroup
	var n atomic.Int64
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := n.Add(1)
				ws := l.spaces[int(i)%len(l.spaces)]
				key := fmt.Sprintf("load-%d", i)
				acked := false
				for attempt := 0; attempt < 20 && !acked; attempt++ {
					l.sent.Add(1)
					r := l.c.do("POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": key}, "Idempotency-Key", key)
					if r.Status == 202 || r.Status == 201 {
						l.mu.Lock()
						l.acked[r.str("command_id")] = ws
						l.mu.Unlock()
						acked = true
						continue
					}
					l.nacked.Add(1)
					time.Sleep(200 * time.Millisecond)
				}
				if !acked {
					l.dropped.Add(1)
				}
				time.Sleep(5 * time.Millisecond) // bounded rate
			}
		}()
	}
	wg.Wait()
}

// checkExactlyOnce verifies every acknowledged command has one accepted
// outcome, each workspace's trail is gapless and holds each task once, and
// the log's hash chains verify with no event twice.
func checkExactlyOnce(t *testing.T, c *client, env []string, l *loadClient) {
	t.Helper()
	var notAccepted atomic.Int64
	ids := make([]string, 0, len(l.acked))
	for id := range l.acked {
		ids = append(ids, id)
	}
	parallel(len(ids), 16, func(i int) {
		if r := outcomeNoFatal(c, ids[i]); r.str("status") != "accepted" {
			notAccepted.Add(1)
			t.Errorf("command %s: %s", ids[i], r.Raw)
		}
	})
	perWS := map[string]int{}
	for _, ws := range l.acked {
		perWS[ws]++
	}
	dupes := 0
	for _, ws := range l.spaces {
		eventually(t, 120*time.Second, "trail of "+ws, func() bool {
			seen := map[string]bool{}
			after := 0
			for {
				r := c.do("GET", fmt.Sprintf("/v1/workspaces/%s/events?limit=500&after_seq=%d", ws, after), nil)
				if r.Status != 200 {
					return false // not projected yet
				}
				evs := r.Body["events"].([]any)
				for _, e := range evs {
					m := e.(map[string]any)
					after++
					if int(m["seq"].(float64)) != after {
						t.Fatalf("workspace %s: seq %v at position %d", ws, m["seq"], after)
					}
					if m["type"] == "task.created" {
						id := m["aggregate"].(map[string]any)["id"].(string)
						if seen[id] {
							dupes++
						}
						seen[id] = true
					}
				}
				if len(evs) < 500 {
					break
				}
			}
			return len(seen) >= perWS[ws]
		})
	}
	// The log itself: chains verify, and no command produced two events.
	replay := exec.Command(binary, "replay", "--from-beginning")
	replay.Env = append(os.Environ(), env...)
	out, err := replay.Output()
	if err != nil {
		t.Fatalf("replay: %v", err)
	}
	byCommand := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	events := 0
	for sc.Scan() {
		var e struct {
			CommandID string `json:"command_id"`
			Type      string `json:"type"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatal(err)
		}
		events++
		if e.Type == "task.created" {
			byCommand[e.CommandID]++
		}
	}
	logDupes := 0
	for _, n := range byCommand {
		if n > 1 {
			logDupes++
		}
	}
	verify := exec.Command(binary, "audit", "verify")
	verify.Env = append(os.Environ(), env...)
	vout, verr := verify.CombinedOutput()
	fmt.Printf("figures: dropped_after_20_refusals=%d sent=%d acknowledged=%d refused_then_retried=%d outcomes=%d lost=%d duplicated_in_log=%d duplicated_in_read_models=%d events_in_log=%d audit=%q\n",
		l.dropped.Load(), l.sent.Load(), len(l.acked), l.nacked.Load(), len(ids)-int(notAccepted.Load()), int(notAccepted.Load()),
		logDupes, dupes, events, strings.TrimSpace(string(vout)))
	if verr != nil || !strings.Contains(string(vout), " 0 broken chains") {
		t.Fatalf("audit verify: %v\n%s", verr, vout)
	}
	if notAccepted.Load() != 0 || logDupes != 0 || dupes != 0 || l.dropped.Load() != 0 {
		t.Fatal("exactly-once violated")
	}
}

func createSpaces(t *testing.T, c *client, n int) []string {
	spaces := make([]string, n)
	for i := range spaces {
		spaces[i] = c.must(201, "POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("ws-%d", i)}, wait, "wait=30").str("workspace_id")
	}
	return spaces
}

// TestBrokerAndProcessFaultsLoseNothing runs continuous load on a three-node
// cluster while a broker, the decider and the projector are each SIGKILLed
// and replaced.
func TestBrokerAndProcessFaultsLoseNothing(t *testing.T) {
	dir := clusterDir(t)
	env := clusterEnv(t, 6)
	api := start(t, env, "serve", "--roles", "api", "--http", "127.0.0.1:0")
	dec := start(t, env, "serve", "--roles", "decider")
	proj := start(t, env, "serve", "--roles", "projector")
	c := newClient(t, api.URL, testKey)
	l := &loadClient{c: c, spaces: createSpaces(t, c, 8), acked: map[string]string{}}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { l.run(stop, 4); close(done) }()
	step := func(what string, d time.Duration) {
		t.Logf("%s (acknowledged so far: %d)", what, len(l.ackedSnapshot()))
		time.Sleep(d)
	}
	step("load running", 3*time.Second)
	killNode(t, dir, 2)
	restarted := false
	t.Cleanup(func() {
		if !restarted { // leave the cluster whole for the next test
			restartNode(t, dir, 2)
		}
	})
	step("broker 2 killed", 5*time.Second)
	restartNode(t, dir, 2)
	restarted = true
	step("broker 2 restarted", 5*time.Second)
	dec.kill()
	step("decider killed; commands keep arriving", 3*time.Second)
	dec = start(t, env, "serve", "--roles", "decider")
	step("new decider", 3*time.Second)
	proj.kill()
	step("projector killed", 2*time.Second)
	proj = start(t, env, "serve", "--roles", "projector")
	step("new projector", 3*time.Second)
	close(stop)
	<-done

	checkExactlyOnce(t, c, env, l)
	dec.stop()
	proj.stop()
	api.stop()
}

func (l *loadClient) ackedSnapshot() map[string]string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]string, len(l.acked))
	for k, v := range l.acked {
		out[k] = v
	}
	return out
}

// TestPausedDeciderIsFenced: a decider stopped (SIGSTOP) past its session
// timeout while another takes over cannot write a single event when it
// resumes: the log keeps one event per command and unbroken chains.
func TestPausedDeciderIsFenced(t *testing.T) {
	clusterDir(t)
	env := clusterEnv(t, 3)
	api := start(t, env, "serve", "--roles", "api,projector", "--http", "127.0.0.1:0")
	zombie := start(t, env, "serve", "--roles", "decider")
	c := newClient(t, api.URL, testKey)
	l := &loadClient{c: c, spaces: createSpaces(t, c, 3), acked: map[string]string{}}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { l.run(stop, 3); close(done) }()
	time.Sleep(2 * time.Second)
	if err := zombie.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	successor := start(t, env, "serve", "--roles", "decider")
	time.Sleep(15 * time.Second) // past the 10s session timeout: the group moves on
	if err := zombie.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Second) // the zombie tries to finish what it had
	close(stop)
	<-done
	checkExactlyOnce(t, c, env, l)
	zlog := zombie.stderr.String()
	fmt.Printf("zombie after resume: aborted=%v failed=%v\n",
		strings.Contains(zlog, "transaction aborted"), strings.Contains(zlog, "transaction failed"))
	zombie.kill()
	successor.stop()
	api.stop()
}
