package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
)

// setting is one configuration setting. The table below is the one place
// settings are declared: the parser takes their defaults from it, the
// usage text and `logbook config` print it, and the README's table is
// generated from it (TestSettingsTableInTheREADME).
type setting struct {
	Env  string
	Flag string // the flag that overrides it, if any
	// Default is what the parser gets when the variable is unset; Shown,
	// when set, is how the default reads where it is computed or made.
	Default, Shown string
	For            string // who reads it
	Secret         bool   // never printed, only whether it is set
	Meaning        string
}

// shownDefault is the default as the documentation gives it.
func (s setting) shownDefault() string {
	switch {
	case s.Shown != "":
		return s.Shown
	case s.Default != "":
		return "`" + s.Default + "`"
	}
	return "—"
}

var settings = []setting{
	{Env: "LOGBOOK_KAFKA_BROKERS", For: "all", Shown: "— (dev: embedded broker)", Meaning: "comma-separated seed brokers; required by `serve`"},
	{Env: "LOGBOOK_KAFKA_USER", For: "all", Shown: "— (unauthenticated)", Meaning: "the process's Kafka principal, SASL/SCRAM-SHA-512"},
	{Env: "LOGBOOK_KAFKA_PASSWORD_FILE", For: "all", Meaning: "its password, in a file (0600)"},
	{Env: "LOGBOOK_KAFKA_PASSWORD", For: "all", Secret: true, Meaning: "its password, when there is no file"},
	{Env: "LOGBOOK_DATABASE_URL", For: "all", Secret: true, Shown: "— (dev: embedded Postgres)", Meaning: "Postgres URL; required by `serve`"},
	{Env: "LOGBOOK_ROLES", Flag: "--roles", For: "serve", Default: "api,decider,projector,agent", Meaning: "roles of `serve`; `dev` runs all four"},
	{Env: "LOGBOOK_HTTP_ADDR", Flag: "--http", For: "api", Default: "127.0.0.1:8080", Meaning: "API listen address"},
	{Env: "LOGBOOK_METRICS_ADDR", For: "all", Shown: "off", Meaning: "a listener of its own for `/metrics`, `/healthz`, `/readyz` and `/v1/status`, whatever the roles: how a process without the api role is scraped and probed"},
	{Env: "LOGBOOK_HTTP_READ_TIMEOUT", For: "api", Default: "15s", Meaning: "longest a client may take to send a request (headers: at most 5 s of it)"},
	{Env: "LOGBOOK_HTTP_WRITE_TIMEOUT", For: "api", Default: "45s", Meaning: "longest an answer may take, `Prefer: wait` (at most 30 s) included: keep it above that"},
	{Env: "LOGBOOK_HTTP_IDLE_TIMEOUT", For: "api", Default: "2m", Meaning: "how long an idle keep-alive connection stays open"},
	{Env: "LOGBOOK_SHUTDOWN_TIMEOUT", For: "api", Default: "10s", Meaning: "after the drain, how long the HTTP server waits for requests in flight before it closes them"},
	{Env: "LOGBOOK_DRAIN_DELAY", For: "api", Default: "0s", Meaning: "on SIGTERM, how long the API keeps serving with `/readyz` at 503 `draining` before its listener closes: above the load balancer's readiness period, for restarts no client notices"},
	{Env: "LOGBOOK_OTLP_ENDPOINT", For: "all", Shown: "off", Meaning: "OpenTelemetry collector (OTLP/HTTP base URL, e.g. `http://collector:4318`): traces of each command from the HTTP request through the decider, the projectors and the agent's provider call, carried in the Kafka records' headers"},
	{Env: "LOGBOOK_TRACE_SAMPLE_RATIO", For: "all", Default: "1", Meaning: "share of new traces kept when tracing is on, 0–1 (a caller's traceparent keeps its own decision)"},
	{Env: "LOGBOOK_DEBUG_ADDR", For: "all", Shown: "off", Meaning: "pprof listener, apart from the API (keep it on loopback)"},
	{Env: "LOGBOOK_ADMIN_KEY", For: "api", Secret: true, Shown: "generated, printed once", Meaning: "bootstrap admin key (at least 32 characters, refused at start otherwise), stored as `bootstrap-admin`"},
	{Env: "LOGBOOK_TOPIC_PREFIX", For: "all", Default: "logbook.", Meaning: "topic name prefix"},
	{Env: "LOGBOOK_PARTITIONS", For: "all", Shown: "12 (6 in dev)", Meaning: "partitions of every topic but `dlq` and `access`, 1–1000"},
	{Env: "LOGBOOK_LOG_LEVEL", For: "all", Default: "info", Meaning: "log level: debug, info, warn, error"},
	{Env: "LOGBOOK_MAX_COMMAND_LAG", For: "api", Shown: "50,000", Meaning: "decider backlog above which commands get 429 `backlog` + Retry-After"},
	{Env: "LOGBOOK_MAX_INFLIGHT_COMMANDS", For: "api", Shown: "64 × CPUs", Meaning: "commands one API process takes in at once; past it 429 `overloaded` (-1: no bound)"},
	{Env: "LOGBOOK_RATE_PER_KEY", For: "api", Shown: "5,000", Meaning: "commands per second per API key; negative disables; 0 is refused"},
	{Env: "LOGBOOK_AUTH_FAILURES_PER_MINUTE", For: "api", Shown: "30", Meaning: "failed authentications a source address may have in a minute before all its requests get 429 for a minute; 0 or less disables (behind a proxy every client shares its address: throttle there)"},
	{Env: "LOGBOOK_MASTER_KEY_FILE", For: "api, agent", Shown: "— (dev: `DIR/master.key`)", Meaning: "master keys, `id:hex` per line, the first current (0600 or 0400); they wrap the workspaces' data keys"},
	{Env: "LOGBOOK_MASTER_KEY", For: "api, agent", Secret: true, Meaning: "the same lines (comma-separated), when there is no file"},
	{Env: "LOGBOOK_SIGNING_KEY_FILE", For: "api, agent", Shown: "— (dev: `DIR/signing.key`)", Meaning: "the Ed25519 key (`id:hex` seed, 0600) every command is signed with; `logbook keys signing` makes one"},
	{Env: "LOGBOOK_SIGNING_KEY", For: "api, agent", Secret: true, Meaning: "the same line, when there is no file"},
	{Env: "LOGBOOK_SIGNING_PUBLIC_KEYS_FILE", For: "decider, audit", Shown: "the signing key's own", Meaning: "public keys (`id:hex`, several for rotation) the decider and `audit verify` accept; `logbook keys signing --public FILE` prints one"},
	{Env: "LOGBOOK_SIGNING_PUBLIC_KEYS", For: "decider, audit", Meaning: "the same lines, when there is no file"},
	{Env: "OPENAI_API_KEY", For: "agent", Secret: true, Meaning: "the OpenAI-compatible provider's API key"},
	{Env: "OPENAI_BASE_URL", For: "agent", Shown: "OpenAI's", Meaning: "the provider's base URL"},
	{Env: "LOGBOOK_AI_PROVIDER", For: "agent", Shown: "`openai` when either OpenAI variable is set, else `local`", Meaning: "`openai` or `local` (the built-in responder)"},
	{Env: "LOGBOOK_AGENT_CONCURRENCY", For: "agent", Shown: "16", Meaning: "provider calls at once"},
	{Env: "LOGBOOK_AGENT_PER_WORKSPACE", For: "agent", Shown: "4", Meaning: "provider calls at once for one workspace"},
	{Env: "LOGBOOK_AGENT_WINDOW", For: "agent", Shown: "256", Meaning: "unacknowledged events held per partition: past it the worker stops fetching"},
	{Env: "LOGBOOK_AGENT_CALL_TIMEOUT", For: "agent", Shown: "1m0s", Meaning: "one provider call"},
	{Env: "LOGBOOK_AGENT_HANDLER_TIMEOUT", For: "agent", Shown: "2m0s", Meaning: "one attempt, retries included"},
	{Env: "LOGBOOK_AGENT_RETRY_BACKOFF", For: "agent", Shown: "500ms", Meaning: "first wait before retrying a call"},
	{Env: "LOGBOOK_AGENT_BREAKER_DELAY", For: "agent", Shown: "20s", Meaning: "how long the breaker stays open before a probe"},
	{Env: "LOGBOOK_AGENT_AUTH_PAUSE", For: "agent", Shown: "5m0s", Meaning: "pause after the provider refused the key or the spend limit"},
	{Env: "LOGBOOK_AGENT_RAMP", For: "agent", Shown: "20s", Meaning: "from one call back to full concurrency after an outage"},
	{Env: "LOGBOOK_AGENT_SWEEP_EVERY", For: "agent", Shown: "1m0s", Meaning: "how often tasks left waiting over budget or rate are looked at again"},
	{Env: "LOGBOOK_DATA", Flag: "--data", For: "dev, tools", Default: ".logbook", Meaning: "dev data directory; the tools use its broker and database when the first two variables are unset"},
	{Env: "LOGBOOK_DEV_SYNC_WRITES", For: "dev", Default: "false", Meaning: "the embedded broker fsyncs every batch before acknowledging it (about 3× slower)"},
	{Env: "LOGBOOK_PG_BIN", For: "dev", Shown: "found under /usr/lib/postgresql or on PATH", Meaning: "directory of the PostgreSQL server binaries the embedded Postgres runs"},
	{Env: "LOGBOOK_URL", Flag: "--url", For: "tools", Default: "http://127.0.0.1:8080", Meaning: "the logbook the HTTP tools call (`status`, `keys create`, `audit export`, `loadgen`)"},
	{Env: "LOGBOOK_API_KEY", Flag: "--key", For: "tools", Secret: true, Meaning: "their API key"},
}

