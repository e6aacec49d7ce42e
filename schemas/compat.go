package schemas

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"slices"
	"sort"
)

// Compatibility of event schema versions. A payload written under version N
// is read as version N+1 through the upcaster between them, so version N+1
// may add what the upcaster supplies and loosen constraints, and nothing
// else: a field removed or made optional, retyped, or held to a tighter
// constraint would break a reader of the log as it is, or refuse an event
// already in it.

// documentation are keywords that change no payload's validity.
var documentation = map[string]bool{"description": true, "title": true, "$id": true, "$schema": true, "examples": true,
	"$comment": true}

// judged are the keywords whose changes Compatible judges. A change to any
// other keyword is refused: the checker cannot tell whether it breaks.
var judged = map[string]bool{"type": true, "properties": true, "required": true, "additionalProperties": true,
	"minLength": true, "maxLength": true, "minimum": true, "maximum": true, "minItems": true, "maxItems": true,
	"exclusiveMinimum": true, "exclusiveMaximum": true, "enum": true, "const": true, "pattern": true, "format": true,
	"items": true}

// Compatible returns why schema next (JSON) cannot follow schema prev as the
// next version of a payload, none when it can. supplied names the
// top-level fields the upcaster from prev to next adds when they are absent.
func Compatible(prev, next []byte, supplied map[string]bool) ([]string, error) {
	var p, n map[string]any
	if err := json.Unmarshal(prev, &p); err != nil {
		return nil, fmt.Errorf("previous schema: %w", err)
	}
	if err := json.Unmarshal(next, &n); err != nil {
		return nil, fmt.Errorf("next schema: %w", err)
	}
	var c compat
	c.node("", p, n, supplied)
	sort.Strings(c.breaks)
	return c.breaks, nil
}

type compat struct{ breaks []string }

func (c *compat) refuse(at, format string, args ...any) {
	if at == "" {
		at = "(payload)"
	}
	c.breaks = append(c.breaks, at+": "+fmt.Sprintf(format, args...))
}

func (c *compat) node(at string, prev, next map[string]any, supplied map[string]bool) {
	for k := range union(prev, next) {
		if documentation[k] {
			continue
		}
		pv, inPrev := prev[k]
		nv, inNext := next[k]
		if !judged[k] {
			if !reflect.DeepEqual(pv, nv) {
				c.refuse(at, "keyword %s changed; the compatibility check cannot judge it", k)
			}
			continue
		}
		switch k {
		case "type":
			if !inNext {
				continue // any type now
			}
			if !inPrev || !subset(types(pv), types(nv)) {
				c.refuse(at, "type %v became %v", pv, nv)
			}
		case "properties":
			c.properties(at, asMap(pv), asMap(nv), setOf(prev["required"]), setOf(next["required"]), supplied)
		case "required":
			// Declared properties are judged with the properties; a name
			// required without a declaration is judged here.
			declared, prevReq := asMap(next["properties"]), setOf(pv)
			for name := range setOf(nv) {
				if _, ok := declared[name]; !ok && !prevReq[name] && !supplied[name] {
					c.refuse(join(at, name), "now required, and the upcaster does not supply it")
				}
			}
		case "additionalProperties":
			pm, pSchema := pv.(map[string]any)
			nm, nSchema := nv.(map[string]any)
			switch {
			case closed(nv) && !closed(pv):
				c.refuse(at, "additional properties are no longer allowed")
			case nSchema && !pSchema && !closed(pv):
				c.refuse(at, "additional properties constrained where any were allowed")
			case nSchema && pSchema:
				c.node(at+"[*]", pm, nm, nil)
			}
		case "minLength", "minimum", "minItems", "exclusiveMinimum":
			if inNext && (!inPrev || number(nv) > number(pv)) {
				c.refuse(at, "%s raised from %v to %v", k, orNone(pv, inPrev), nv)
			}
		case "maxLength", "maximum", "maxItems", "exclusiveMaximum":
			if inNext && (!inPrev || number(nv) < number(pv)) {
				c.refuse(at, "%s lowered from %v to %v", k, orNone(pv, inPrev), nv)
			}
		case "enum":
			if inNext && (!inPrev || !subset(asSlice(pv), asSlice(nv))) {
				c.refuse(at, "enum %v narrowed to %v", orNone(pv, inPrev), nv)
			}
		case "const", "pattern", "format":
			if inNext && !reflect.DeepEqual(pv, nv) {
				c.refuse(at, "%s %v became %v", k, orNone(pv, inPrev), nv)
			}
		case "items":
			pm, nm := asMap(pv), asMap(nv)
			if inNext && !inPrev {
				c.refuse(at, "items constrained where any were allowed")
				continue
			}
			if inNext {
				c.node(at+"[]", pm, nm, nil)
			}
		}
	}
}

