package domain_test

import (
	"testing"
	"time"

	"github.com/logbook-dev/logbook/domain"
)

func BenchmarkDecideAndEvolveTaskCreate(b *testing.B) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	ws := &domain.Workspace{ID: "ws", Name: "w", Status: domain.WorkspaceStatusActive, Version: 1}
	cmd := domain.Command{ID: "c", Type: domain.CmdTaskCreate, WorkspaceID: "ws", Actor: domain.Actor{ID: "k", Role: domain.RoleAdmin},
		Payload: &domain.TaskCreateCmd{TaskID: "t", Title: "title", Input: "input", Priority: 3}}
	b.ReportAllocs()
	for b.Loop() {
		s := domain.State{Workspace: ws}
		evs, err := domain.Decide(s, cmd, now)
		if err != nil {
			b.Fatal(err)
		}
		for _, e := range evs {
			s = domain.Evolve(s, e)
		}
	}
}
