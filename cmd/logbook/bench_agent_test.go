package main_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/internal/aifake"
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n > 0 {
		return n
	}
	return def
}

// BenchmarkAIDrainAfterOutage queues BENCH_AI_TASKS (10,000) AI tasks while
// the provider is down, then brings it back with a limit of BENCH_AI_RATE
// (200) requests per second, and reports how the agent worker drains the
// backlog: the drain time, the worker process's peak RSS, and fairness. One
// workspace holds 55% of the tasks and nine hold 5% each, interleaved; while
// all ten still have tasks, a fair worker gives each a tenth of the answers:
// max_share_per_fair_share is the largest share one workspace took in that
// time over that tenth (1 is perfectly fair; first-come-first-served would
// give the big workspace 5.5), and small_done_per_fair is when the small
// workspaces were all done over when an equal share would have done them
// (1 is fair; first-come-first-served gives about the drain time over
// it). The agent runs in its own process (dev
// --roles without agent, plus serve --roles agent), so its RSS is its own.
func BenchmarkAIDrainAfterOutage(b *testing.B) {
	nTasks, rate := envInt("BENCH_AI_TASKS", 10000), envInt("BENCH_AI_RATE", 200)
	for range b.N {
		drainAfterOutage(b, nTasks, rate)
	}
}

