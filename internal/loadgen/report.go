package loadgen

import (
	"encoding/json"
	"fmt"
	"html/template"
	"io"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"time"
)

// ReportFormat is the version of the JSON report; readers refuse a newer
// one.
const ReportFormat = 1

// Result is a run's report.
type Result struct {
	Format       int          `json:"format"`
	RunID        string       `json:"run_id"`
	Config       ReportConfig `json:"config"`
	SetupSeconds float64      `json:"setup_seconds"`

	Sent         int64 `json:"sent"`
	Acknowledged int64 `json:"acknowledged"`
	// Refused commands were answered 429/503 on every attempt.
	Refused int64 `json:"refused"`
	// Failed commands got another answer, or none after every retry.
	Failed       int64 `json:"failed"`
	Throttled429 int64 `json:"throttled_429"`
	Throttled503 int64 `json:"throttled_503"`
	Retries      int64 `json:"retries"`
	// Dropped commands were due while Concurrency were in flight (open
	// loop); Abandoned were in flight when the run ended.
	Dropped   int64           `json:"dropped"`
	Abandoned int64           `json:"abandoned"`
	ByOp      map[Op]OpCounts `json:"by_op"`
	Failures  []string        `json:"failures,omitempty"`

	SendSeconds       float64 `json:"send_seconds"`
	EndToEndSeconds   float64 `json:"end_to_end_seconds"`
	AcceptedPerSecond float64 `json:"accepted_per_s"`
	EndToEndPerSecond float64 `json:"end_to_end_per_s"`
	DrainError        string  `json:"drain_error,omitempty"`
	// Accept is request → acknowledgement of the attempt acknowledged;
	// Command is due → acknowledged, with every retry and wait.
	Accept  Latency `json:"accept_latency"`
	Command Latency `json:"command_latency"`

	Timeline []Sample     `json:"timeline"`
	Check    *CheckResult `json:"check,omitempty"`

	// What `loadgen check` needs to check the run again later: the run's
	// workspaces, where the run began in the log, and every command the
	// server acknowledged (set-up ones first).
	Workspaces []string                   `json:"workspace_ids"`
	LogFrom    map[string]map[int32]int64 `json:"log_from,omitempty"`
	History    []Acked                    `json:"history"`
}

// ReadReport reads a JSON report, refusing a format newer than this code.
func ReadReport(path string) (*Result, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("report %s: %w", path, err)
	}
	switch {
	case r.Format > ReportFormat:
		return nil, fmt.Errorf("report %s is format %d; this logbook reads up to %d", path, r.Format, ReportFormat)
	case r.Format < 1 || len(r.Workspaces) == 0:
		return nil, fmt.Errorf("report %s: not a loadgen report", path)
	}
	return &r, nil
}

// ReportConfig is the run's configuration, as the report shows it.
type ReportConfig struct {
	Workspaces  int     `json:"workspaces"`
	Commands    int     `json:"commands"`
	Duration    string  `json:"duration"`
	Concurrency int     `json:"concurrency"`
	Rate        float64 `json:"rate"`
	Mix         string  `json:"mix"`
	InputBytes  int     `json:"input_bytes"`
	Retries     int     `json:"retries"`
	Seed        uint64  `json:"seed"`
}

func reportConfig(c Config) ReportConfig {
	return ReportConfig{Workspaces: c.Workspaces, Commands: c.Commands, Duration: c.Duration.String(),
		Concurrency: c.Concurrency, Rate: c.Rate, Mix: c.Mix.String(), InputBytes: c.InputBytes,
		Retries: c.Retries, Seed: c.Seed}
}

// Summary is the flat figures `loadgen --json` prints.
func (r *Result) Summary() map[string]any {
	m := map[string]any{
		"commands": r.Sent, "accepted": r.Acknowledged, "refused": r.Refused, "failed": r.Failed,
		"throttled_429": r.Throttled429, "throttled_503": r.Throttled503, "retries": r.Retries,
		"dropped": r.Dropped, "abandoned": r.Abandoned,
		"concurrency": r.Config.Concurrency, "workspaces": r.Config.Workspaces, "input_bytes": r.Config.InputBytes,
		"rate": r.Config.Rate, "mix": r.Config.Mix,
		"accepted_per_s": r.AcceptedPerSecond, "end_to_end_per_s": r.EndToEndPerSecond,
		"p50_ms": r.Accept.P50, "p99_ms": r.Accept.P99, "p999_ms": r.Accept.P999, "max_ms": r.Accept.Max,
		"command_p99_ms": r.Command.P99,
		"accept_seconds": r.SendSeconds, "end_to_end_seconds": r.EndToEndSeconds,
	}
	if r.DrainError != "" {
		m["drain_error"] = r.DrainError
	}
	if r.Check != nil {
		m["check_ok"] = r.Check.OK()
		m["lost"], m["duplicated"], m["seq_gaps"], m["read_model_mismatches"] =
			r.Check.Lost, r.Check.Duplicated, r.Check.SeqGaps, r.Check.Mismatches
	}
	return m
}

