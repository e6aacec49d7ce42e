package logging_test

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/internal/logging"
)

type secret string

func (secret) LogValue() slog.Value { return slog.StringValue("[redacted]") }

func TestRedactsSensitiveAttributes(t *testing.T) {
	var buf bytes.Buffer
	log := logging.New(&buf, slog.LevelDebug)
	log.With("api_key", "lbk_leak1").Info("hello",
		"authorization", "Bearer lbk_leak2",
		slog.Group("task", "input", "leak3 text", "id", "t-1"),
		"key", secret("lbk_leak4"),
		"OPENAI_API_KEY", "sk-leak5",
		"database_url", "postgres://u:leak6@h/db",
	)
	out := buf.String()
	for _, leak := range []string{"leak1", "leak2", "leak3", "leak4", "leak5", "leak6"} {
		if strings.Contains(out, leak) {
			t.Errorf("log line leaks %s: %s", leak, out)
		}
	}
	if !strings.Contains(out, `"id":"t-1"`) {
		t.Errorf("non-sensitive attribute lost: %s", out)
	}
}
