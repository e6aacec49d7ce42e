package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/logbook-dev/logbook/schemas"
)

// An export is written to its file whole, owner-only, or not at all.
func TestExportFileIsWholeOrAbsent(t *testing.T) {
	golden, err := os.ReadFile("../../schemas/testdata/export/format1.ndjson")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "trail.ndjson")
	if err := os.WriteFile(out, []byte("older"), 0o644); err != nil {
		t.Fatal(err)
	}
	var head schemas.ExportHead
	err = writeFileAtomic(out, func(w io.Writer) (err error) {
		head, err = copyExport(w, bytes.NewReader(golden))
		return err
	})
	if err != nil || head.Seq != 6 || head.Events != 6 {
		t.Fatalf("complete export: head %+v, %v", head, err)
	}
	got, _ := os.ReadFile(out)
	fi, _ := os.Stat(out)
	if !bytes.Equal(got, golden) || fi.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v, same bytes %v", fi.Mode().Perm(), bytes.Equal(got, golden))
	}

	cut := golden[:bytes.LastIndexByte(golden[:len(golden)-1], '\n')+1] // no chain head
	other := filepath.Join(dir, "cut.ndjson")
	err = writeFileAtomic(other, func(w io.Writer) error {
		_, err := copyExport(w, bytes.NewReader(cut))
		return err
	})
	if err == nil || !strings.Contains(err.Error(), "without its chain head") {
		t.Fatalf("truncated export: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 || entries[0].Name() != "trail.ndjson" {
		t.Fatalf("a failed export left files behind: %v", entries)
	}
}
