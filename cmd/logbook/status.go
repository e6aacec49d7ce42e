package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// runStatus prints a running logbook's /v1/status: its level and every
// instance of every role, with what each owns.
func runStatus(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", settingValue("LOGBOOK_URL"), "logbook base URL: the API or a LOGBOOK_METRICS_ADDR (env LOGBOOK_URL)")
	asJSON := fs.Bool("json", false, "print the status as the API answers it")
	if err := fs.Parse(args); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(*base, "/")+"/v1/status", nil)
	if err != nil {
		return fmt.Errorf("--url: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET /v1/status: %s", resp.Status)
	}
	if *asJSON {
		_, err := stdout.Write(append(body, '\n'))
		return err
	}
	var st struct {
		Level     string            `json:"level"`
		Kafka     struct{ OK bool } `json:"kafka"`
		Postgres  struct{ OK bool } `json:"postgres"`
		CheckedAt time.Time         `json:"checked_at"`
		Instances []instanceStatus  `json:"instances"`
	}
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("GET /v1/status: %w", err)
	}
	fmt.Fprintf(stdout, "level %s   kafka %s   postgres %s   checked %s\n", st.Level, okWord(st.Kafka.OK), okWord(st.Postgres.OK),
		st.CheckedAt.Format(time.RFC3339))
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "INSTANCE\tROLES\tVERSION\tUP\tLEVEL\tLAG\tPARTITIONS")
	now := time.Now()
	for _, in := range st.Instances {
		up := "-"
		if !in.StartedAt.IsZero() {
			up = now.Sub(in.StartedAt).Round(time.Second).String()
		}
		id := in.ID
		if !in.Heartbeat {
			id += " (no heartbeat)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", id, strings.Join(in.Roles, ","), orDash(in.Version), up, orDash(in.Level),
			in.Lag, partitionsText(in.Partitions))
	}
	return tw.Flush()
}

func okWord(ok bool) string {
	if ok {
		return "ok"
	}
	return "DOWN"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// partitionsText is "decider 0-5; logbook-agent 0,2": groups by name,
// partitions as ranges.
func partitionsText(byGroup map[string][]int32) string {
	groups := make([]string, 0, len(byGroup))
	for g := range byGroup {
		groups = append(groups, g)
	}
	sort.Strings(groups)
	var out []string
	for _, g := range groups {
		out = append(out, strings.TrimPrefix(g, "logbook-")+" "+ranges(byGroup[g]))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, "; ")
}

func ranges(ps []int32) string {
	if len(ps) == 0 {
		return "none"
	}
	var out []string
	for i := 0; i < len(ps); {
		j := i
		for j+1 < len(ps) && ps[j+1] == ps[j]+1 {
			j++
		}
		if j > i {
			out = append(out, strconv.Itoa(int(ps[i]))+"-"+strconv.Itoa(int(ps[j])))
		} else {
			out = append(out, strconv.Itoa(int(ps[i])))
		}
		i = j + 1
	}
	return strings.Join(out, ",")
}