func drainAfterOutage(b *testing.B, nTasks, rate int) {
	fake := aifake.Start()
	defer fake.Close()
	fake.SetMode(aifake.ServerError)
	dir := b.TempDir()
	quiet := []string{"LOGBOOK_LOG_LEVEL=warn", "LOGBOOK_RATE_PER_KEY=-1", "LOGBOOK_MAX_COMMAND_LAG=1000000"}
	dev := start(b, append(agentEnv(fake), quiet...), "dev", "--data", dir, "--http", "127.0.0.1:0", "--roles", "api,decider,projector")
	dbURL, err := os.ReadFile(filepath.Join(dir, "postgres.url"))
	if err != nil {
		b.Fatal(err)
	}
	// The worker joins the dev instance: its broker, database and keys.
	worker := start(b, append(agentEnv(fake), append(quiet, "LOGBOOK_KAFKA_BROKERS="+dev.Kafka,
		"LOGBOOK_KAFKA_USER=logbook", "LOGBOOK_KAFKA_PASSWORD_FILE="+filepath.Join(dir, "kafka.password"),
		"LOGBOOK_MASTER_KEY_FILE="+filepath.Join(dir, "master.key"), "LOGBOOK_SIGNING_KEY_FILE="+filepath.Join(dir, "signing.key"),
		"LOGBOOK_DATABASE_URL="+strings.TrimSpace(string(dbURL)), "LOGBOOK_PARTITIONS=6",
		"LOGBOOK_AGENT_BREAKER_DELAY=2s", "LOGBOOK_AGENT_RAMP=5s")...), "serve", "--roles", "agent")
	c := newClient(b, dev.URL, dev.Key)

	const nWS = 10
	spaces, agents := make([]string, nWS), make([]string, nWS)
	for i := range spaces {
		spaces[i] = c.must(201, "POST", "/v1/workspaces", map[string]any{"name": fmt.Sprintf("ws %d", i)}, wait, "wait=10").str("workspace_id")
		agents[i] = c.must(201, "POST", "/v1/workspaces/"+spaces[i]+"/agents", map[string]any{"name": "bot", "model": "gpt-4o-mini",
			"instructions": "Be brief."}, wait, "wait=10").str("agent_id")
	}
	// 55% in workspace 0, 5% in each other one, in a shuffled order.
	order := make([]int, 0, nTasks)
	for i := range nTasks {
		if i < nTasks*55/100 {
			order = append(order, 0)
		} else {
			order = append(order, 1+i%(nWS-1))
		}
	}
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
	perWS := make([]int, nWS)
	for _, w := range order {
		perWS[w]++
	}
	parallel(nTasks, 32, func(i int) {
		w := order[i]
		r := c.do("POST", "/v1/workspaces/"+spaces[w]+"/tasks", map[string]any{"title": "t", "input": "summarise",
			"assignee": agents[w]})
		if r.Status != 202 {
			b.Errorf("create: %d %s", r.Status, r.Raw)
		}
	})
	eventually(b, 120*time.Second, "the breaker open", func() bool { return aiProviderState(c) == "open" })
	// Give the worker time to fill its windows and stop fetching.
	time.Sleep(5 * time.Second)
	rssOutage := procKiB(b, worker.cmd.Process.Pid, "VmRSS")

	b.ResetTimer()
	back := time.Now()
	fake.SetRateLimit(rate)
	fake.SetMode(aifake.Healthy)
	eventually(b, time.Duration(nTasks/rate*4+120)*time.Second, "the backlog drained", func() bool {
		return fake.Calls(aifake.Healthy) >= int64(nTasks)
	})
	drain := time.Since(back)
	b.StopTimer()

	// Answers per workspace over time, from the trail.
	type answer struct {
		at time.Time
		ws int
	}
	var answers []answer
	eventually(b, 120*time.Second, "every task answered in the trail", func() bool {
		answers = answers[:0]
		for w, ws := range spaces {
			evs, ok := trail(c, ws)
			if !ok {
				return false
			}
			for _, e := range evs {
				if e["type"] == "task.result_recorded" {
					at, _ := time.Parse(time.RFC3339Nano, e["occurred_at"].(string))
					answers = append(answers, answer{at, w})
				}
			}
		}
		return len(answers) >= nTasks
	})
	sort.Slice(answers, func(i, j int) bool { return answers[i].at.Before(answers[j].at) })
	// The contended time: until the first workspace has all its answers.
	done := make([]int, nWS)
	var contended []answer
	firstDone := time.Time{}
	for _, a := range answers {
		contended = append(contended, a)
		done[a.ws]++
		if done[a.ws] == perWS[a.ws] {
			firstDone = a.at
			break
		}
	}
	share := make([]int, nWS)
	for _, a := range contended {
		share[a.ws]++
	}
	maxShare := 0.0
	for _, n := range share {
		maxShare = max(maxShare, float64(n)/float64(len(contended)))
	}
	lastSmall, bigDone := time.Time{}, time.Time{}
	done = make([]int, nWS)
	for _, a := range answers {
		done[a.ws]++
		if done[a.ws] == perWS[a.ws] {
			if a.ws == 0 {
				bigDone = a.at
			} else if a.at.After(lastSmall) {
				lastSmall = a.at
			}
		}
	}
	start := answers[0].at
	// Fair: every workspace at an equal share of the measured rate until it
	// has no tasks left, so the small ones are done after as many answers
	// as each of the ten has up to the largest small one's count.
	mSmall, fairAnswers := 0, 0
	for _, n := range perWS[1:] {
		mSmall = max(mSmall, n)
	}
	for _, n := range perWS {
		fairAnswers += min(n, mSmall)
	}
	fairSmall := float64(fairAnswers) / (float64(nTasks) / drain.Seconds())
	b.ReportMetric(drain.Seconds(), "drain_s")
	b.ReportMetric(float64(nTasks)/drain.Seconds(), "answers/s")
	b.ReportMetric(float64(rssOutage), "worker_rss_outage_KiB")
	b.ReportMetric(float64(procKiB(b, worker.cmd.Process.Pid, "VmHWM")), "worker_peak_rss_KiB")
	b.ReportMetric(maxShare*nWS, "max_share_per_fair_share")
	b.ReportMetric(lastSmall.Sub(start).Seconds(), "small_workspaces_done_s")
	b.ReportMetric(lastSmall.Sub(start).Seconds()/fairSmall, "small_done_per_fair")
	b.ReportMetric(bigDone.Sub(start).Seconds(), "big_workspace_done_s")
	b.Logf("drain of %d tasks at %d req/s: %v; first workspace done after %v; fake calls by mode: %+v",
		nTasks, rate, drain.Round(time.Millisecond), firstDone.Sub(start).Round(time.Millisecond), fake.Stats().Calls)
	worker.stop()
	dev.stop()
}
