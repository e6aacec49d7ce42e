package kafkatest

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// DiskCluster starts a one-broker kfake cluster that persists to dir (as
// `logbook dev` does) and reloads what dir holds; it is closed when the test
// ends.
func DiskCluster(t testing.TB, dir string) *kfake.Cluster {
	t.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.DataDir(dir),
		kfake.GroupMinSessionTimeout(500*time.Millisecond))
	if err != nil {
		t.Fatalf("kfake on %s: %v", dir, err)
	}
	t.Cleanup(c.Close)
	return c
}

// CrashImage copies the data directory of a running DiskCluster as a kill -9
// would leave it: no shutdown snapshot. A cluster started on the copy
// recovers by replaying its segments, and that recovery aborts every
// transaction open at the copy without writing an abort marker. The caller
// keeps the cluster idle while it copies.
func CrashImage(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil {
			return err
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		return copyFile(path, to)
	})
	if err != nil {
		t.Fatalf("crash image of %s: %v", dir, err)
	}
	return dst
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(to)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
