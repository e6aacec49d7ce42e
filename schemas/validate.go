package schemas

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// Published schema files are immutable (see events/SHA256SUMS): a change to
// a payload is a new file <type>.v<N+1>.json.
//
//go:embed events/*.json
var eventSchemaFiles embed.FS

// ErrUnknownEventSchema reports an event type and version without a schema.
var ErrUnknownEventSchema = errors.New("no schema for event")

type eventSchemaKey struct {
	typ     string
	version int
}

// eventSchemas compiles every embedded schema once, on first use.
var eventSchemas = sync.OnceValues(compileEventSchemas)

func compileEventSchemas() (map[eventSchemaKey]*jsonschema.Schema, error) {
	names, err := fs.Glob(eventSchemaFiles, "events/*.json")
	if err != nil {
		return nil, err
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	urls := make(map[eventSchemaKey]string, len(names))
	for _, name := range names {
		key, err := parseEventSchemaName(path.Base(name))
		if err != nil {
			return nil, err
		}
		b, err := eventSchemaFiles.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		// The file name, not the $id inside, is what the schema is found by.
		url := "file:///" + name
		if err := c.AddResource(url, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		urls[key] = url
	}
	compiled := make(map[eventSchemaKey]*jsonschema.Schema, len(urls))
	for key, url := range urls {
		sch, err := c.Compile(url)
		if err != nil {
			return nil, fmt.Errorf("schema %s v%d: %w", key.typ, key.version, err)
		}
		compiled[key] = sch
	}
	return compiled, nil
}

// parseEventSchemaName splits "task.created.v1.json" into its event type and
// version.
func parseEventSchemaName(name string) (eventSchemaKey, error) {
	base, ok := strings.CutSuffix(name, ".json")
	i := strings.LastIndex(base, ".v")
	if !ok || i <= 0 {
		return eventSchemaKey{}, fmt.Errorf("schema file %s: want <event type>.v<version>.json", name)
	}
	v, err := strconv.Atoi(base[i+2:])
	if err != nil || v < 1 {
		return eventSchemaKey{}, fmt.Errorf("schema file %s: version must be a positive integer", name)
	}
	return eventSchemaKey{typ: base[:i], version: v}, nil
}

// ValidateEventPayload checks the JSON payload of an event of the given type
// and schema version against its schema. It is safe for concurrent use.
func ValidateEventPayload(eventType string, version int, payload []byte) error {
	all, err := eventSchemas()
	if err != nil {
		return err
	}
	sch, ok := all[eventSchemaKey{eventType, version}]
	if !ok {
		return fmt.Errorf("%w %s v%d", ErrUnknownEventSchema, eventType, version)
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("event %s v%d payload: %w", eventType, version, err)
	}
	if err := sch.Validate(inst); err != nil {
		return fmt.Errorf("event %s v%d payload: %w", eventType, version, err)
	}
	return nil
}

// EventSchemaVersions returns the schema versions of each event type, in
// ascending order, or nil if the embedded schemas do not compile (which the
// package tests refuse).
func EventSchemaVersions() map[string][]int {
	all, err := eventSchemas()
	if err != nil {
		return nil
	}
	versions := make(map[string][]int)
	for key := range all {
		versions[key.typ] = append(versions[key.typ], key.version)
	}
	for _, vs := range versions {
		slices.Sort(vs)
	}
	return versions
}
