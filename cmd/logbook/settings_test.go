package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/consumers/agent"
)

// TestSettingsTableInTheDocs: the README's and ARCHITECTURE's settings
// tables are the table in settings.go (LOGBOOK_WRITE_GOLDEN=1 rewrites
// them).
func TestSettingsTableInTheDocs(t *testing.T) {
	want := settingsMarkdown()
	block := regexp.MustCompile(`(?s)<!-- settings:begin -->\n.*?<!-- settings:end -->`)
	for _, file := range []string{"../../README.md", "../../docs/ARCHITECTURE.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		gen := "<!-- settings:begin -->\n" + want + "<!-- settings:end -->"
		if os.Getenv("LOGBOOK_WRITE_GOLDEN") == "1" {
			if !block.Match(b) {
				t.Fatalf("%s has no settings markers", file)
			}
			b = block.ReplaceAllLiteral(b, []byte(gen))
			if err := os.WriteFile(file, b, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if got := block.Find(b); string(got) != gen {
			t.Errorf("%s: the settings table differs from settings.go; run LOGBOOK_WRITE_GOLDEN=1 go test -run TestSettingsTableInTheDocs ./cmd/logbook/", file)
		}
	}
}

// TestEverySettingReadIsInTheTable: every LOGBOOK_ and OPENAI_ variable the
// code reads is a row of the table, and every row is read somewhere.
func TestEverySettingReadIsInTheTable(t *testing.T) {
	var files []string
	for _, pattern := range []string{"*.go", "../../internal/*/*.go"} {
		m, err := filepath.Glob(pattern)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	name := regexp.MustCompile(`"((?:LOGBOOK|OPENAI)_[A-Z0-9_]+)"`)
	read := map[string]bool{}
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasSuffix(f, "settings.go") || strings.Contains(f, "test/") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range name.FindAllStringSubmatch(string(b), -1) {
			read[m[1]] = true
		}
	}
	for v := range read {
		if _, ok := lookupSetting(v); !ok && !strings.HasPrefix(v, "LOGBOOK_TEST_") && v != "LOGBOOK_WRITE_GOLDEN" {
			t.Errorf("%s is read but not in the settings table", v)
		}
	}
	seen := map[string]bool{}
	for _, s := range settings {
		if seen[s.Env] {
			t.Errorf("%s twice in the table", s.Env)
		}
		seen[s.Env] = true
		if !read[s.Env] {
			t.Errorf("%s is in the table but nothing reads it", s.Env)
		}
	}
}

// TestAgentSettingDefaultsAreTheWorkersOwn: the documented defaults of the
// agent's settings are those agent.Config fills in.
func TestAgentSettingDefaultsAreTheWorkersOwn(t *testing.T) {
	d := agent.Config{}.WithDefaults()
	for env, v := range map[string]string{
		"LOGBOOK_AGENT_CONCURRENCY":     strconv.Itoa(d.Concurrency),
		"LOGBOOK_AGENT_PER_WORKSPACE":   strconv.Itoa(d.PerWorkspace),
		"LOGBOOK_AGENT_WINDOW":          strconv.Itoa(d.Window),
		"LOGBOOK_AGENT_CALL_TIMEOUT":    d.CallTimeout.String(),
		"LOGBOOK_AGENT_HANDLER_TIMEOUT": d.HandlerTimeout.String(),
		"LOGBOOK_AGENT_RETRY_BACKOFF":   d.RetryBackoff.String(),
		"LOGBOOK_AGENT_BREAKER_DELAY":   d.BreakerDelay.String(),
		"LOGBOOK_AGENT_AUTH_PAUSE":      d.AuthPause.String(),
		"LOGBOOK_AGENT_RAMP":            d.Ramp.String(),
		"LOGBOOK_AGENT_SWEEP_EVERY":     d.SweepEvery.String(),
	} {
		s, ok := lookupSetting(env)
		if !ok || s.Shown != v {
			t.Errorf("%s: documented default %q, the worker's %q", env, s.Shown, v)
		}
	}
}

// TestConfigRedactsSecrets: `logbook config` shows that a secret is set,
// never its value.
func TestConfigRedactsSecrets(t *testing.T) {
	t.Setenv("LOGBOOK_DATABASE_URL", "postgres://u:pw-7f3a9c2e@db/x")
	t.Setenv("OPENAI_API_KEY", "sk-test-7f3a9c2e41b84d6f")
	t.Setenv("LOGBOOK_TOPIC_PREFIX", "team.")
	var out, errOut strings.Builder
	if err := runConfig(nil, &out, &errOut); err != nil {
		t.Fatalf("config: %v\n%s", err, errOut.String())
	}
	s := out.String()
	if strings.Contains(s, "pw-7f3a9c2e") || strings.Contains(s, "sk-test") {
		t.Fatalf("a secret in the output:\n%s", s)
	}
	for _, want := range []string{"LOGBOOK_DATABASE_URL", "(set, redacted)", "team.", "LOGBOOK_ROLES"} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q in:\n%s", want, s)
		}
	}
	t.Setenv("LOGBOOK_PARTITIONS", "0")
	if err := runConfig(nil, &out, &errOut); err == nil || !strings.Contains(err.Error(), "LOGBOOK_PARTITIONS") {
		t.Errorf("an invalid setting: %v", err)
	}
}
