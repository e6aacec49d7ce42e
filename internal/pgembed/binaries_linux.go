package pgembed

// Finding the PostgreSQL server binaries.

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// findBinDir resolves the PostgreSQL binary directory.
func findBinDir(dir string) (string, error) {
	check := func(d, src string) (string, error) {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(d, b)); err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
				return "", fmt.Errorf("pgembed: %s (from %s) has no executable %s", d, src, b)
			}
		}
		return d, nil
	}
	if dir != "" {
		return check(dir, "Config.BinDir")
	}
	if d := os.Getenv("LOGBOOK_PG_BIN"); d != "" {
		return check(d, "$LOGBOOK_PG_BIN")
	}
	if dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin"); len(dirs) > 0 {
		sort.Slice(dirs, func(i, j int) bool {
			return versionLess(filepath.Base(filepath.Dir(dirs[i])), filepath.Base(filepath.Dir(dirs[j])))
		})
		for i := len(dirs) - 1; i >= 0; i-- {
			if d, err := check(dirs[i], "/usr/lib/postgresql"); err == nil {
				return d, nil
			}
		}
	}
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if r, err := filepath.EvalSymlinks(p); err == nil {
			p = r
		}
		return check(filepath.Dir(p), "pg_ctl on PATH")
	}
	return "", errors.New("pgembed: PostgreSQL binaries not found: set LOGBOOK_PG_BIN or install PostgreSQL (/usr/lib/postgresql/*/bin or pg_ctl on PATH)")
}

// versionLess compares dotted numeric versions ("9.6" < "15").
func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) || i < len(pb); i++ {
		var x, y int
		if i < len(pa) {
			x, _ = strconv.Atoi(pa[i])
		}
		if i < len(pb) {
			y, _ = strconv.Atoi(pb[i])
		}
		if x != y {
			return x < y
		}
	}
	return a < b
}
