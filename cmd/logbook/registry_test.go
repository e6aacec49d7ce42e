package main

import (
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/logbook-dev/logbook/projections"
)

// A group member without a registry row is listed on its own, its
// client-chosen id and host shown only as bounded printable text.
func TestJoinMembersShowsForeignIDsSafely(t *testing.T) {
	live := []projections.Instance{{ID: "h/1/ab", KafkaClientID: "logbook-ab", Roles: []string{"api"}}}
	described := kadm.DescribedGroups{"logbook-decider": {Group: "logbook-decider", Members: []kadm.DescribedGroupMember{
		{ClientID: "logbook-ab", ClientHost: "/127.0.0.1"},
		{ClientID: "evil\x1b[2J" + strings.Repeat("x", 500), ClientHost: "/10.0.0.9\n"},
	}}}
	list := joinMembers(live, described, map[string]bool{"logbook.commands": true}, nil)
	if len(list) != 2 || !list[0].Heartbeat || list[1].Heartbeat {
		t.Fatalf("list %+v", list)
	}
	foreign := list[1]
	if strings.ContainsAny(foreign.ID+foreign.Host, "\x1b\n") || len([]rune(foreign.ID)) > 220 ||
		!strings.HasPrefix(foreign.ID, "kafka:evil[2J") || foreign.Host != "10.0.0.9" ||
		len(foreign.Roles) != 1 || foreign.Roles[0] != "decider" {
		t.Errorf("foreign member shown as %+v", foreign.Instance)
	}
}