// lookupSetting finds a setting by its variable.
func lookupSetting(name string) (setting, bool) {
	for _, s := range settings {
		if s.Env == name {
			return s, true
		}
	}
	return setting{}, false
}

// settingValue is the variable's value, or its default from the table.
func settingValue(name string) string {
	s, _ := lookupSetting(name)
	return env(name, s.Default)
}

// settingsUsage is the settings part of the usage text.
func settingsUsage() string {
	var b strings.Builder
	b.WriteString("\nSettings (environment; a flag, where named, overrides it; `logbook config` prints the effective ones):\n")
	for _, s := range settings {
		name := s.Env
		if s.Flag != "" {
			name += " / " + s.Flag
		}
		fmt.Fprintf(&b, "  %-40s %s; default %s\n", name, strings.ReplaceAll(s.Meaning, "`", ""), strings.ReplaceAll(s.shownDefault(), "`", ""))
	}
	return b.String()
}

// settingsMarkdown is the README's table of settings.
func settingsMarkdown() string {
	var b strings.Builder
	b.WriteString("| variable | flag | default | read by | meaning |\n|---|---|---|---|---|\n")
	for _, s := range settings {
		flag := s.Flag
		if flag != "" {
			flag = "`" + flag + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s | %s |\n", s.Env, flag, s.shownDefault(), s.For, s.Meaning)
	}
	return b.String()
}

// effectiveSettings lists each setting's value in this environment: the
// variable's, redacted when secret, or the default.
func effectiveSettings() [][3]string {
	out := make([][3]string, 0, len(settings))
	for _, s := range settings {
		v, set := os.LookupEnv(s.Env)
		switch {
		case set && v != "" && s.Secret:
			out = append(out, [3]string{s.Env, "(set, redacted)", "env"})
		case set && v != "":
			out = append(out, [3]string{s.Env, v, "env"})
		default:
			out = append(out, [3]string{s.Env, strings.ReplaceAll(s.shownDefault(), "`", ""), "default"})
		}
	}
	return out
}

// runConfig prints the effective settings, secrets redacted, and checks
// them as serve would.
func runConfig(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "one JSON object per setting: name, value, source")
	if err := fs.Parse(args); err != nil {
		return err
	}
	rows := effectiveSettings()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		for _, r := range rows {
			if err := enc.Encode(map[string]string{"name": r[0], "value": r[1], "source": r[2]}); err != nil {
				return err
			}
		}
	} else {
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
		for _, r := range rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\n", r[0], r[1], r[2])
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if _, err := baseConfig(); err != nil {
		return fmt.Errorf("invalid: %w", err)
	}
	return nil
}
