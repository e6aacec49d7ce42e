package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"

	"github.com/logbook-dev/logbook/consumers/agent"
	"github.com/logbook-dev/logbook/internal/tracing"
	"github.com/logbook-dev/logbook/projections"
)

// AI providers the agent role can call.
const (
	providerOpenAI = "openai"
	providerLocal  = agent.LocalProvider
)

// AIConfig configures the agent role.
type AIConfig struct {
	// Provider is "openai" or "local"; default openai when OPENAI_API_KEY
	// or OPENAI_BASE_URL is set, else local.
	Provider string
	APIKey   agent.Secret
	BaseURL  string
	Agent    agent.Config
}

// aiConfig reads the agent role's environment.
func aiConfig() (AIConfig, error) {
	c := AIConfig{APIKey: agent.Secret(env("OPENAI_API_KEY", "")), BaseURL: env("OPENAI_BASE_URL", "")}
	def := providerLocal
	if c.APIKey != "" || c.BaseURL != "" {
		def = providerOpenAI
	}
	c.Provider = env("LOGBOOK_AI_PROVIDER", def)
	if c.Provider != providerOpenAI && c.Provider != providerLocal {
		return c, fmt.Errorf("LOGBOOK_AI_PROVIDER must be %q or %q, got %q", providerOpenAI, providerLocal, c.Provider)
	}
	a := &c.Agent
	for _, s := range []struct {
		name string
		n    *int
		d    *time.Duration
	}{
		{name: "LOGBOOK_AGENT_CONCURRENCY", n: &a.Concurrency},
		{name: "LOGBOOK_AGENT_PER_WORKSPACE", n: &a.PerWorkspace},
		{name: "LOGBOOK_AGENT_WINDOW", n: &a.Window},
		{name: "LOGBOOK_AGENT_CALL_TIMEOUT", d: &a.CallTimeout},
		{name: "LOGBOOK_AGENT_HANDLER_TIMEOUT", d: &a.HandlerTimeout},
		{name: "LOGBOOK_AGENT_RETRY_BACKOFF", d: &a.RetryBackoff},
		{name: "LOGBOOK_AGENT_BREAKER_DELAY", d: &a.BreakerDelay},
		{name: "LOGBOOK_AGENT_AUTH_PAUSE", d: &a.AuthPause},
		{name: "LOGBOOK_AGENT_RAMP", d: &a.Ramp},
		{name: "LOGBOOK_AGENT_SWEEP_EVERY", d: &a.SweepEvery},
	} {
		v := env(s.name, "")
		if v == "" {
			continue
		}
		if s.n != nil {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 {
				return c, fmt.Errorf("%s must be a positive integer, got %q", s.name, v)
			}
			*s.n = n
			continue
		}
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("%s must be a positive duration such as 30s, got %q", s.name, v)
		}
		*s.d = d
	}
	c.Agent = c.Agent.WithDefaults()
	return c, c.Agent.Validate()
}

// newAgent builds the agent role's worker.
func (m *Main) newAgent() (*agent.Worker, error) {
	c := m.Config.AI
	pm := newProviderMetrics(m.reg)
	pm.trace = m.tracing
	var primary agent.Provider
	if c.Provider == providerOpenAI {
		p, err := agent.NewOpenAI(agent.OpenAIConfig{APIKey: c.APIKey, BaseURL: c.BaseURL, Timeout: c.Agent.CallTimeout})
		if err != nil {
			return nil, err
		}
		primary = pm.wrap(p)
	}
	host, _ := os.Hostname()
	return agent.New(c.Agent, agent.Deps{
		Kafka: m.Config.Kafka, Store: agentStore{projections.NewAgentWork(m.pool)},
		Primary: primary, Local: pm.wrap(agent.Local{}), Logger: m.Log,
		Instance: fmt.Sprintf("%s/%d", host, os.Getpid()), Fields: m.ring, Signer: m.Config.Signer,
	})
}

// agentCollector exports the worker's provider states and calls.
type agentCollector struct{ w *agent.Worker }

