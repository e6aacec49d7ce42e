package main

import "testing"

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
