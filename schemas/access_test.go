package schemas_test

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/schemas"
)

// Today's code reads format 1 as logbook wrote it, and writes it the same.
func TestAccessRecordFormat1(t *testing.T) {
	raw, err := os.ReadFile("testdata/access-v1.json")
	if err != nil {
		t.Fatal(err)
	}
	r, err := schemas.DecodeAccess(raw)
	if err != nil {
		t.Fatal(err)
	}
	want := schemas.AccessRecord{V: 1, ID: "0190d6a4-0000-7000-8000-00000000e001",
		At: time.Date(2026, 11, 24, 10, 0, 0, 123e6, time.UTC), Outcome: schemas.AccessHidden, Status: 404, Code: "not_found",
		PrincipalID: "key_0190d6a4-0000-7000-8000-00000000d001", Role: "writer", Method: "GET",
		Route: "/v1/workspaces/{ws}/tasks", WorkspaceID: "0190d6a4-0000-7000-8000-00000000a001", Source: "192.0.2.7",
		RequestID: "host/abc-000001"}
	if r != want {
		t.Fatalf("read %+v\nwant %+v", r, want)
	}
	again, _ := json.Marshal(r)
	if strings.TrimSpace(string(raw)) != string(again) {
		t.Fatalf("format 1 is written as\n%s\nnot\n%s", again, raw)
	}
	for _, bad := range []string{`{"v":2,"id":"x","outcome":"hidden"}`, `{"id":"x","outcome":"hidden"}`, `{"v":1}`, `[`} {
		if _, err := schemas.DecodeAccess([]byte(bad)); err == nil {
			t.Errorf("DecodeAccess(%s) = nil error", bad)
		}
	}
}