var (
	agentProviderStateDesc = prometheus.NewDesc("logbook_ai_provider_state",
		"AI provider state: 0 closed, 1 half_open, 2 open, 3 paused (key or spend limit refused).", []string{"provider"}, nil)
	agentProviderTransitionsDesc = prometheus.NewDesc("logbook_ai_provider_transitions_total",
		"AI provider state changes.", []string{"provider"}, nil)
	agentCallsDesc = prometheus.NewDesc("logbook_ai_calls_total",
		"Provider calls made by the agent worker, local ones included.", nil, nil)
	agentCallLimitDesc = prometheus.NewDesc("logbook_ai_call_limit",
		"Provider calls the worker lets run at once now (ramps up after an outage).", nil, nil)
	agentCallsWaitingDesc = prometheus.NewDesc("logbook_ai_calls_waiting",
		"Attempts waiting for a call slot.", nil, nil)
	agentPartitionsDesc = prometheus.NewDesc("logbook_agent_partitions",
		"Events partitions the agent worker owns.", nil, nil)
	agentPausedDesc = prometheus.NewDesc("logbook_agent_paused_partitions",
		"Events partitions the agent worker does not fetch now: their window of held events is full.", nil, nil)
	agentHeldDesc = prometheus.NewDesc("logbook_agent_held_events",
		"Events the agent worker holds in memory, fetched and not yet acknowledged.", nil, nil)
	agentShelvedDesc = prometheus.NewDesc("logbook_agent_shelved_total",
		"Assignments left assigned for their workspace's turn, its share of calls already waiting.", nil, nil)
	agentWaitingTurnDesc = prometheus.NewDesc("logbook_agent_workspaces_waiting_turn",
		"Workspaces with tasks left for their turn.", nil, nil)
	agentOverBudgetDesc = prometheus.NewDesc("logbook_ai_left_over_budget_total",
		"Assignments left unanswered: their workspace spent its daily token budget.", nil, nil)
	agentOverRateDesc = prometheus.NewDesc("logbook_ai_left_over_rate_total",
		"Assignments left for later: their workspace is over its requests-per-minute limit.", nil, nil)
)

func (agentCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{agentProviderStateDesc, agentProviderTransitionsDesc, agentCallsDesc,
		agentCallLimitDesc, agentCallsWaitingDesc, agentPartitionsDesc, agentPausedDesc, agentHeldDesc, agentShelvedDesc, agentWaitingTurnDesc,
		agentOverBudgetDesc, agentOverRateDesc} {
		ch <- d
	}
}

func (a agentCollector) Collect(ch chan<- prometheus.Metric) {
	s := a.w.Status()
	for _, p := range s.Providers {
		ch <- prometheus.MustNewConstMetric(agentProviderStateDesc, prometheus.GaugeValue, float64(p.State.Rank()), p.Provider)
		ch <- prometheus.MustNewConstMetric(agentProviderTransitionsDesc, prometheus.CounterValue, float64(p.Transitions), p.Provider)
	}
	ch <- prometheus.MustNewConstMetric(agentCallsDesc, prometheus.CounterValue, float64(s.CallsMade))
	ch <- prometheus.MustNewConstMetric(agentCallLimitDesc, prometheus.GaugeValue, float64(s.Calls.Limit))
	ch <- prometheus.MustNewConstMetric(agentCallsWaitingDesc, prometheus.GaugeValue, float64(s.Calls.Waiting))
	ch <- prometheus.MustNewConstMetric(agentPartitionsDesc, prometheus.GaugeValue, float64(s.Fetch.Partitions))
	ch <- prometheus.MustNewConstMetric(agentPausedDesc, prometheus.GaugeValue, float64(s.Fetch.PausedPartitions))
	ch <- prometheus.MustNewConstMetric(agentHeldDesc, prometheus.GaugeValue, float64(s.Fetch.HeldEvents))
	ch <- prometheus.MustNewConstMetric(agentShelvedDesc, prometheus.CounterValue, float64(s.LeftForTurn))
	ch <- prometheus.MustNewConstMetric(agentWaitingTurnDesc, prometheus.GaugeValue, float64(s.WaitingTurn))
	ch <- prometheus.MustNewConstMetric(agentOverBudgetDesc, prometheus.CounterValue, float64(s.LeftOverBudget))
	ch <- prometheus.MustNewConstMetric(agentOverRateDesc, prometheus.CounterValue, float64(s.LeftOverRate))
}

