package decider

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/schemas"
)

const (
	goldenWS   = "0190d6a4-0000-7000-8000-00000000a001"
	goldenTask = "0190d6a4-0000-7000-8000-00000000b001"
	goldenKey  = "key_0190d6a4-0000-7000-8000-00000000d001"
)

// goldenState is what every directory under testdata/state holds, each in
// its own format.
func goldenState(t *testing.T) *partitionState {
	t.Helper()
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	p := newPartitionState()
	p.next = 7
	p.workspaces[goldenWS] = &workspaceState{
		Workspace: &domain.Workspace{ID: goldenWS, Name: "golden", Status: domain.WorkspaceStatusActive, Version: 1,
			CreatedAt: at("2026-11-23T23:51:44.595066046Z"), Policy: domain.AIPolicy{FallbackMode: "none"}},
		Chain:  schemas.Chain{Seq: 2, Hash: "1a14da5ebd371555cc4af1bfbd456e997fd1d533550db19e8869bd262d91164c"},
		Recent: &window{},
	}
	for _, o := range []outcome{
		{CommandID: "0190d6a4-0000-7000-8000-00000000c001", AggregateID: goldenWS},
		{CommandID: "0190d6a4-0000-7000-8000-00000000c002", AggregateID: goldenTask},
		{CommandID: "0190d6a4-0000-7000-8000-00000000c003", Rejected: true, Code: domain.CodeConflict,
			Reason: `task "0190d6a4-0000-7000-8000-00000000b001" cannot go from pending to completed`},
	} {
		p.workspaces[goldenWS].Recent.add(o, false, 0)
	}
	// The task as decisions see it: every format restores this much (the
	// title "golden task", input "in", priority 1 and times of the older
	// formats stay in their files, unread).
	p.tasks[taskRef{goldenWS, goldenTask}] = hold(&domain.Task{ID: goldenTask, WorkspaceID: goldenWS,
		Status: domain.TaskStatusPending, Version: 1})
	p.keys[goldenKey] = &domain.Key{ID: goldenKey, Role: domain.RoleReader, Label: "golden", Status: domain.KeyStatusRevoked,
		Hash: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", Version: 2,
		IssuedAt: at("2026-11-24T10:00:00.5Z"), RevokedAt: at("2026-11-24T10:05:00Z")}
	return p
}

// goldenCommands are the window's command records of format 3 and later,
// in log order: the files cmd1.json, cmd2.json… of a golden directory.
var goldenCommands = []string{"0190d6a4-0000-7000-8000-00000000c001", "0190d6a4-0000-7000-8000-00000000c002",
	"0190d6a4-0000-7000-8000-00000000c003"}

// loadGolden applies a golden directory's records in an order a compacted
// log can hold: the window's command records before the workspace record
// that came with the last of them.
func loadGolden(t *testing.T, dir string) *partitionState {
	t.Helper()
	type rec struct{ key, file string }
	recs := []rec{{keyOffset, "offset"}}
	for i, id := range goldenCommands {
		recs = append(recs, rec{commandKey(goldenWS, id), "cmd" + strconv.Itoa(i+1) + ".json"})
	}
	recs = append(recs, rec{keyWorkspace + goldenWS, "workspace.json"}, rec{keyTask + goldenTask, "task.json"}, rec{keyKey + goldenKey, "key.json"})
	p := newPartitionState()
	for _, r := range recs {
		raw, err := os.ReadFile(filepath.Join(dir, r.file))
		if errors.Is(err, os.ErrNotExist) && (r.file == "key.json" || strings.HasPrefix(r.file, "cmd")) {
			continue // keys came with format 1, command records with format 3
		}
		if err != nil {
			t.Fatal(err)
		}
		if err := p.apply(r.key, bytes.TrimSpace(raw)); err != nil {
			t.Fatalf("%s/%s: %v", dir, r.file, err)
		}
	}
	return p
}

// Today's code reads every format ever written to the same state.
func TestStateRecordsOfEveryFormatRestore(t *testing.T) {
	dirs, err := filepath.Glob("testdata/state/*")
	if err != nil || len(dirs) < 3 {
		t.Fatalf("golden directories: %v, %v", dirs, err)
	}
	want := goldenState(t)
	for _, dir := range dirs {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			got := loadGolden(t, dir)
			if len(got.keys) == 0 && dir < "testdata/state/format1" {
				got.keys = want.keys
			}
			// A window read from a workspace record is written out as
			// command records at the workspace's next write.
			if w := got.workspaces[goldenWS]; w != nil {
				if held := dir < "testdata/state/format3"; w.legacy != held {
					t.Fatalf("%s: window to write out %v, want %v", dir, w.legacy, held)
				}
				w.legacy = false
			}
			if got.next != want.next || !reflect.DeepEqual(got.workspaces, want.workspaces) || !reflect.DeepEqual(got.tasks, want.tasks) ||
				!reflect.DeepEqual(got.keys, want.keys) {
				t.Fatalf("%s restored\n%+v %+v %d\nwant\n%+v %+v %d", dir, *got.workspaces[goldenWS], got.tasks[taskRef{goldenWS, goldenTask}], got.next,
					*want.workspaces[goldenWS], want.tasks[taskRef{goldenWS, goldenTask}], want.next)
			}
		})
	}
}

