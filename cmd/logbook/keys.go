package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/internal/fieldcrypt"
	"github.com/logbook-dev/logbook/internal/keylist"
	"github.com/logbook-dev/logbook/internal/signing"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// issuedKey is the part of POST /v1/keys' answer the CLI prints.
type issuedKey struct {
	ID, Key, Role, Status string
	Grants                []struct {
		WorkspaceID string `json:"workspace_id"`
		Status      string
		Reason      string
	}
}

// runKeysCreate issues a key through the API, as an admin: the key is an
// event in the log, and so is each workspace grant.
func runKeysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys create", stderr)
	base, key := apiFlags(fs)
	role := fs.String("role", "", "admin, writer, reader, auditor or agent")
	label := fs.String("label", "", "what the key is for")
	var workspaces stringList
	fs.Var(&workspaces, "workspace", "grant the key this workspace, with its role (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *role == "" {
		return errors.New("--role is required: admin, writer, reader, auditor or agent")
	}
	cl, err := newAPIClient(*base, *key, 30*time.Second)
	if err != nil {
		return err
	}
	body := map[string]any{"role": *role, "label": *label}
	if len(workspaces) > 0 {
		body["workspaces"] = []string(workspaces)
	}
	resp, err := cl.do(ctx, http.MethodPost, "/v1/keys", body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var out issuedKey
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&out); err != nil {
		return fmt.Errorf("POST /v1/keys: %w", err)
	}
	fmt.Fprintf(stdout, "id: %s\nrole: %s\nkey (shown once): %s\n", out.ID, out.Role, out.Key)
	if out.Status != "accepted" {
		fmt.Fprintf(stdout, "status: %s (the key works once the decider has recorded it)\n", out.Status)
	}
	failed := 0
	for _, g := range out.Grants {
		fmt.Fprintf(stdout, "grant %s: %s %s\n", g.WorkspaceID, g.Status, g.Reason)
		if g.Status == "rejected" {
			failed++
		}
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d grants were refused; the key exists: grant with POST /v1/workspaces/{ws}/members or revoke it", failed, len(out.Grants))
	}
	return nil
}

// runKeysMaster prints a new master key line. Put it first in the key
// file to make it current; keep the old lines until `Rewrap` has run and
// compaction has dropped the old wrappings.
func runKeysMaster(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys master", stderr)
	id := fs.String("id", "m-"+time.Now().UTC().Format("20060102T150405"), "the key's id, named by every data key it wraps")
	if err := fs.Parse(args); err != nil {
		return err
	}
	line, err := fieldcrypt.NewMasterKey(*id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, line)
	return err
}

// runKeysSigning prints a new command signing key's private line, for
// LOGBOOK_SIGNING_KEY_FILE (api and agent); with --public FILE, the public
// line of the key in FILE, for LOGBOOK_SIGNING_PUBLIC_KEYS_FILE (decider,
// auditors).
func runKeysSigning(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys signing", stderr)
	id := fs.String("id", "s-"+time.Now().UTC().Format("20060102T150405"), "the key's id, named by every signature it makes")
	public := fs.String("public", "", "print the public line of the private key in this file instead")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *public != "" {
		text, err := keylist.ReadPrivate(*public)
		if err != nil {
			return err
		}
		s, err := signing.ParseSigner(text)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, s.Public())
		return err
	}
	priv, _, err := signing.NewKey(*id)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, priv)
	return err
}

// runKeysRewrap writes every workspace's data key again under the current
// master key (the first of LOGBOOK_MASTER_KEY_FILE, or of a dev data
// directory's master.key), so an older master key can be retired once
// compaction has dropped the old records. No event is rewritten.
func runKeysRewrap(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := baseConfig()
	if err != nil {
		return err
	}
	fs := newFlags("keys rewrap", stderr)
	dir := fs.String("data", settingValue("LOGBOOK_DATA"), "a `logbook dev` data directory to find the broker and the master key")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := toolKafka(&cfg, *dir); err != nil {
		return err
	}
	ring, ks, err := toolRing(ctx, cfg, *dir)
	if err != nil {
		return err
	}
	defer ring.Close()
	n, err := ring.Rewrap(ctx)
	if err != nil {
		return fmt.Errorf("rewrapped %d keys, then: %w", n, err)
	}
	_, err = fmt.Fprintf(stdout, "rewrapped %d workspace keys under master key %s\n", n, ks.Current())
	return err
}
