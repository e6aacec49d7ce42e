package main

import (
	"context"
	"time"

	"github.com/logbook-dev/logbook/consumers/agent"
	"github.com/logbook-dev/logbook/projections"
)

// aiReportFresh is how old an agent worker's report may be and still count.
const aiReportFresh = 15 * time.Second

// aiHealth is what the agent workers last reported, read from Postgres so
// every API instance sees every worker instance.
type aiHealth struct {
	Providers            []projections.ProviderReport `json:"providers"`
	WorkspacesOverBudget int                          `json:"workspaces_over_budget"`
}

// probeAI reads the agent workers' reports and the budgets spent today.
func (h *health) probeAI(ctx context.Context) {
	aw := projections.NewAgentWork(h.pool)
	reports, err := aw.Reports(ctx, aiReportFresh)
	if err != nil {
		h.log.Warn("health: cannot read the agent workers' reports", "err", err)
		return
	}
	over, err := aw.OverBudget(ctx, time.Now())
	if err != nil {
		h.log.Warn("health: cannot read the AI budgets", "err", err)
		return
	}
	if reports == nil {
		reports = []projections.ProviderReport{}
	}
	prev := h.ai.Load()
	h.ai.Store(&aiHealth{Providers: reports, WorkspacesOverBudget: over})
	if was, now := prev != nil && degradedAI(prev.Providers), degradedAI(reports); was != now {
		h.log.Warn("AI degradation changed", "ai_degraded", now)
	}
}

// degradedAI reports whether any worker's provider is not closed.
func degradedAI(reports []projections.ProviderReport) bool {
	for _, r := range reports {
		if r.State != string(agent.StateClosed) {
			return true
		}
	}
	return false
}

func (h *health) aiDegraded() bool {
	a := h.ai.Load()
	return a != nil && degradedAI(a.Providers)
}

// aiStatus is the ai section of GET /v1/status: each worker's providers,
// the budgets spent, and the agent backlog with its drain rate.
func (h *health) aiStatus() map[string]any {
	s := map[string]any{"providers": []projections.ProviderReport{}, "workspaces_over_budget": 0}
	if a := h.ai.Load(); a != nil {
		s["providers"], s["workspaces_over_budget"] = a.Providers, a.WorkspacesOverBudget
	}
	if h.agentLag != nil {
		lag, drain, fresh := h.agentLag.Lag()
		s["backlog"] = map[string]any{"events": lag, "drain_per_second": drain, "fresh": fresh}
	}
	return s
}
