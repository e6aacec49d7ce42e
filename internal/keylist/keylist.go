// Package keylist reads the key lists of logbook's key files and
// variables: "id:hex" entries, one per line or several on a line separated
// by commas (for an environment variable). Blank lines and lines starting
// with # are skipped whole, so a comma in a comment never starts a key.
// Errors name entries by position, never by what was written: a key
// written the wrong way round would otherwise be echoed.
package keylist

import (
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// MaxIDLen bounds a key id; ids are names, not secrets.
const MaxIDLen = 64

// Entry is one key of a list.
type Entry struct {
	ID  string
	Key []byte
}

// Parse reads a list of keys of size bytes each, in the order written;
// ids are unique. An empty list is an error.
func Parse(text string, size int) ([]Entry, error) {
	var out []Entry
	seen := map[string]bool{}
	n := 0
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		for _, entry := range strings.Split(line, ",") {
			n++
			id, hexKey, ok := strings.Cut(strings.TrimSpace(entry), ":")
			id = strings.TrimSpace(id)
			if !ok || id == "" || len(id) > MaxIDLen || strings.ContainsAny(id, " \t#") {
				return nil, fmt.Errorf("key %d: want id:hex with an id of at most %d characters", n, MaxIDLen)
			}
			key, err := hex.DecodeString(strings.TrimSpace(hexKey))
			if err != nil || len(key) != size {
				return nil, fmt.Errorf("key %d: want %d hex digits (%d bytes) after the id", n, 2*size, size)
			}
			if seen[id] {
				return nil, fmt.Errorf("key %d: its id is listed before", n)
			}
			seen[id] = true
			out = append(out, Entry{ID: id, Key: key})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no key")
	}
	return out, nil
}

// ReadPrivate reads a file of secret keys, refusing one that its group or
// others may read.
func ReadPrivate(path string) (string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return "", err
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return "", fmt.Errorf("%s is %v: make it 0600 or 0400", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	return string(b), err
}