func (c *compat) properties(at string, prev, next map[string]any, prevReq, nextReq map[string]bool, supplied map[string]bool) {
	for name, pv := range prev {
		field := join(at, name)
		nv, ok := next[name]
		if !ok {
			c.refuse(field, "removed")
			continue
		}
		if prevReq[name] && !nextReq[name] {
			c.refuse(field, "no longer required: readers count on it")
		}
		c.node(field, asMap(pv), asMap(nv), nil)
	}
	for name := range next {
		if _, old := prev[name]; old {
			if nextReq[name] && !prevReq[name] && !supplied[name] {
				c.refuse(join(at, name), "now required, and the upcaster does not supply it")
			}
			continue
		}
		if nextReq[name] && !supplied[name] {
			c.refuse(join(at, name), "added as required, and the upcaster does not supply it")
		}
	}
}

// CheckEventSchemaVersions judges every step between consecutive versions
// of every event schema in the embedded files, with what each step's
// upcaster supplies; it returns the breaks found.
func CheckEventSchemaVersions() ([]string, error) {
	names, err := fs.Glob(eventSchemaFiles, "events/*.json")
	if err != nil {
		return nil, err
	}
	versions := map[string][]int{}
	for _, name := range names {
		key, err := parseEventSchemaName(path.Base(name))
		if err != nil {
			return nil, err
		}
		versions[key.typ] = append(versions[key.typ], key.version)
	}
	var breaks []string
	for typ, vs := range versions {
		slices.Sort(vs)
		for i, v := range vs {
			if v != i+1 {
				breaks = append(breaks, fmt.Sprintf("%s: versions %v are not 1 to %d", typ, vs, len(vs)))
				break
			}
		}
		for v := 1; v < len(vs); v++ {
			prev, err := eventSchemaFiles.ReadFile(fmt.Sprintf("events/%s.v%d.json", typ, v))
			if err != nil {
				return nil, err
			}
			next, err := eventSchemaFiles.ReadFile(fmt.Sprintf("events/%s.v%d.json", typ, v+1))
			if err != nil {
				return nil, err
			}
			found, err := Compatible(prev, next, supplied(typ, v))
			if err != nil {
				return nil, fmt.Errorf("%s v%d -> v%d: %w", typ, v, v+1, err)
			}
			for _, b := range found {
				breaks = append(breaks, fmt.Sprintf("%s v%d -> v%d: %s", typ, v, v+1, b))
			}
		}
	}
	sort.Strings(breaks)
	return breaks, nil
}

// supplied is what the upcaster from version v of typ adds to a payload
// that has nothing: the fields it gives a default.
func supplied(typ string, v int) map[string]bool {
	steps := upcasters[typ]
	if v < 1 || v > len(steps) {
		return nil
	}
	p := map[string]json.RawMessage{}
	if err := steps[v-1](p); err != nil {
		return nil
	}
	out := make(map[string]bool, len(p))
	for k := range p {
		out[k] = true
	}
	return out
}

func join(at, name string) string {
	if at == "" {
		return name
	}
	return at + "." + name
}

func union(a, b map[string]any) map[string]bool {
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

func asMap(v any) map[string]any {
	m, _ := v.(map[string]any)
	return m
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}

func setOf(v any) map[string]bool {
	out := map[string]bool{}
	for _, x := range asSlice(v) {
		if s, ok := x.(string); ok {
			out[s] = true
		}
	}
	return out
}

// types reads "type": a name or a list of names; integer counts as a
// number too, so integer -> number widens.
func types(v any) []any {
	switch t := v.(type) {
	case string:
		return []any{t}
	case []any:
		return t
	}
	return nil
}

func subset(a, b []any) bool {
	for _, x := range a {
		if !slices.ContainsFunc(b, func(y any) bool { return reflect.DeepEqual(x, y) || x == "integer" && y == "number" }) {
			return false
		}
	}
	return true
}

func closed(v any) bool {
	b, ok := v.(bool)
	return ok && !b
}

func number(v any) float64 {
	f, _ := v.(float64)
	return f
}

func orNone(v any, ok bool) any {
	if !ok {
		return "none"
	}
	return v
}
