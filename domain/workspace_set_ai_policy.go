package domain

func workspaceSetAIPolicy(_ *Workspace, p WorkspaceSetAIPolicyCmd, e *emitter) error {
	e.emit(EvWorkspaceAIPolicySet, WorkspaceAIPolicySet{DailyTokenBudget: p.DailyTokenBudget, FallbackMode: p.FallbackMode,
		RequestsPerMinute: p.RequestsPerMinute})
	return nil
}

func (p WorkspaceSetAIPolicyCmd) validate() (WorkspaceSetAIPolicyCmd, error) {
	if p.DailyTokenBudget < 0 || p.DailyTokenBudget > MaxDailyTokenLimit {
		return p, Invalid("daily_token_budget", "must be between 0 and %d", MaxDailyTokenLimit)
	}
	if p.RequestsPerMinute < 0 || p.RequestsPerMinute > MaxRequestsPerMinute {
		return p, Invalid("requests_per_minute", "must be between 0 and %d", MaxRequestsPerMinute)
	}
	switch p.FallbackMode {
	case "":
		// Events always name the mode, so readers need no default.
		p.FallbackMode = FallbackNone
	case FallbackNone, FallbackLocal:
	default:
		return p, Invalid("fallback_mode", "must be %q or %q", FallbackNone, FallbackLocal)
	}
	return p, nil
}
