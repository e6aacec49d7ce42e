package agent

import "log/slog"

// Secret is a credential (an AI provider's API key) that prints, logs and
// marshals as "[redacted]"; only Reveal gives its text.
type Secret string

const redacted = "[redacted]"

// String implements fmt.Stringer, for %s and %v.
func (Secret) String() string { return redacted }

// GoString implements fmt.GoStringer, for %#v.
func (Secret) GoString() string { return redacted }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON implements json.Marshaler.
func (Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText implements encoding.TextMarshaler (JSON map keys, YAML, env
// dumps).
func (Secret) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the secret's text, for the one place that must send it.
func (s Secret) Reveal() string { return string(s) }
