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
	if len(reports) > 0 {
		h.aiSeen.Store(true)
	}
	was := h.aiReason()
	h.ai.Store(&aiHealth{Providers: reports, WorkspacesOverBudget: over})
	if now := h.aiReason(); now != was {
		h.log.Warn("AI degradation changed", "ai_degraded", now != "", "reason", now)
	}
}

// aiReason says why AI work is degraded, "" when it is not: a provider not
// closed (an outage, a refused key), a workspace over its daily token
// budget (its tasks wait), or events waiting for the agent worker while
// none has reported lately (it died, or lost its database).
func (h *health) aiReason() string {
	a := h.ai.Load()
	if a == nil {
		return ""
	}
	for _, r := range a.Providers {
		if r.State != string(agent.StateClosed) {
			return "provider " + r.Provider + " " + r.State
		}
	}
	if a.WorkspacesOverBudget > 0 {
		return "a workspace's daily token budget is spent"
	}
	if len(a.Providers) == 0 && h.aiSeen.Load() && h.agentLag != nil {
		if lag, _, fresh := h.agentLag.Lag(); fresh && lag > 0 {
			return "no agent worker has reported lately"
		}
	}
	return ""
}

func (h *health) aiDegraded() bool { return h.aiReason() != "" }

// aiStatus is the ai section of GET /v1/status: each worker's providers,
// the budgets spent, and the agent backlog with its drain rate.
func (h *health) aiStatus() map[string]any {
	s := map[string]any{"providers": []projections.ProviderReport{}, "workspaces_over_budget": 0}
	if a := h.ai.Load(); a != nil {
		s["providers"], s["workspaces_over_budget"] = a.Providers, a.WorkspacesOverBudget
	}
	if reason := h.aiReason(); reason != "" {
		s["degraded"] = reason
	}
	if h.agentLag != nil {
		lag, drain, fresh := h.agentLag.Lag()
		s["backlog"] = map[string]any{"events": lag, "drain_per_second": drain, "fresh": fresh}
	}
	return s
}