// WriteText prints the figures for a person.
func (r *Result) WriteText(w io.Writer) {
	fmt.Fprintf(w, "sent %d: acknowledged %d, refused %d, failed %d (429: %d, 503: %d, retries %d, dropped %d, abandoned %d)\n",
		r.Sent, r.Acknowledged, r.Refused, r.Failed, r.Throttled429, r.Throttled503, r.Retries, r.Dropped, r.Abandoned)
	for _, op := range Ops {
		if c, ok := r.ByOp[op]; ok {
			fmt.Fprintf(w, "  %-8s sent %d, acknowledged %d, refused %d, failed %d\n", op, c.Sent, c.Acknowledged, c.Refused, c.Failed)
		}
	}
	fmt.Fprintf(w, "accepted: %.0f commands/s; accept latency p50 %.1f ms, p99 %.1f ms, p99.9 %.1f ms, max %.1f ms\n",
		r.AcceptedPerSecond, r.Accept.P50, r.Accept.P99, r.Accept.P999, r.Accept.Max)
	fmt.Fprintf(w, "command latency (retries and waits included): p50 %.1f ms, p99 %.1f ms, max %.1f ms\n",
		r.Command.P50, r.Command.P99, r.Command.Max)
	fmt.Fprintf(w, "end to end (in the read models): %.0f commands/s\n", r.EndToEndPerSecond)
	if r.DrainError != "" {
		fmt.Fprintf(w, "not all of it reached the read models: %s\n", r.DrainError)
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "  failed: %s\n", f)
	}
	if r.Check != nil {
		r.Check.WriteText(w)
	}
}

// WriteFiles writes the JSON report to path and the HTML report beside it
// (path with .html for its extension).
func (r *Result) WriteFiles(path string) (htmlPath string, err error) {
	r.Format = ReportFormat
	raw, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
		return "", err
	}
	htmlPath = strings.TrimSuffix(path, ".json") + ".html"
	f, err := os.Create(htmlPath)
	if err != nil {
		return "", err
	}
	if err := r.WriteHTML(f); err != nil {
		f.Close()
		return "", err
	}
	return htmlPath, f.Close()
}

// chart is one line chart of the HTML report, drawn as inline SVG.
type chart struct {
	Title  string
	Unit   string
	Series []series
	MaxY   float64
	MaxT   float64
}

type series struct {
	Name   string
	Color  string
	Points string // SVG polyline points
	Last   float64
}

const (
	chartW, chartH = 720.0, 200.0
)

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}

func newChart(title, unit string, timeline []Sample, names []string, value func(Sample, string) (float64, bool)) chart {
	c := chart{Title: title, Unit: unit, MaxY: 1}
	for _, s := range timeline {
		c.MaxT = math.Max(c.MaxT, s.At)
		for _, n := range names {
			if v, ok := value(s, n); ok {
				c.MaxY = math.Max(c.MaxY, v)
			}
		}
	}
	c.MaxT = math.Max(c.MaxT, 1)
	for i, n := range names {
		var pts []string
		var last float64
		for _, s := range timeline {
			v, ok := value(s, n)
			if !ok {
				continue
			}
			x := s.At / c.MaxT * chartW
			y := chartH - v/c.MaxY*chartH
			pts = append(pts, fmt.Sprintf("%.1f,%.1f", x, y))
			last = v
		}
		c.Series = append(c.Series, series{Name: n, Color: palette[i%len(palette)], Points: strings.Join(pts, " "), Last: last})
	}
	return c
}

// WriteHTML writes a self-contained report: no script, no remote asset.
func (r *Result) WriteHTML(w io.Writer) error {
	rate := func(s Sample, n string) (float64, bool) {
		switch n {
		case "acknowledged/s":
			return float64(s.Acknowledged), true
		case "429+503/s":
			return float64(s.Throttled), true
		case "failed/s":
			return float64(s.Failed), true
		}
		return 0, false
	}
	lat := func(s Sample, n string) (float64, bool) {
		switch n {
		case "p50":
			return s.P50Ms, s.Acknowledged > 0
		case "p99":
			return s.P99Ms, s.Acknowledged > 0
		case "max":
			return s.MaxMs, s.Acknowledged > 0
		}
		return 0, false
	}
	groups := map[string]bool{}
	for _, s := range r.Timeline {
		for g := range s.Lag {
			groups[g] = true
		}
	}
	lag := func(s Sample, g string) (float64, bool) {
		v, ok := s.Lag[g]
		return float64(v), ok
	}
	charts := []chart{
		newChart("Throughput", "commands per second", r.Timeline, []string{"acknowledged/s", "429+503/s", "failed/s"}, rate),
		newChart("Accept latency", "ms", r.Timeline, []string{"p50", "p99", "max"}, lat),
		newChart("Consumer lag", "records", r.Timeline, slices.Sorted(maps.Keys(groups)), lag),
	}
	return reportPage.Execute(w, map[string]any{"R": r, "Charts": charts, "W": chartW, "H": chartH,
		"Generated": time.Now().UTC().Format(time.RFC3339)})
}

