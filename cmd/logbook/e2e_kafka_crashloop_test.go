package main_test

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestCrashLoopWithBrokerFaults is the dev crash loop on a three-node Apache
// Kafka cluster: `logbook serve` (every role in one process) is SIGKILLed at
// random moments under continuous load and replaced, and in one cycle a
// broker is SIGKILLed too and brought back a cycle later. The same end
// checks hold.
func TestCrashLoopWithBrokerFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("crash loop: boots and kills logbook serve and a broker")
	}
	dir := clusterDir(t)
	const partitions = 6
	env := clusterEnv(t, partitions, "LOGBOOK_LOG_LEVEL=info") // restores are logged at info
	// A killed process leaves its transaction open and its group member in
	// place until their 10s timeouts: each cycle first waits for the new
	// process to decide, so its kill lands mid-work.
	l := newCrashLoop(t, partitions, 5, 3*time.Minute, 45*time.Second)
	l.warm = 30 * time.Second
	l.boot = func() *proc { return start(t, env, "serve", "--http", "127.0.0.1:0") }
	l.tool = func(ctx context.Context, args ...string) *exec.Cmd {
		cmd := exec.CommandContext(ctx, binary, args...)
		cmd.Env = append(os.Environ(), env...)
		return cmd
	}
	brokerCycle := 1 + l.rng.IntN(max(1, l.cycles-1)) // killed in this cycle, back in the next
	node := 1 + l.rng.IntN(3)
	down := false
	t.Cleanup(func() {
		if down { // leave the cluster whole for the next test
			restartNode(t, dir, node)
		}
	})
	l.during = func(cycle int) {
		switch {
		case cycle == brokerCycle:
			killNode(t, dir, node)
			down = true
			t.Logf("cycle %d: broker %d SIGKILLed", cycle, node)
		case down && cycle > brokerCycle:
			restartNode(t, dir, node)
			down = false
			t.Logf("cycle %d: broker %d restarted", cycle, node)
		}
	}
	p := l.boot()
	f := newFleet(testKey, 200, 24, l.seed)
	p = l.run(f, p)
	if down {
		restartNode(t, dir, node)
		down = false
		t.Logf("broker %d restarted after the last cycle", node)
	}
	l.check(f, newClient(t, p.URL, testKey))
	if !t.Failed() {
		p.stop()
	}
}
