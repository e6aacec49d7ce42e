package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/internal/kafka"
	"github.com/logbook-dev/logbook/internal/loadgen"
)

// runLoadgen drives a running logbook over HTTP (internal/loadgen), then
// checks against the log and the read models that every acknowledged
// command got exactly one outcome. It stops by itself: after --commands,
// --duration or --timeout, whichever comes first.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "check" {
		return runLoadgenCheck(ctx, args[1:], stdout, stderr)
	}
	if len(args) > 0 && args[0] == "bare" {
		return runLoadgenBare(ctx, args[1:], stdout, stderr)
	}
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("loadgen", stderr)
	base := fs.String("url", settingValue("LOGBOOK_URL"), "logbook base URL")
	key := fs.String("key", env("LOGBOOK_API_KEY", ""), "API key (writer or admin)")
	nWS := fs.Int("workspaces", 50, "workspaces to create and spread the load over")
	total := fs.Int("commands", 10000, "stop after sending this many commands (0: no bound, then --duration is required)")
	duration := fs.Duration("duration", 0, "stop sending after this long (0: no bound)")
	conc := fs.Int("concurrency", 64, "clients of the closed loop, or the cap on requests in flight with --rate")
	rate := fs.Float64("rate", 0, "open loop: start this many commands per second whatever the answers (0: closed loop)")
	mixFlag := fs.String("mix", loadgen.DefaultMix, "operations and their weights: create, assign, start, complete, cancel, rename")
	retries := fs.Int("retries", 5, "attempts after a 429/503 (waiting Retry-After) or a lost connection, same Idempotency-Key")
	inputBytes := fs.Int("input-bytes", 256, "size of each task's input and output, sensitive fields the API encrypts")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the workload's choices")
	timeout := fs.Duration("timeout", 15*time.Minute, "stop after this long, whatever happened")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	report := fs.String("report", "", "write the full report to FILE.json and a self-contained FILE.html beside it")
	check := fs.Bool("check", true, "follow every acknowledged command to its outcome in the log and compare the read models; needs the broker")
	checkWait := fs.Duration("check-wait", 2*time.Minute, "how long outcomes and projections may lag before the check counts them missing")
	progress := fs.Bool("progress", true, "a progress line a second on stderr")
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker (for --check and lag)")
	remote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address (your own deployment)")
	reuse := fs.String("reuse", "", "drive the workspaces of a past run (its --report FILE.json) instead of creating --workspaces new ones")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkTarget(*base, *remote); err != nil {
		return err
	}
	if *key == "" {
		return errors.New("--key (or LOGBOOK_API_KEY) is required")
	}
	var spaces []string
	if *reuse != "" {
		past, err := loadgen.ReadReport(*reuse)
		if err != nil {
			return err
		}
		if spaces = past.Workspaces; len(spaces) == 0 {
			return fmt.Errorf("--reuse %s: the report names no workspaces", *reuse)
		}
		// The ids go into request paths: only what logbook hands out.
		for _, ws := range spaces {
			if _, err := uuid.Parse(ws); err != nil {
				return fmt.Errorf("--reuse %s: %.64q is not a workspace id", *reuse, ws)
			}
		}
	}
	if *inputBytes < 0 || *inputBytes > domain.MaxTextLen {
		return fmt.Errorf("--input-bytes must be 0..%d", domain.MaxTextLen)
	}
	mix, err := loadgen.ParseMix(*mixFlag)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	lc := loadgen.Config{URL: strings.TrimRight(*base, "/"), Key: *key, Workspaces: *nWS, Commands: *total,
		Duration: *duration, Concurrency: *conc, Rate: *rate, Mix: mix, InputBytes: *inputBytes,
		Retries: *retries, Seed: *seed, Reuse: spaces}
	if *progress {
		lc.Progress = stderr
	}
	// The broker, when it can be found, gives the lag of every consumer
	// group for the report; the check needs it.
	brokerErr := toolKafka(&cfg, *dir)
	var from map[string]map[int32]int64
	if brokerErr == nil {
		adm, closeAdm, err := adminClient(cfg.Kafka)
		if err != nil {
			return err
		}
		defer closeAdm()
		lc.Lag = func(ctx context.Context) (map[string]int64, error) { return groupLags(ctx, adm) }
		// Reused workspaces have a past in the log: the check reads it
		// all, from the log's start, to follow their seq from 1.
		if *check && len(spaces) == 0 {
			if from, err = loadgen.LogEnds(ctx, cfg.Kafka); err != nil {
				return fmt.Errorf("the log's end before the run: %w", err)
			}
		}
	} else if *check {
		return fmt.Errorf("--check reads the log: %w (or pass --check=false)", brokerErr)
	}

	res, err := loadgen.Run(ctx, lc)
	if err != nil {
		return err
	}
	res.LogFrom = from
	if *check {
		res.Check, err = loadgen.Check(ctx, res, loadgen.CheckConfig{Kafka: cfg.Kafka, Wait: *checkWait},
			lc.URL, *key, &http.Client{Timeout: 30 * time.Second})
		if err != nil {
			return err
		}
	}
	if *report != "" {
		html, err := res.WriteFiles(*report)
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		fmt.Fprintf(stderr, "report: %s and %s\n", *report, html)
	}
	if *asJSON {
		if err := json.NewEncoder(stdout).Encode(res.Summary()); err != nil {
			return err
		}
	} else {
		res.WriteText(stdout)
	}
	switch {
	case res.Check != nil && !res.Check.OK():
		return errors.New("the check failed: acknowledged commands lost, duplicated, out of order or not in the read models")
	case res.DrainError != "":
		return fmt.Errorf("the load did not reach the read models: %s", res.DrainError)
	case res.Failed > 0:
		return fmt.Errorf("%d commands failed (an answer other than 2xx, 429 or 503, or none)", res.Failed)
	}
	return nil
}

