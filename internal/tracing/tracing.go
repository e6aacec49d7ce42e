// Package tracing follows a command through logbook as one OpenTelemetry
// trace: the HTTP request, its append, the decider's decision, the events'
// projection and the agent's provider call. The trace context travels in
// the Kafka records' headers (W3C traceparent, written and read by kotel).
// Off unless an OTLP endpoint is configured.
package tracing

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/plugin/kotel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Config configures tracing.
type Config struct {
	// Endpoint is the OTLP/HTTP collector's base URL (http://host:4318);
	// empty turns tracing off.
	Endpoint string
	// SampleRatio of new traces kept, 0..1; a trace begun upstream keeps
	// its caller's decision.
	SampleRatio float64
	Service     string // service.name, default "logbook"
	Version     string
	Instance    string // service.instance.id
}

// Tracing holds the process's tracer provider. Its zero value, and the
// value New returns without an endpoint, traces nothing at no cost.
type Tracing struct {
	provider trace.TracerProvider
	tracer   trace.Tracer
	prop     propagation.TextMapPropagator
	kotel    *kotel.Tracer
	shutdown func(context.Context) error
}

// New starts the exporter when cfg names an endpoint.
func New(ctx context.Context, cfg Config) (*Tracing, error) {
	if cfg.Endpoint == "" {
		return &Tracing{}, nil
	}
	if cfg.Service == "" {
		cfg.Service = "logbook"
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("tracing: the OTLP endpoint %q is no http(s) URL", cfg.Endpoint)
	}
	if strings.TrimSuffix(u.Path, "/") == "" {
		u.Path = "/v1/traces" // a base URL, as OTEL_EXPORTER_OTLP_ENDPOINT is
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(u.String()), otlptracehttp.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("tracing: %w", err)
	}
	res := resource.NewSchemaless(attribute.String("service.name", cfg.Service),
		attribute.String("service.version", cfg.Version), attribute.String("service.instance.id", cfg.Instance))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exp),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(cfg.SampleRatio))),
	)
	prop := propagation.TraceContext{}
	return &Tracing{provider: tp, tracer: tp.Tracer("github.com/logbook-dev/logbook"), prop: prop,
		kotel:    kotel.NewTracer(kotel.TracerProvider(tp), kotel.TracerPropagator(prop)),
		shutdown: tp.Shutdown}, nil
}

// Enabled reports whether spans are recorded and exported.
func (t *Tracing) Enabled() bool { return t != nil && t.tracer != nil }

// Shutdown exports what is buffered.
func (t *Tracing) Shutdown(ctx context.Context) error {
	if !t.Enabled() {
		return nil
	}
	return t.shutdown(ctx)
}

// KafkaHooks are the hooks a Kafka client needs to write the trace context
// into the records it produces and read it from those it fetches.
func (t *Tracing) KafkaHooks() []kgo.Hook {
	if !t.Enabled() {
		return nil
	}
	return kotel.NewKotel(kotel.WithTracer(t.kotel)).Hooks()
}

// Start starts a span; a no-op one when tracing is off.
func (t *Tracing) Start(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span) {
	if !t.Enabled() {
		return ctx, noop.Span{}
	}
	return t.tracer.Start(ctx, name, trace.WithAttributes(attrs...))
}

// Record starts the span of handling one consumed record, a child of the
// span that produced it; the returned func ends it. Records produced with
// the context continue the trace.
func (t *Tracing) Record(r *kgo.Record, name string) (context.Context, func()) {
	if !t.Enabled() {
		return r.Context, func() {}
	}
	if r.Context == nil {
		r.Context = context.Background()
	}
	ctx, span := t.tracer.Start(r.Context, name, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("messaging.destination.name", r.Topic),
			attribute.Int("messaging.kafka.destination.partition", int(r.Partition)),
			attribute.Int64("messaging.kafka.message.offset", r.Offset)))
	return ctx, func() { span.End() }
}

// HTTP is the middleware that makes each request a server span (named by
// its chi route once routed), continuing a caller's traceparent, and
// answers the trace id in X-Trace-Id for support requests.
func (t *Tracing) HTTP(next http.Handler) http.Handler {
	if !t.Enabled() {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
		ctx, span := t.tracer.Start(ctx, r.Method, trace.WithSpanKind(trace.SpanKindServer),
			trace.WithAttributes(attribute.String("http.request.method", r.Method)))
		defer span.End()
		w.Header().Set("X-Trace-Id", span.SpanContext().TraceID().String())
		ww := middleware.NewWrapResponseWriter(w, r.ProtoMajor)
		next.ServeHTTP(ww, r.WithContext(ctx))
		status := ww.Status()
		if status == 0 {
			status = http.StatusOK
		}
		if rc := chi.RouteContext(r.Context()); rc != nil && rc.RoutePattern() != "" {
			span.SetName(r.Method + " " + rc.RoutePattern())
			span.SetAttributes(attribute.String("http.route", rc.RoutePattern()))
		}
		span.SetAttributes(attribute.Int("http.response.status_code", status))
		if status >= 500 {
			span.SetStatus(codes.Error, http.StatusText(status))
		}
	})
}

// LogHandler adds the trace and span ids of the context a line is logged
// with, so a log line leads to its trace.
func LogHandler(h slog.Handler) slog.Handler { return logHandler{h} }

type logHandler struct{ next slog.Handler }

func (l logHandler) Enabled(ctx context.Context, lv slog.Level) bool { return l.next.Enabled(ctx, lv) }

func (l logHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return l.next.Handle(ctx, r)
}

func (l logHandler) WithAttrs(as []slog.Attr) slog.Handler { return logHandler{l.next.WithAttrs(as)} }
func (l logHandler) WithGroup(name string) slog.Handler    { return logHandler{l.next.WithGroup(name)} }
