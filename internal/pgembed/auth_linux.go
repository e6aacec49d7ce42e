package pgembed

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
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
	if !validPassword(pw) {
		// Never echoed: it may be a real password with a stray character.
		return "", fmt.Errorf("pgembed: %s does not hold a password pgembed wrote (64 hex digits)", filepath.Join(dir, passwordFileName))
	}
	return pw, nil
}

func validPassword(pw string) bool {
	if len(pw) != 64 {
		return false
	}
	_, err := hex.DecodeString(pw)
	return err == nil
}

// scramVerifier is what PostgreSQL stores for a SCRAM-SHA-256 password
// (RFC 5803's format). Setting the verifier rather than the password keeps
// the password out of the server's log, even of a failed statement, and
// makes the stored form SCRAM whatever password_encryption says.
func scramVerifier(password string) (string, error) {
	const iterations = 4096 // PostgreSQL's default scram_iterations
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, sha256.Size)
	if err != nil {
		return "", err
	}
	mac := func(msg string) []byte {
		h := hmac.New(sha256.New, salted)
		h.Write([]byte(msg))
		return h.Sum(nil)
	}
	stored := sha256.Sum256(mac("Client Key"))
	b64 := base64.StdEncoding.EncodeToString
	return fmt.Sprintf("SCRAM-SHA-256$%d:%s$%s:%s", iterations, b64(salt), b64(stored[:]), b64(mac("Server Key"))), nil
}

// writeFileAs writes a 0600 file owned by the server's user, atomically.
// The directory belongs to that user, so nothing in it is trusted: the
// temporary file is created anew (O_EXCL, O_NOFOLLOW: a planted symlink
// fails the write rather than redirect it) and chowned through its
// descriptor; rename replaces a symlink at path, never follows it.
func writeFileAs(path string, data []byte, ra runAs) error {
	tmp := path + ".tmp"
	_ = os.Remove(tmp) // a leftover, or whatever was planted there
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return fmt.Errorf("pgembed: %w", err)
	}
	_, werr := f.Write(data)
	var cerr error
	if ra.cred != nil {
		cerr = f.Chown(ra.uid, ra.gid)
	}
	serr := f.Sync()
	if err := errors.Join(werr, cerr, serr, f.Close()); err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("pgembed: %w", err)
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

// secure ends trust on a cluster that still has it: one made before
// passwords, or one whose securing was cut short after the password file
// was written. Over the trusted connection it sets the superuser's password
// (the file's, else a new one, kept first), then replaces pg_hba.conf and
// reloads it. Every step can run again.
func (sys *serverSys) secure(ctx context.Context, port int, ra runAs) (string, error) {
	pw := sys.password
	if pw == "" {
		var err error
		if pw, err = newPassword(); err != nil {
			return "", err
		}
		if err := writeFileAs(filepath.Join(sys.dir, passwordFileName), []byte(pw+"\n"), ra); err != nil {
			return "", err
		}
	}
	verifier, err := scramVerifier(pw)
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
	// ALTER ROLE takes no parameters. The verifier is base64, '$' and ':'
	// built above, so as a literal it cannot end the string.
	if _, err := conn.Exec(ctx, "ALTER ROLE logbook PASSWORD '"+verifier+"'"); err != nil {
		return "", fmt.Errorf("pgembed: set password: %w", err)
	}
	if err := writeFileAs(filepath.Join(sys.dir, "pg_hba.conf"), []byte(hbaConf), ra); err != nil {
		return "", err
	}
	if _, err := conn.Exec(ctx, "SELECT pg_reload_conf()"); err != nil {
		return "", fmt.Errorf("pgembed: reload pg_hba.conf: %w", err)
	}
	return pw, nil
}
