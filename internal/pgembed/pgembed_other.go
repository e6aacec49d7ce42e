//go:build !linux

package pgembed

import (
	"context"
	"errors"
)

type serverSys struct{}

var errUnsupported = errors.New("pgembed: embedded PostgreSQL is only supported on Linux; set LOGBOOK_TEST_DATABASE_URL or use an external server")

// Start is only implemented on Linux.
func Start(ctx context.Context, cfg Config) (*Server, error) { return nil, errUnsupported }

// Stop is only implemented on Linux.
func (s *Server) Stop() error { return errUnsupported }
