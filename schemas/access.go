package schemas

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// AccessFormat is the format of access records this version writes; it
// reads every format up to it.
const AccessFormat = 1

// Access outcomes.
const (
	// AccessUnauthenticated: no key, or one that is unknown or revoked.
	AccessUnauthenticated = "unauthenticated"
	// AccessHidden: a workspace the principal holds no grant in (answered
	// 404, as for one that does not exist).
	AccessHidden = "hidden"
	// AccessForbidden: the principal's roles do not allow it (403).
	AccessForbidden = "forbidden"
)

// AccessRecord is one failed authentication or denial on the access topic.
// It never holds the key presented, nor any part of it.
type AccessRecord struct {
	V           int       `json:"v"`
	ID          string    `json:"id"`
	At          time.Time `json:"at"`
	Outcome     string    `json:"outcome"`
	Status      int       `json:"status"`
	Code        string    `json:"code,omitempty"` // the problem code answered
	PrincipalID string    `json:"principal_id,omitempty"`
	Role        string    `json:"role,omitempty"`
	Method      string    `json:"method"`
	Route       string    `json:"route"` // the route pattern, not the path
	WorkspaceID string    `json:"workspace_id,omitempty"`
	Source      string    `json:"source"` // the client's IP address
	RequestID   string    `json:"request_id,omitempty"`
}

// DecodeAccess reads an access record of any format this version knows.
func DecodeAccess(b []byte) (AccessRecord, error) {
	var r AccessRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return r, err
	}
	switch {
	case r.V > AccessFormat:
		return r, fmt.Errorf("access record format %d: written by a newer logbook (this one reads up to %d)", r.V, AccessFormat)
	case r.V < 1:
		return r, errors.New("access record without a format")
	case r.ID == "" || r.Outcome == "":
		return r, errors.New("access record without an id or outcome")
	}
	return r, nil
}
