package pgembed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The superuser's password is generated at initdb and kept in the data
// directory (0600, owned by the server's user); every connection, on
// 127.0.0.1 or the private socket, authenticates with SCRAM-SHA-256.
const passwordFileName = "logbook.password"

// hbaConf replaces the pg_hba.conf of a cluster made when pgembed trusted
// every local connection: password (SCRAM) authentication only.
const hbaConf = `# Written by logbook (pgembed): SCRAM-SHA-256 for every connection, on the
# private socket directory and on loopback only. Never "trust".
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
`

func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("pgembed: generate password: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// readPassword returns the cluster's password, or "" when the file is
// missing (a cluster pgembed made before it had passwords).
func readPassword(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, passwordFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("pgembed: read password: %w", err)
	}
	pw := strings.TrimSpace(string(b))
	if pw == "" {
		return "", fmt.Errorf("pgembed: %s is empty", filepath.Join(dir, passwordFileName))
	}
	return pw, nil
}

// writeFileAs writes a 0600 file owned by the server's user, atomically.
func writeFileAs(path string, data []byte, ra runAs) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	if ra.cred != nil {
		if err := os.Chown(tmp, ra.uid, ra.gid); err != nil {
			_ = os.Remove(tmp)
			return fmt.Errorf("pgembed: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pgembed: %w", err)
	}
	return nil
}

// pwFile writes the password where initdb, running as the server's user,
// can read it, outside the (still empty) data directory; remove it after.
func pwFile(pw string, ra runAs) (string, error) {
	f, err := os.CreateTemp("", "lbpgpw")
	if err != nil {
		return "", fmt.Errorf("pgembed: %w", err)
	}
	name := f.Name()
	_, werr := f.WriteString(pw + "\n")
	cerr := f.Close()
	if err := errors.Join(werr, cerr); err != nil {
		_ = os.Remove(name)
		return "", fmt.Errorf("pgembed: %w", err)
	}
	if ra.cred != nil {
		if err := os.Chown(name, ra.uid, ra.gid); err != nil {
			_ = os.Remove(name)
			return "", fmt.Errorf("pgembed: %w", err)
		}
	}
	return name, nil
}

// trusts reports whether the cluster's pg_hba.conf lets any connection in
// without a password.
func trusts(dir string) (bool, error) {
	b, err := os.ReadFile(filepath.Join(dir, "pg_hba.conf"))
	if err != nil {
		return false, fmt.Errorf("pgembed: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == "trust" {
			return true, nil
		}
	}
	return false, sc.Err()
}

// secure gives a cluster made before passwords one: it sets the
// superuser's password over the trusted connection it still has, keeps it
// in the data directory, then replaces pg_hba.conf and reloads it.
func (sys *serverSys) secure(ctx context.Context, port int, ra runAs) (string, error) {
	pw, err := newPassword()
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, buildURL(port, "postgres", ""))
	if err != nil {
		return "", fmt.Errorf("pgembed: connect to set a password: %w", err)
	}
	defer conn.Close(context.WithoutCancel(ctx))
	// ALTER ROLE takes no parameters. The password is hex generated above,
	// so as a literal it cannot end the string.
	if _, err := conn.Exec(ctx, "ALTER ROLE logbook PASSWORD '"+pw+"'"); err != nil {
		return "", fmt.Errorf("pgembed: set password: %w", err)
	}
	if err := writeFileAs(filepath.Join(sys.dir, passwordFileName), []byte(pw+"\n"), ra); err != nil {
		return "", err
	}
	if err := writeFileAs(filepath.Join(sys.dir, "pg_hba.conf"), []byte(hbaConf), ra); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return "", fmt.Errorf("pgembed: reload pg_hba.conf: %w", err)
	}
	return pw, nil
}