// What this version writes is, byte for byte, the newest golden format: a
// change to the stored format must come with a new format number and a new
// golden directory, never silently.
func TestStateWrittenTodayIsTheNewestGoldenFormat(t *testing.T) {
	dir := filepath.Join("testdata/state", "format"+string(rune('0'+stateFormat)))
	s := goldenState(t)
	ws, err := encodeWorkspace(*s.workspaces[goldenWS])
	if err != nil {
		t.Fatal(err)
	}
	task, err := encodeTask(s.tasks[taskRef{goldenWS, goldenTask}].task(taskRef{goldenWS, goldenTask}))
	if err != nil {
		t.Fatal(err)
	}
	key, err := encodeKey(s.keys[goldenKey])
	if err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"workspace.json": ws, "task.json": task, "key.json": key, "offset": encodeOffset(s.next)}
	for i, o := range s.workspaces[goldenWS].Recent.all() {
		if o.CommandID != goldenCommands[i] {
			t.Fatalf("window entry %d is %s, the golden files hold %s", i, o.CommandID, goldenCommands[i])
		}
		if files["cmd"+strconv.Itoa(i+1)+".json"], err = encodeCommand(o); err != nil {
			t.Fatal(err)
		}
	}
	for file, got := range files {
		if os.Getenv("LOGBOOK_WRITE_GOLDEN") != "" {
			if err := os.WriteFile(filepath.Join(dir, file), append(got, '\n'), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(bytes.TrimSpace(want), got) {
			t.Errorf("%s: this version writes\n%s\nthe golden format %d is\n%s", file, got, stateFormat, want)
		}
	}
}

// A record from a newer logbook fails the restore loudly; so does one whose
// window has lost its command ids (what a silent rename once did).
func TestStateRecordsThisVersionCannotReadFail(t *testing.T) {
	p := newPartitionState()
	next := strconv.Itoa(stateFormat + 1)
	for _, tc := range []struct{ key, value, want string }{
		{keyWorkspace + "w", `{"v":` + next + `,"workspace":{"id":"w"}}`, "newer"},
		{keyTask + "t", `{"v":9,"id":"t"}`, "newer"},
		{keyOffset, `{"v":` + next + `,"next_command_offset":5}`, "newer"},
		{keyOffset, `{"next":5}`, "neither"},
		{keyWorkspace + "w", `{"v":1,"recent":[{"command":"c1"}]}`, "no command id"},
		{keyTask + "t", `{"v":1}`, "without an id"},
		{keyTask + "t", `{"v":0,"id":"t"}`, "no logbook writes it"},
		{keyKey + "k", `{"v":` + next + `,"id":"k"}`, "newer"},
		{keyKey + "k", `{"id":"k","hash":"00"}`, "without a format"},
		{keyKey + "k", `{"v":1}`, "without an id"},
		{commandKey("w", "c1"), `{"v":2,"id":"c1"}`, "no logbook writes it"},
		{commandKey("w", "c1"), `{"v":` + next + `,"id":"c1"}`, "newer"},
		{commandKey("w", "c1"), `{"v":3,"id":"c2"}`, "holds command c2"},
		{commandKey("w", "c1"), `{"v":3}`, "without an id"},
		{keyCommand + "c1", `{"v":3,"id":"c1"}`, "is not cmd/"},
		{keyWorkspace + "w", `{"v":3,"workspace":{"id":"w"},"recent":[{"id":"c1"}]}`, "holds a window"},
	} {
		err := p.apply(tc.key, []byte(tc.value))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s = %s: got %v, want an error saying %q", tc.key, tc.value, err, tc.want)
		}
		if tc.want == "newer" && !errors.Is(err, errNewerFormat) {
			t.Errorf("%s = %s: %v is not errNewerFormat", tc.key, tc.value, err)
		}
	}
	if len(p.workspaces) != 0 || len(p.tasks) != 0 || len(p.keys) != 0 || p.next != 0 {
		t.Fatalf("a refused record changed the state: %+v", p)
	}
}
