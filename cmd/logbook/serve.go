package main

import (
	"context"
	"fmt"
	"io"
	"strings"
)

// runServe runs the chosen roles against an external Kafka and Postgres;
// several processes share the work through consumer groups.
func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("serve", stderr)
	roles := fs.String("roles", strings.Join(cfg.Roles, ","), "roles to run: api, decider, projector, agent")
	fs.StringVar(&cfg.HTTPAddr, "http", cfg.HTTPAddr, "HTTP listen address (api role)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg.Roles = splitList(*roles)
	log := cfg.logger(stderr)
	m := &Main{Config: cfg, Log: log, Stdout: stdout}
	defer m.Close()
	if err := m.Open(ctx); err != nil {
		return err
	}
	if u := m.URL(); u != "" {
		fmt.Fprintf(stdout, "http: %s\n", u)
	}
	if u := m.MetricsURL(); u != "" {
		fmt.Fprintf(stdout, "metrics: %s\n", u)
	}
	fmt.Fprintf(stdout, "roles: %s\n", strings.Join(cfg.Roles, ","))
	fmt.Fprintln(stdout, "ready")
	return m.Run(ctx)
}