var reportPage = template.Must(template.New("report").Funcs(template.FuncMap{
	"f1": func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"f0": func(v float64) string { return fmt.Sprintf("%.0f", v) },
}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>logbook loadgen {{.R.RunID}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:60em}
table{border-collapse:collapse;margin:1em 0}td,th{padding:.2em .8em;border-bottom:1px solid #ddd;text-align:right}
th:first-child,td:first-child{text-align:left}.bad{color:#b00;font-weight:bold}.ok{color:#070;font-weight:bold}
svg{background:#fafafa;border:1px solid #ddd}.legend span{margin-right:1.5em}
</style></head><body>
<h1>logbook loadgen — run {{.R.RunID}}</h1>
<p>{{.R.Config.Workspaces}} workspaces, mix {{.R.Config.Mix}}, concurrency {{.R.Config.Concurrency}},
{{if gt .R.Config.Rate 0.0}}open loop at {{f0 .R.Config.Rate}} commands/s{{else}}closed loop{{end}},
{{if .R.Config.Commands}}{{.R.Config.Commands}} commands{{end}} {{if ne .R.Config.Duration "0s"}}for {{.R.Config.Duration}}{{end}}; generated {{.Generated}}.</p>
<table>
<tr><th>figure</th><th>value</th></tr>
<tr><td>sent</td><td>{{.R.Sent}}</td></tr>
<tr><td>acknowledged</td><td>{{.R.Acknowledged}}</td></tr>
<tr><td>refused (429/503 on every attempt)</td><td>{{.R.Refused}}</td></tr>
<tr><td>failed</td><td>{{.R.Failed}}</td></tr>
<tr><td>429 / 503 answers</td><td>{{.R.Throttled429}} / {{.R.Throttled503}}</td></tr>
<tr><td>accepted per second</td><td>{{f0 .R.AcceptedPerSecond}}</td></tr>
<tr><td>end to end per second</td><td>{{f0 .R.EndToEndPerSecond}}</td></tr>
<tr><td>accept latency p50 / p99 / p99.9 / max (ms)</td><td>{{f1 .R.Accept.P50}} / {{f1 .R.Accept.P99}} / {{f1 .R.Accept.P999}} / {{f1 .R.Accept.Max}}</td></tr>
<tr><td>command latency p50 / p99 / max (ms)</td><td>{{f1 .R.Command.P50}} / {{f1 .R.Command.P99}} / {{f1 .R.Command.Max}}</td></tr>
</table>
{{with .R.Check}}<h2>Check: {{if .OK}}<span class="ok">clean</span>{{else}}<span class="bad">FAILED</span>{{end}}</h2>
<table>
<tr><td>acknowledged commands followed</td><td>{{.Acknowledged}}</td></tr>
<tr><td>accepted / rejected</td><td>{{.Accepted}} / {{.Rejected}}</td></tr>
<tr><td>lost (acknowledged, no outcome or effect in the log)</td><td{{if .Lost}} class="bad"{{end}}>{{.Lost}}</td></tr>
<tr><td>duplicated effects</td><td{{if .Duplicated}} class="bad"{{end}}>{{.Duplicated}}</td></tr>
<tr><td>seq gaps or reorderings</td><td{{if .SeqGaps}} class="bad"{{end}}>{{.SeqGaps}}</td></tr>
<tr><td>read-model mismatches</td><td{{if .Mismatches}} class="bad"{{end}}>{{.Mismatches}}</td></tr>
</table>
{{range .Examples}}<p class="bad">{{.}}</p>{{end}}{{end}}
{{range .Charts}}<h2>{{.Title}}</h2>
<svg width="{{$.W}}" height="{{$.H}}" viewBox="0 0 {{$.W}} {{$.H}}" role="img" aria-label="{{.Title}}">
{{range .Series}}<polyline fill="none" stroke="{{.Color}}" stroke-width="1.5" points="{{.Points}}"/>{{end}}
</svg>
<p class="legend">{{range .Series}}<span style="color:{{.Color}}">■ {{.Name}} (last {{f1 .Last}})</span>{{end}}<br>
y: 0 to {{f1 .MaxY}} {{.Unit}}; x: 0 to {{f0 .MaxT}} s</p>{{end}}
</body></html>
`))
