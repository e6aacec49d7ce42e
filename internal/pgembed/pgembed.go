// Package pgembed runs a private PostgreSQL server from locally installed
// PostgreSQL binaries. It backs `logbook dev` and the shared test database
// (internal/pgtest).
//
// The server listens on 127.0.0.1 and a private socket directory only, and
// its single superuser "logbook" authenticates with SCRAM-SHA-256 and a
// password generated at initdb (kept in the data directory, 0600). A cluster
// made when pgembed trusted local connections gets a password, and loses
// "trust", at its next start. URL carries the password: never log it.
//
// When the calling process runs as root, initdb and postgres run as the
// "postgres" OS user (PostgreSQL refuses to run as root): the data directory
// is chowned to that user and, where needed, the search (o+x) bit is added to
// its ancestor directories so that user can reach it.
package pgembed

import (
	"errors"
	"io"
	"net/url"
	"strconv"
)

// ErrDirInUse is returned by Start when another running Server (in this or
// another process) already uses the data directory.
var ErrDirInUse = errors.New("pgembed: data directory is in use by another running server")

// Config configures Start.
type Config struct {
	// Dir is the data directory. It is created if missing; an existing
	// cluster in it is reused, so data survives restarts.
	Dir string
	// Port is the TCP port on 127.0.0.1; 0 picks a free one.
	Port int
	// Fsync enables durable writes. Tests set it to false (fsync=off,
	// synchronous_commit=off, full_page_writes=off).
	Fsync bool
	// BinDir holds initdb and postgres. "" finds it: $LOGBOOK_PG_BIN, else
	// the newest /usr/lib/postgresql/*/bin, else the directory of pg_ctl on
	// PATH.
	BinDir string
	// Private, when set, is an ancestor of Dir that holds other private
	// files (logbook dev's data directory). Where the server's user must
	// be let through it or the directories between it and Dir, they are
	// given to that user's group with search only (0710), never opened to
	// everyone. Other ancestors get the search bit for others.
	Private string
	// Log receives the server log (stdout and stderr of initdb and
	// postgres). Writes are serialized; a slow writer slows the server, write
	// errors are ignored. nil appends to a file under Dir (postgres.log).
	Log io.Writer
}

// Server is a running PostgreSQL server started by Start.
type Server struct {
	port int
	url  string
	sys  serverSys // OS-specific state
}

// URL returns the connection URL of the "logbook" database, password
// included: postgres://logbook:PASSWORD@127.0.0.1:PORT/logbook?sslmode=disable
func (s *Server) URL() string { return s.url }

// Port returns the TCP port the server listens on.
func (s *Server) Port() int { return s.port }

func buildURL(port int, db, password string) string {
	u := url.URL{Scheme: "postgres", User: url.User("logbook"), Host: "127.0.0.1:" + strconv.Itoa(port),
		Path: "/" + db, RawQuery: "sslmode=disable"}
	if password != "" {
		u.User = url.UserPassword("logbook", password)
	}
	return u.String()
}
