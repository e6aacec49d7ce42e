package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/logbook-dev/logbook/internal/httpapi"
)

// apiFlags binds --url and --key, the address and API key of a running
// logbook, for CLI tools that talk to its HTTP API.
func apiFlags(fs *flag.FlagSet) (base, key *string) {
	base = fs.String("url", settingValue("LOGBOOK_URL"), "logbook base URL (env LOGBOOK_URL)")
	key = fs.String("key", env("LOGBOOK_API_KEY", ""), "API key (env LOGBOOK_API_KEY)")
	return base, key
}

// apiClient calls a running logbook's HTTP API with a bearer key.
type apiClient struct {
	base    string
	key     string
	timeout time.Duration
	http    *http.Client
}

// newAPIClient checks the base URL and key. timeout bounds connecting, the
// wait for an answer's headers and then every pause in its body, so a long
// stream runs as long as bytes keep coming and a stalled one fails.
func newAPIClient(base, key string, timeout time.Duration) (*apiClient, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want http(s)://host[:port]", base)
	}
	if key == "" {
		return nil, errors.New("--key (or LOGBOOK_API_KEY) is required")
	}
	tr := &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: timeout}).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
	}
	return &apiClient{base: strings.TrimSuffix(base, "/"), key: key, timeout: timeout, http: &http.Client{Transport: tr}}, nil
}

// apiError is a non-2xx answer, with the problem the API sent.
type apiError struct {
	Method, Path string
	Status       int
	Problem      httpapi.Problem
}

func (e *apiError) Error() string {
	msg := fmt.Sprintf("%s %s: %d %s", e.Method, e.Path, e.Status, http.StatusText(e.Status))
	if e.Problem.Detail != "" {
		msg += ": " + e.Problem.Detail
	} else if e.Problem.Title != "" {
		msg += ": " + e.Problem.Title
	}
	if e.Problem.Code != "" {
		msg += " (" + e.Problem.Code + ")"
	}
	return msg
}

// do sends a request (body encoded as JSON unless nil) and returns a 2xx
// response; the caller closes its body. Any other status is an *apiError.
func (c *apiClient) do(ctx context.Context, method, path string, body any) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = strings.NewReader(string(raw))
	}
	ctx, cancel := context.WithCancelCause(ctx)
	stalled := fmt.Errorf("%s %s: nothing received for %s", method, path, c.timeout)
	timer := time.AfterFunc(c.timeout, func() { cancel(stalled) })
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		timer.Stop()
		cancel(nil)
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		timer.Stop()
		cancel(nil)
		if cause := context.Cause(ctx); errors.Is(cause, stalled) {
			return nil, cause
		}
		return nil, err
	}
	resp.Body = &idleBody{rc: resp.Body, ctx: ctx, cancel: cancel, timer: timer, timeout: c.timeout, stalled: stalled}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		e := &apiError{Method: method, Path: path, Status: resp.StatusCode}
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(raw, &e.Problem) != nil {
			e.Problem = httpapi.Problem{Detail: httpapi.Truncate(strings.TrimSpace(string(raw)))}
		}
		return nil, e
	}
	return resp, nil
}

// idleBody fails a body read that waits longer than timeout for bytes.
type idleBody struct {
	rc      io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timer   *time.Timer
	timeout time.Duration
	stalled error
}

func (b *idleBody) Read(p []byte) (int, error) {
	b.timer.Reset(b.timeout) // only time spent waiting here counts
	n, err := b.rc.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); errors.Is(cause, b.stalled) {
			err = cause
		}
	}
	return n, err
}

func (b *idleBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
