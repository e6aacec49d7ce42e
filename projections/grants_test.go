package projections_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/logbook-dev/logbook/domain"
	"github.com/logbook-dev/logbook/projections"
)

// Concurrent grant lookups, read in batches, answer each principal's own
// role in each workspace, and "" for no member.
func TestGrantsAnswerEachPrincipalsRole(t *testing.T) {
	e := setup(t)
	e.projector("read_models")
	a, b := newID(), newID()
	e.send(newID(), domain.CmdWorkspaceCreate, a, &domain.WorkspaceCreateCmd{Name: "a"})
	e.send(newID(), domain.CmdWorkspaceCreate, b, &domain.WorkspaceCreateCmd{Name: "b"})
	e.send(newID(), domain.CmdWorkspaceAddMember, a, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleWriter})
	e.send(newID(), domain.CmdWorkspaceAddMember, b, &domain.WorkspaceAddMemberCmd{PrincipalID: "alice", Role: domain.RoleReader})
	e.send(newID(), domain.CmdWorkspaceAddMember, b, &domain.WorkspaceAddMemberCmd{PrincipalID: "bob", Role: domain.RoleAdmin})
	e.eventually("members projected", func() bool {
		return e.count(`SELECT count(*) FROM members WHERE principal_id IN ('alice', 'bob')`) == 3
	})

	g := projections.NewGrants(e.pool)
	defer g.Close()
	want := map[[2]string]string{{a, "alice"}: domain.RoleWriter, {b, "alice"}: domain.RoleReader, {b, "bob"}: domain.RoleAdmin,
		{a, "bob"}: "", {newID(), "alice"}: ""}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := 0
			for k, role := range want {
				if n++; n%(i%5+1) != 0 && i%2 == 0 {
					continue
				}
				got, known, err := g.MemberRole(context.Background(), k[0], k[1])
				if err != nil || !known || got != role {
					errs <- fmt.Errorf("%s in %s: %q %v %v, want %q", k[1], k[0], got, known, err, role)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