// providerMetrics measure every call that reaches a provider (a breaker's
// refusal never does), by wrapping it.
type providerMetrics struct {
	trace   *tracing.Tracing
	calls   *prometheus.CounterVec
	tokens  *prometheus.CounterVec
	seconds *prometheus.HistogramVec
}

func newProviderMetrics(reg prometheus.Registerer) *providerMetrics {
	pm := &providerMetrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logbook_ai_provider_calls_total",
			Help: "Calls that reached an AI provider, by provider and result (ok, or the failure's class).",
		}, []string{"provider", "result"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "logbook_ai_tokens_total",
			Help: "Tokens the providers reported, by provider and kind (prompt, completion).",
		}, []string{"provider", "kind"}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "logbook_ai_provider_call_seconds",
			Help:    "Time a provider call took, failures included, by provider.",
			Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"provider"}),
	}
	reg.MustRegister(pm.calls, pm.tokens, pm.seconds)
	return pm
}

func (pm *providerMetrics) wrap(p agent.Provider) agent.Provider { return measuredProvider{p, pm} }

type measuredProvider struct {
	agent.Provider
	pm *providerMetrics
}

func (mp measuredProvider) Complete(ctx context.Context, r agent.Request) (agent.Response, error) {
	name := mp.Name()
	ctx, span := mp.pm.trace.Start(ctx, "ai complete", attribute.String("gen_ai.system", name),
		attribute.String("gen_ai.request.model", r.Model), attribute.String("logbook.task_id", r.TaskID))
	defer span.End()
	start := time.Now()
	resp, err := mp.Provider.Complete(ctx, r)
	mp.pm.seconds.WithLabelValues(name).Observe(time.Since(start).Seconds())
	result := "ok"
	if pe, ok := errors.AsType[*agent.ProviderError](err); ok {
		result = string(pe.Class)
	} else if err != nil {
		result = "error"
	}
	mp.pm.calls.WithLabelValues(name, result).Inc()
	if err != nil {
		span.SetStatus(codes.Error, result)
	}
	if err == nil {
		mp.pm.tokens.WithLabelValues(name, "prompt").Add(float64(resp.Usage.PromptTokens))
		mp.pm.tokens.WithLabelValues(name, "completion").Add(float64(resp.Usage.CompletionTokens))
	}
	return resp, err
}

// agentStore adapts the read models to the worker's Store.
type agentStore struct{ *projections.AgentWork }

func (s agentStore) Work(ctx context.Context, ws, task string, day time.Time) (agent.Work, bool, error) {
	w, ok, err := s.AgentWork.Work(ctx, ws, task, day)
	return agent.Work(w), ok, err
}

func (s agentStore) Unparked(ctx context.Context, day time.Time, idle, stalled time.Duration, perWorkspace, limit int) ([]agent.Parked, error) {
	return parked(s.AgentWork.Unparked(ctx, day, idle, stalled, perWorkspace, limit))
}

func (s agentStore) Waiting(ctx context.Context, ws string, minAge time.Duration, limit int) ([]agent.Parked, error) {
	return parked(s.AgentWork.Waiting(ctx, ws, minAge, limit))
}

func parked(ps []projections.Parked, err error) ([]agent.Parked, error) {
	out := make([]agent.Parked, len(ps))
	for i, p := range ps {
		out[i] = agent.Parked(p)
	}
	return out, err
}

func (s agentStore) Report(ctx context.Context, instance string, providers []agent.ProviderStatus) error {
	reports := make([]projections.ProviderReport, 0, len(providers))
	for _, p := range providers {
		reports = append(reports, projections.ProviderReport{Instance: instance, Provider: p.Provider,
			State: string(p.State), Reason: string(p.Reason), Since: p.Since, Transitions: p.Transitions})
	}
	return s.AgentWork.Report(ctx, reports)
}
