package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

type listedInstance struct {
	ID         string             `json:"id"`
	Roles      []string           `json:"roles"`
	PID        int                `json:"pid"`
	URL        string             `json:"url"`
	Level      string             `json:"level"`
	Heartbeat  bool               `json:"heartbeat"`
	Partitions map[string][]int32 `json:"partitions"`
}

func listInstances(t *testing.T, c *client) []listedInstance {
	t.Helper()
	r := c.do("GET", "/v1/status", nil)
	if r.Status != 200 {
		t.Fatalf("GET /v1/status: %d", r.Status)
	}
	var st struct {
		Instances []listedInstance `json:"instances"`
	}
	if err := json.Unmarshal(r.Raw, &st); err != nil {
		t.Fatal(err)
	}
	return st.Instances
}

// TestServeInstancesInStatusAndADeadOneLeaves: one API process and two
// processes sharing the decider and projector roles (watched through
// LOGBOOK_METRICS_ADDR) all appear in GET /v1/status and `logbook status`
// with their roles and the partitions they own, every decider partition
// owned once; a SIGKILLed one leaves the list within its session timeout
// and the survivor owns every partition.
func TestServeInstancesInStatusAndADeadOneLeaves(t *testing.T) {
	const partitions = 6
	env := clusterEnv(t, partitions)
	api := start(t, env, "serve", "--roles", "api", "--http", "127.0.0.1:0")
	ops := append(env[:len(env):len(env)], "LOGBOOK_METRICS_ADDR=127.0.0.1:0")
	w1 := start(t, ops, "serve", "--roles", "decider,projector")
	w2 := start(t, ops, "serve", "--roles", "decider,projector")
	c := newClient(t, api.URL, testKey)

	pid := func(p *proc) int { return p.cmd.Process.Pid }
	deciderOwners := func(list []listedInstance) map[int32][]int {
		owners := map[int32][]int{}
		for _, in := range list {
			for _, p := range in.Partitions["logbook-decider"] {
				owners[p] = append(owners[p], in.PID)
			}
		}
		return owners
	}
	var list []listedInstance
	eventually(t, 60*time.Second, "three instances listed, each decider partition owned once", func() bool {
		list = listInstances(t, c)
		owners := deciderOwners(list)
		if len(list) != 3 || len(owners) != partitions {
			return false
		}
		for _, o := range owners {
			if len(o) != 1 {
				return false
			}
		}
		return true
	})
	for _, in := range list {
		want := []string{"decider", "projector"}
		url := ""
		switch in.PID {
		case pid(api):
			want, url = []string{"api"}, api.URL
		case pid(w1):
			url = w1.Metrics
		case pid(w2):
			url = w2.Metrics
		default:
			t.Errorf("instance %s (pid %d) is none of the processes started", in.ID, in.PID)
		}
		if !slices.Equal(in.Roles, want) || !in.Heartbeat || in.Level != "full" || in.URL != url {
			t.Errorf("instance %+v: want roles %v, url %s, a heartbeat, level full", in, want, url)
		}
	}
	if owners := deciderOwners(list); len(owners[0]) != 1 || (owners[0][0] != pid(w1) && owners[0][0] != pid(w2)) {
		t.Errorf("decider partition 0 owned by %v", owners[0])
	}
	// A process without the api role answers the same status on its
	// metrics listener.
	if n := len(listInstances(t, newClient(t, w2.Metrics, ""))); n != 3 {
		t.Errorf("w2's metrics listener lists %d instances, want 3", n)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, binary, "status", "--url", api.URL).CombinedOutput()
	if err != nil {
		t.Fatalf("logbook status: %v\n%s", err, out)
	}
	for _, p := range []*proc{api, w1, w2} {
		if !strings.Contains(string(out), fmt.Sprintf("/%d/", pid(p))) {
			t.Errorf("logbook status does not list pid %d:\n%s", pid(p), out)
		}
	}
	if !strings.Contains(string(out), "level full") || !strings.Contains(string(out), "decider ") {
		t.Errorf("logbook status:\n%s", out)
	}

	w1.kill()
	killed := time.Now()
	eventually(t, 40*time.Second, "the killed instance gone, the survivor owning every decider partition", func() bool {
		list = listInstances(t, c)
		owners := deciderOwners(list)
		if len(list) != 2 || len(owners) != partitions {
			return false
		}
		for _, o := range owners {
			if len(o) != 1 || o[0] != pid(w2) {
				return false
			}
		}
		return true
	})
	t.Logf("the killed instance left the list after %s", time.Since(killed).Round(100*time.Millisecond))
}
