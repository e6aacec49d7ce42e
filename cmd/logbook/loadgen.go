package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

// runLoadgen drives a running logbook over HTTP with a bounded number of
// task.create commands and reports the accepted rate (202s per second) and
// the end-to-end rate (until every command's events are in the read models).
// It only talks to loopback addresses and always stops by itself.
func runLoadgen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("loadgen", stderr)
	base := fs.String("url", env("LOGBOOK_URL", "http://127.0.0.1:8080"), "logbook base URL (loopback only)")
	key := fs.String("key", env("LOGBOOK_API_KEY", ""), "API key (writer or admin)")
	nWS := fs.Int("workspaces", 50, "workspaces to spread the load over")
	total := fs.Int("commands", 10000, "task.create commands to send")
	conc := fs.Int("concurrency", 64, "concurrent HTTP clients")
	timeout := fs.Duration("timeout", 5*time.Minute, "stop after this long, whatever happened")
	asJSON := fs.Bool("json", false, "print the figures as one JSON object")
	inputBytes := fs.Int("input-bytes", 256, "size of each task's input, a sensitive field the API encrypts")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !strings.HasPrefix(*base, "http://127.") && !strings.HasPrefix(*base, "http://localhost") && !strings.HasPrefix(*base, "http://[::1]") {
		return errors.New("loadgen only targets loopback addresses")
	}
	if *key == "" {
		return errors.New("--key (or LOGBOOK_API_KEY) is required")
	}
	if *nWS < 1 || *total < 1 || *conc < 1 || *conc > 1024 {
		return errors.New("workspaces, commands must be >= 1 and concurrency 1..1024")
	}
	if *inputBytes < 0 || *inputBytes > domain.MaxTextLen {
		return fmt.Errorf("--input-bytes must be 0..%d", domain.MaxTextLen)
	}
	input := strings.Repeat("lorem ipsum ", *inputBytes/12+1)[:*inputBytes]
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	cl := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: *conc}}
	post := func(path string, body any, prefer string) (int, map[string]any, error) {
		raw, _ := json.Marshal(body)
		req, err := http.NewRequestWithContext(ctx, "POST", *base+path, bytes.NewReader(raw))
		if err != nil {
			return 0, nil, err
		}
		req.Header.Set("Authorization", "Bearer "+*key)
		req.Header.Set("Content-Type", "application/json")
		if prefer != "" {
			req.Header.Set("Prefer", prefer)
		}
		resp, err := cl.Do(req)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out, nil
	}

	spaces := make([]string, *nWS)
	for i := range spaces {
		st, out, err := post("/v1/workspaces", map[string]any{"name": fmt.Sprintf("load-%d", i)}, "wait=30")
		if err != nil || st != http.StatusCreated {
			return fmt.Errorf("create workspace: status %d: %v %v", st, err, out)
		}
		spaces[i], _ = out["workspace_id"].(string)
	}
	baseline := map[string]float64{}
	for _, ws := range spaces {
		seq, err := lastSeq(ctx, cl, *base, *key, ws)
		if err != nil {
			return err
		}
		baseline[ws] = seq
	}

	var (
		next, accepted, refused, failed atomic.Int64
		latMu                           sync.Mutex
		lats                            []time.Duration
		perWS                           = make([]atomic.Int64, *nWS)
	)
	start := time.Now()
	var wg sync.WaitGroup
	for w := 0; w < *conc; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for ctx.Err() == nil {
				i := next.Add(1) - 1
				if i >= int64(*total) {
					break
				}
				t0 := time.Now()
				st, _, err := post("/v1/workspaces/"+spaces[i%int64(*nWS)]+"/tasks",
					map[string]any{"title": fmt.Sprintf("load %d", i), "input": input, "priority": i % 10}, "")
				switch {
				case err != nil:
					failed.Add(1)
				case st == http.StatusAccepted:
					accepted.Add(1)
					perWS[i%int64(*nWS)].Add(1)
					mine = append(mine, time.Since(t0))
				case st == http.StatusTooManyRequests || st == http.StatusServiceUnavailable:
					refused.Add(1)
				default:
					failed.Add(1)
				}
			}
			latMu.Lock()
			lats = append(lats, mine...)
			latMu.Unlock()
		}()
	}
	wg.Wait()
	acceptedIn := time.Since(start)

	// End to end: every accepted command's event is in the read models.
	for i, ws := range spaces {
		want := baseline[ws] + float64(perWS[i].Load())
		for {
			seq, err := lastSeq(ctx, cl, *base, *key, ws)
			if err != nil {
				return fmt.Errorf("end to end: %w", err)
			}
			if seq >= want {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("end to end: timed out with workspace %s at seq %.0f of %.0f", ws, seq, want)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	e2e := time.Since(start)
	sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
	pct := func(p float64) time.Duration {
		if len(lats) == 0 {
			return 0
		}
		return lats[min(len(lats)-1, int(p*float64(len(lats))))]
	}
	res := map[string]any{
		"commands": *total, "accepted": accepted.Load(), "refused": refused.Load(), "failed": failed.Load(),
		"concurrency": *conc, "workspaces": *nWS, "input_bytes": *inputBytes,
		"accepted_per_s":   float64(accepted.Load()) / acceptedIn.Seconds(),
		"end_to_end_per_s": float64(accepted.Load()) / e2e.Seconds(),
		"p50_ms":           float64(pct(0.50).Microseconds()) / 1000, "p99_ms": float64(pct(0.99).Microseconds()) / 1000,
		"accept_seconds": acceptedIn.Seconds(), "end_to_end_seconds": e2e.Seconds(),
	}
	if *asJSON {
		return json.NewEncoder(stdout).Encode(res)
	}
	fmt.Fprintf(stdout, "sent %d: accepted %d, refused %d, failed %d\n", *total, accepted.Load(), refused.Load(), failed.Load())
	fmt.Fprintf(stdout, "accepted: %.0f commands/s (p50 %.1f ms, p99 %.1f ms)\n", res["accepted_per_s"], res["p50_ms"], res["p99_ms"])
	fmt.Fprintf(stdout, "end to end (in the read models): %.0f commands/s\n", res["end_to_end_per_s"])
	return nil
}

func lastSeq(ctx context.Context, cl *http.Client, base, key, ws string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", base+"/v1/workspaces/"+ws, nil)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := cl.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return 0, nil // not projected yet
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("GET workspace: status %d", resp.StatusCode)
	}
	var v struct {
		LastSeq float64 `json:"last_seq"`
	}
	return v.LastSeq, json.NewDecoder(resp.Body).Decode(&v)
}
