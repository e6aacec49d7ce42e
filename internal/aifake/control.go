package aifake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// settingsPatch is the body of POST /_fake/mode: absent fields keep their
// value.
type settingsPatch struct {
	Mode         *Mode   `json:"mode"`
	Delay        *string `json:"delay"`
	RetryAfter   *string `json:"retry_after"`
	ServerStatus *int    `json:"server_status"`
	RateLimit    *int    `json:"rate_limit"`
}

// serveMode answers /_fake/mode: GET returns the settings, POST changes
// them, all or none, and returns them.
func (f *Fake) serveMode(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodPost) {
		return
	}
	if r.Method == http.MethodPost {
		var p settingsPatch
		dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&p); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "body: " + err.Error()})
			return
		}
		if err := f.apply(p); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
			return
		}
	}
	writeJSON(w, http.StatusOK, f.Settings())
}

// apply checks every field of p, then sets them together.
func (f *Fake) apply(p settingsPatch) error {
	if p.Mode != nil && !p.Mode.Valid() {
		return fmt.Errorf("mode: unknown mode %q (want one of %v)", *p.Mode, Modes())
	}
	delay, err := parseDuration("delay", p.Delay)
	if err != nil {
		return err
	}
	retryAfter, err := parseDuration("retry_after", p.RetryAfter)
	if err != nil {
		return err
	}
	if p.ServerStatus != nil && (*p.ServerStatus < 500 || *p.ServerStatus > 599) {
		return fmt.Errorf("server_status: %d is not a 5xx status", *p.ServerStatus)
	}
	if p.RateLimit != nil && *p.RateLimit < 0 {
		return fmt.Errorf("rate_limit: must not be negative")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	if p.Mode != nil {
		f.mode = *p.Mode
	}
	if delay != nil {
		f.delay = *delay
	}
	if retryAfter != nil {
		f.retryAfter = *retryAfter
	}
	if p.ServerStatus != nil {
		f.serverStatus = *p.ServerStatus
	}
	if p.RateLimit != nil {
		f.rateLimit = *p.RateLimit
		f.admitted = f.admitted[:0]
	}
	return nil
}

func parseDuration(field string, s *string) (*time.Duration, error) {
	if s == nil {
		return nil, nil
	}
	d, err := time.ParseDuration(*s)
	if err != nil || d < 0 {
		return nil, fmt.Errorf("%s: %q is not a non-negative Go duration", field, *s)
	}
	return &d, nil
}

// serveStats answers /_fake/stats: GET returns the counters, DELETE zeroes
// them.
func (f *Fake) serveStats(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet, http.MethodDelete) {
		return
	}
	if r.Method == http.MethodDelete {
		f.ResetStats()
		w.WriteHeader(http.StatusNoContent)
		return
	}
	writeJSON(w, http.StatusOK, f.Stats())
}
