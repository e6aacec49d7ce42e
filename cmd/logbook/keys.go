package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// stringList is a repeatable flag.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(v string) error { *l = append(*l, v); return nil }

// runKeysCreate issues a key through the API, as an admin: the key is an
// event in the log, and so is each workspace grant.
func runKeysCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keys create", stderr)
	base := fs.String("url", env("LOGBOOK_URL", "http://127.0.0.1:8080"), "logbook base URL")
	key := fs.String("key", env("LOGBOOK_API_KEY", ""), "an admin API key")
	role := fs.String("role", "", "admin, writer, reader, auditor or agent")
	label := fs.String("label", "", "what the key is for")
	var workspaces stringList
	fs.Var(&workspaces, "workspace", "grant the key this workspace, with its role (repeatable)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *key == "" {
		return fmt.Errorf("--key (or LOGBOOK_API_KEY) is required: an admin key, such as the one `logbook dev` printed")
	}
	if *role == "" {
		return fmt.Errorf("--role is required: admin, writer, reader, auditor or agent")
	}
	req := map[string]any{"role": *role, "label": *label}
	if len(workspaces) > 0 {
		req["workspaces"] = []string(workspaces)
	}
	body, _ := json.Marshal(req)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimRight(*base, "/")+"/v1/keys", bytes.NewReader(body))
	if err != nil {
		return err
	}
	hreq.Header.Set("Authorization", "Bearer "+*key)
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusAccepted {
		var prob struct{ Title, Detail string }
		_ = json.Unmarshal(raw, &prob)
		return fmt.Errorf("POST /v1/keys: %s: %s %s", resp.Status, prob.Title, prob.Detail)
	}
	var out struct {
		ID, Key, Role, Status string
		Grants                []struct {
			WorkspaceID string `json:"workspace_id"`
			Status      string
			Reason      string
		}
	}
	if err := json.Unmarshal(raw, &out); err != nil {
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
