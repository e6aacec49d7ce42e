package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/logbook-dev/logbook/consumers/decider"
	"github.com/logbook-dev/logbook/internal/metrics"
	"github.com/logbook-dev/logbook/projections"
)

// The registry's timing: a heartbeat every beat; an instance silent for
// fresh has left the list (as a dead group member leaves its group within
// the 10 s session timeout); its row is deleted after keep.
const (
	registryBeat  = 3 * time.Second
	registryFresh = 10 * time.Second
	registryKeep  = time.Hour
)

// instanceStatus is one running instance as GET /v1/status lists it.
type instanceStatus struct {
	projections.Instance
	// Partitions it owns, by consumer group.
	Partitions map[string][]int32 `json:"partitions"`
	// Lag of the partitions it owns, summed over its groups.
	Lag int64 `json:"lag"`
	// Heartbeat is false for a group member that has no registry row: a
	// process whose Postgres is unreachable, or one logbook did not start.
	Heartbeat bool `json:"heartbeat"`
}

// registry publishes this process in the instances table and keeps the
// list of every running instance: the table joined with the consumer
// groups' members (who owns which partitions) and the lag of those
// partitions.
type registry struct {
	self   projections.Instance
	table  *projections.Registry
	adm    *kadm.Client
	groups []string
	// topics are this deployment's: another deployment on the same
	// brokers (another topic prefix) shares the group names.
	topics map[string]bool
	lag    *metrics.Lag
	level  func() string
	log    *slog.Logger

	list atomic.Pointer[[]instanceStatus]
}

// newInstance names this process: host, pid and a random suffix, so a
// restarted process on the same host and pid is a new instance. Its Kafka
// client id carries the suffix, which is how group members are matched to
// registry rows.
func newInstance(roles []string) projections.Instance {
	var b [4]byte
	_, _ = rand.Read(b[:])
	suffix := hex.EncodeToString(b[:])
	host, _ := os.Hostname()
	return projections.Instance{ID: fmt.Sprintf("%s/%d/%s", host, os.Getpid(), suffix), Roles: slices.Clone(roles),
		Version: buildVersion(), Host: host, PID: os.Getpid(), KafkaClientID: "logbook-" + suffix,
		StartedAt: time.Now().UTC()}
}

// run heartbeats and refreshes the list until ctx ends, then leaves the
// table.
func (r *registry) run(ctx context.Context) {
	t := time.NewTicker(registryBeat)
	defer t.Stop()
	for {
		r.beat(ctx)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			defer cancel()
			if err := r.table.Forget(fctx, r.self.ID); err != nil {
				r.log.Debug("registry: leaving the table failed; the row expires", "err", err)
			}
			return
		case <-t.C:
		}
	}
}

func (r *registry) beat(ctx context.Context) {
	self := r.self
	self.Level = r.level()
	if err := r.table.Heartbeat(ctx, self, registryKeep); err != nil && ctx.Err() == nil {
		r.log.Debug("registry: heartbeat failed", "err", err)
	}
	live, err := r.table.Live(ctx, registryFresh)
	if err != nil {
		// Postgres is out: list what the groups show, and this process.
		live = []projections.Instance{self}
	}
	dctx, cancel := context.WithTimeout(ctx, registryBeat)
	described, _ := r.adm.DescribeGroups(dctx, r.groups...)
	cancel()
	list := joinMembers(live, described, r.topics, r.lag)
	r.list.Store(&list)
}

// joinMembers lists the live instances with the partitions of topics their
// group members own; a member with no live instance is listed on its own,
// unless it consumes none of topics.
func joinMembers(live []projections.Instance, described kadm.DescribedGroups, topics map[string]bool, lag *metrics.Lag) []instanceStatus {
	byClient := map[string]int{}
	out := make([]instanceStatus, 0, len(live))
	for _, in := range live {
		byClient[in.KafkaClientID] = len(out)
		out = append(out, instanceStatus{Instance: in, Partitions: map[string][]int32{}, Heartbeat: true})
	}
	for _, g := range described.Sorted() {
		if g.Err != nil {
			continue
		}
		for _, mem := range g.Members {
			if meta, ok := mem.Join.AsConsumer(); ok && !slices.ContainsFunc(meta.Topics, func(t string) bool { return topics[t] }) {
				continue // another deployment's member
			}
			i, ok := byClient[mem.ClientID]
			if !ok {
				// Any client may join a group under any id: shown, unauthenticated
				// and on terminals, only as printable text of bounded length.
				host := printable(strings.TrimPrefix(mem.ClientHost, "/"))
				i = len(out)
				byClient[mem.ClientID] = i
				out = append(out, instanceStatus{Instance: projections.Instance{ID: "kafka:" + printable(mem.ClientID) + "@" + host,
					Host: host, Level: "unknown"}, Partitions: map[string][]int32{}})
			}
			st := &out[i]
			if !ok && !slices.Contains(st.Roles, roleOfGroup(g.Group)) {
				st.Roles = append(st.Roles, roleOfGroup(g.Group))
			}
			if a, ok := mem.Assigned.AsConsumer(); ok {
				var parts []int32
				for _, tp := range a.Topics {
					if topics[tp.Topic] {
						parts = append(parts, tp.Partitions...)
					}
				}
				sort.Slice(parts, func(a, b int) bool { return parts[a] < parts[b] })
				st.Partitions[g.Group] = parts
				if lag != nil {
					st.Lag += lag.Of(g.Group, parts)
				}
			}
		}
	}
	return out
}

// roleOfGroup names the role a consumer group belongs to.
func roleOfGroup(group string) string {
	switch {
	case group == decider.DefaultGroup:
		return "decider"
	case strings.HasPrefix(group, projections.GroupPrefix):
		return "projector"
	default:
		return "agent"
	}
}

// instances is the last list, nil before the first refresh.
func (r *registry) instances() []instanceStatus {
	if l := r.list.Load(); l != nil {
		return *l
	}
	return nil
}

// printable keeps at most 100 printable runes of s.
func printable(s string) string {
	var b strings.Builder
	n := 0
	for _, r := range s {
		if n == 100 {
			b.WriteString("…")
			break
		}
		if unicode.IsPrint(r) {
			b.WriteRune(r)
			n++
		}
	}
	return b.String()
}