// runLoadgenCheck checks a past run again, from its JSON report, against
// the log and the read models as they are now: after a restart, a failover
// or a recovery drill, every command the run had acknowledged must still
// hold.
func runLoadgenCheck(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("loadgen check", stderr)
	base := fs.String("url", settingValue("LOGBOOK_URL"), "logbook base URL")
	key := fs.String("key", env("LOGBOOK_API_KEY", ""), "API key that reads the run's workspaces")
	path := fs.String("report", "", "the JSON report of the run (loadgen --report)")
	wait := fs.Duration("check-wait", 2*time.Minute, "how long outcomes and projections may lag before the check counts them missing")
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker")
	remote := fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
	asJSON := fs.Bool("json", false, "print the finding as one JSON object")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkTarget(*base, *remote); err != nil {
		return err
	}
	if *key == "" || *path == "" {
		return errors.New("--key and --report are required")
	}
	res, err := loadgen.ReadReport(*path)
	if err != nil {
		return err
	}
	if err := toolKafka(&cfg, *dir); err != nil {
		return err
	}
	c, err := loadgen.Check(ctx, res, loadgen.CheckConfig{Kafka: cfg.Kafka, Wait: *wait},
		strings.TrimRight(*base, "/"), *key, &http.Client{Timeout: 30 * time.Second})
	if err != nil {
		return err
	}
	if *asJSON {
		err = json.NewEncoder(stdout).Encode(c)
	} else {
		c.WriteText(stdout)
	}
	if err == nil && !c.OK() {
		err = errors.New("the check failed: acknowledged commands lost, duplicated, out of order or not in the read models")
	}
	return err
}

// runLoadgenBare serves loadgen.BareHandler until interrupted: the bare chi
// JSON handler logbook's figures are compared with, under the same client
// on the same machine.
func runLoadgenBare(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("loadgen bare", stderr)
	addr := fs.String("http", "127.0.0.1:8090", "listen address (loopback)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkTarget("http://"+*addr, false); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: loadgen.BareHandler(), ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(stdout, "http: http://%s\n", ln.Addr())
	fmt.Fprintln(stdout, "ready")
	go func() {
		<-ctx.Done()
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shut)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// checkTarget refuses a target that is not on this machine unless the user
// says it is their own deployment.
func checkTarget(base string, remote bool) error {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("--url %q is not an http(s) URL", base)
	}
	if remote {
		return nil
	}
	h := u.Hostname()
	if h == "localhost" || strings.HasPrefix(h, "127.") || h == "::1" {
		return nil
	}
	return errors.New("loadgen targets loopback addresses unless --allow-remote says the target is your own deployment")
}

func adminClient(cfg kafka.Config) (*kadm.Client, func(), error) {
	cl, err := kgo.NewClient(cfg.Opts()...)
	if err != nil {
		return nil, nil, err
	}
	return kadm.NewClient(cl), cl.Close, nil
}

// groupLags sums the lag of each logbook consumer group.
func groupLags(ctx context.Context, adm *kadm.Client) (map[string]int64, error) {
	listed, err := adm.ListGroups(ctx)
	if err != nil {
		return nil, err
	}
	var groups []string
	for _, g := range listed.Groups() {
		if strings.HasPrefix(g, "logbook") {
			groups = append(groups, g)
		}
	}
	if len(groups) == 0 {
		return nil, nil
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for g, l := range lags {
		if l.Error() != nil {
			continue
		}
		// Only groups that commit their position to Kafka: the projections
		// keep theirs in Postgres, beside the rows, and their group lag
		// would only count the whole log.
		var total int64
		committed := false
		for _, ps := range l.Lag {
			for _, m := range ps {
				if m.Err == nil && m.Commit.At >= 0 {
					committed = true
					total += m.Lag
				}
			}
		}
		if committed {
			out[strings.TrimPrefix(g, "logbook-")] = total
		}
	}
	return out, nil
}
