package main_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/kafkatest"
	"github.com/logbook-dev/logbook/internal/pgtest"
)

// TestServeRolesUnderTheirOwnPrincipals runs each role in its own process
// as its own Kafka principal on a `kafka.sh --secure` cluster, whose ACLs
// allow each exactly what it needs (deploy/local/kafka.sh grant_roles): a
// task goes from the API through the decider and the agent to the read
// models. Then each principal is refused what is not its role's, and a
// wrong password is refused outright.
func TestServeRolesUnderTheirOwnPrincipals(t *testing.T) {
	users := filepath.Join(os.Getenv("LOGBOOK_TEST_KAFKA_CLUSTER_DIR"), "users")
	if _, err := os.Stat(filepath.Join(users, "api.password")); err != nil {
		t.Skip("needs a real cluster started with kafka.sh --secure (make test-kafka)")
	}
	password := func(user string) string {
		b, err := os.ReadFile(filepath.Join(users, user+".password"))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	brokers := kafkatest.Brokers(t)
	const prefix = "logbook." // the prefix the role ACLs cover
	base := serveEnv(brokers, prefix, pgtest.URL(t), 3, "LOGBOOK_AI_PROVIDER=local")
	as := func(user string) []string {
		return append(append([]string{}, base...), "LOGBOOK_KAFKA_USER="+user, "LOGBOOK_KAFKA_PASSWORD="+password(user))
	}
	api := start(t, as("api"), "serve", "--roles", "api", "--http", "127.0.0.1:0")
	roles := []*proc{api, start(t, as("decider"), "serve", "--roles", "decider"),
		start(t, as("projector"), "serve", "--roles", "projector"), start(t, as("agent"), "serve", "--roles", "agent")}
	// Consumer groups are named by role, not by topic prefix: stopped
	// cleanly, the processes leave them at once instead of holding the
	// next test's members up until their sessions time out.
	defer func() {
		for _, p := range roles {
			p.stop()
		}
	}()

	c := newClient(t, api.URL, testKey)
	ws := c.must(201, "POST", "/v1/workspaces", map[string]any{"name": "acl"}, wait, "wait=30").str("workspace_id")
	agent := c.must(201, "POST", "/v1/workspaces/"+ws+"/agents", map[string]any{"name": "bot", "model": "m",
		"instructions": "Be brief."}, wait, "wait=30").str("agent_id")
	task := c.must(201, "POST", "/v1/workspaces/"+ws+"/tasks", map[string]any{"title": "t", "input": "hello",
		"assignee": agent}, wait, "wait=30").str("task_id")
	eventually(t, 90*time.Second, "the task completed through every role", func() bool {
		r := c.do("GET", "/v1/workspaces/"+ws+"/tasks/"+task, nil)
		return r.Status == 200 && r.str("status") == "completed" && r.str("input") == "hello"
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	client := func(user, pass string, opts ...kgo.Opt) *kgo.Client {
		cfg := kafka.Config{Brokers: brokers, SASL: kafka.SASL{User: user, Password: pass}}
		cl, err := kgo.NewClient(append(append(cfg.Opts(), kgo.RetryTimeout(5*time.Second)), opts...)...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(cl.Close)
		return cl
	}
	produce := func(user, topic string) error {
		return client(user, password(user)).ProduceSync(ctx, &kgo.Record{Topic: prefix + topic, Key: []byte(ws), Value: []byte("{}")}).FirstErr()
	}
	read := func(user, topic string) error {
		cl := client(user, password(user), kgo.ConsumeTopics(prefix+topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		for {
			f := cl.PollFetches(ctx)
			if err := f.Err0(); err != nil {
				return err
			}
			if f.NumRecords() > 0 {
				return nil
			}
			if ctx.Err() != nil {
				return ctx.Err()
			}
		}
	}
	denied := func(err error) bool { return errors.Is(err, kerr.TopicAuthorizationFailed) }

	if err := read("analytics", "events"); err != nil {
		t.Fatalf("analytics reading the events: %v", err)
	}
	for _, c := range []struct {
		what string
		err  error
	}{
		{"analytics writing a command", produce("analytics", "commands")},
		{"analytics reading the commands", read("analytics", "commands")},
		{"analytics reading the workspace keys", read("analytics", "workspace-keys")},
		{"the api writing an event", produce("api", "events")},
		{"the agent writing an event", produce("agent", "events")},
		{"the agent reading the decider's state", read("agent", "decider-state")},
		{"the decider reading the workspace keys", read("decider", "workspace-keys")},
		{"the projector writing a command", produce("projector", "commands")},
	} {
		if !denied(c.err) {
			t.Errorf("%s: %v, want TOPIC_AUTHORIZATION_FAILED", c.what, c.err)
		}
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer pcancel()
	err := client("api", "wrong-password").Ping(pctx)
	if !errors.Is(err, kerr.SaslAuthenticationFailed) {
		t.Errorf("a wrong password: %v, want SASL_AUTHENTICATION_FAILED", err)
	}
}
