package main

import (
	"strings"
	"testing"
)

func TestDevSyncWritesSetting(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  bool
		ok    bool
	}{
		{"", false, true}, {"false", false, true}, {"true", true, true}, {"1", true, true},
		{"yes", false, false}, {"on", false, false},
	} {
		t.Setenv("LOGBOOK_DEV_SYNC_WRITES", tc.value)
		got, err := devSyncWrites()
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("LOGBOOK_DEV_SYNC_WRITES=%q: got %v, %v; want %v, ok %v", tc.value, got, err, tc.want, tc.ok)
		}
	}
}

func TestShortAdminKeyIsRefusedAtStart(t *testing.T) {
	t.Setenv("LOGBOOK_ADMIN_KEY", "only-twenty-one-chars")
	if _, err := baseConfig(); err == nil || !strings.Contains(err.Error(), "at least 32") {
		t.Fatalf("a 21-character admin key: %v", err)
	}
	t.Setenv("LOGBOOK_ADMIN_KEY", strings.Repeat("k", 32))
	if _, err := baseConfig(); err != nil {
		t.Fatalf("a 32-character admin key: %v", err)
	}
}

func TestAuthFailuresPerMinuteSetting(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  int
		ok    bool
	}{
		{"", 30, true}, {"5", 5, true}, {"0", 0, true}, {"-1", -1, true},
		{"ten", 0, false}, {"2.5", 0, false},
	} {
		t.Setenv("LOGBOOK_AUTH_FAILURES_PER_MINUTE", tc.value)
		c, err := baseConfig()
		if (err == nil) != tc.ok || (tc.ok && c.AuthFailuresPerMinute != tc.want) {
			t.Errorf("LOGBOOK_AUTH_FAILURES_PER_MINUTE=%q: got %d, %v; want %d, ok %v", tc.value, c.AuthFailuresPerMinute, err, tc.want, tc.ok)
		}
	}
}
