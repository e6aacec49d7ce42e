package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// What this machine can check of the deployment files without a container
// engine or a cluster: they parse, every image is pinned to a version,
// every setting they give logbook is one it knows, and each role has what
// running it safely needs.

func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var d map[string]any
		err := dec.Decode(&d)
		if errors.Is(err, io.EOF) {
			return docs
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if d != nil {
			docs = append(docs, d)
		}
	}
}

func dig(v any, path ...string) any {
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

var pinned = regexp.MustCompile(`^[a-z0-9./_-]+:v?[0-9]+(\.[0-9]+)*[a-z0-9.+-]*$`)

func checkPinned(t *testing.T, where, image string) {
	t.Helper()
	if !pinned.MatchString(image) || strings.HasSuffix(image, ":latest") {
		t.Errorf("%s: image %q is not pinned to a version", where, image)
	}
}

func checkSettings(t *testing.T, where string, names []string) {
	t.Helper()
	for _, n := range names {
		if _, ok := lookupSetting(n); !ok && (strings.HasPrefix(n, "LOGBOOK_") || strings.HasPrefix(n, "OPENAI_")) {
			t.Errorf("%s: %s is no logbook setting", where, n)
		}
	}
}

func keys(m any) []string {
	var out []string
	if mm, ok := m.(map[string]any); ok {
		for k := range mm {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func TestComposeFile(t *testing.T) {
	docs := yamlDocs(t, "../../deploy/compose.yaml")
	services, _ := dig(docs[0], "services").(map[string]any)
	want := []string{"agent-1", "agent-2", "api-1", "api-2", "decider-1", "decider-2", "grafana", "kafka-1", "kafka-2", "kafka-3",
		"postgres", "projector-1", "projector-2", "prometheus"}
	if got := keys(services); !slices.Equal(got, want) {
		t.Fatalf("services %v, want %v", got, want)
	}
	var logbooks []string
	for name, s := range services {
		image, _ := dig(s, "image").(string)
		if dig(s, "build") != nil {
			logbooks = append(logbooks, name)
			if cmd, _ := dig(s, "command").([]any); len(cmd) < 3 || cmd[0] != "serve" || !knownRoles[cmd[2].(string)] {
				t.Errorf("%s: command %v is not serve with one role", name, cmd)
			}
			checkSettings(t, name, keys(dig(s, "environment")))
			continue
		}
		checkPinned(t, name, image)
	}
	slices.Sort(logbooks)
	if len(logbooks) != 8 {
		t.Errorf("logbook services %v, want two per role", logbooks)
	}
	if b := dig(services["api-1"], "environment", "LOGBOOK_KAFKA_BROKERS"); b != "kafka-1:9092,kafka-2:9092,kafka-3:9092" {
		t.Errorf("api-1 brokers %v", b)
	}
	// Prometheus scrapes every logbook instance and loads the alert rules.
	prom, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range logbooks {
		if !strings.Contains(string(prom), name+":9464") {
			t.Errorf("prometheus.yml does not scrape %s", name)
		}
	}
	for _, mount := range []string{"./prometheus/prometheus.yml", "./prometheus/alerts.yml", "./grafana/logbook.json", "./grafana/provisioning"} {
		if _, err := os.Stat(filepath.Join("../../deploy", mount)); err != nil {
			t.Errorf("compose mounts %s: %v", mount, err)
		}
	}
}

func TestDockerfileBaseImagesArePinned(t *testing.T) {
	b, err := os.ReadFile("../../deploy/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	from := regexp.MustCompile(`(?m)^FROM (\S+)`).FindAllStringSubmatch(string(b), -1)
	if len(from) < 2 {
		t.Fatalf("FROM lines: %v", from)
	}
	for _, f := range from {
		checkPinned(t, "Dockerfile", f[1])
	}
}

func TestKubernetesManifests(t *testing.T) {
	kust := yamlDocs(t, "../../deploy/k8s/kustomization.yaml")[0]
	tag := ""
	for _, img := range dig(kust, "images").([]any) {
		if dig(img, "name") == "logbook" {
			tag, _ = dig(img, "newTag").(string)
		}
	}
	checkPinned(t, "kustomization", "logbook:"+tag)
	var deployments, budgets []map[string]any
	for _, r := range dig(kust, "resources").([]any) {
		for _, d := range yamlDocs(t, filepath.Join("../../deploy/k8s", r.(string))) {
			switch d["kind"] {
			case "Deployment":
				deployments = append(deployments, d)
			case "PodDisruptionBudget":
				budgets = append(budgets, d)
			case "ConfigMap":
				checkSettings(t, "ConfigMap", keys(d["data"]))
			}
		}
	}
	roles := map[string]bool{}
	for _, d := range deployments {
		name := dig(d, "metadata", "name").(string)
		sel := dig(d, "spec", "selector", "matchLabels")
		covered := false
		for _, b := range budgets {
			if equalYAML(dig(b, "spec", "selector", "matchLabels"), sel) && dig(b, "spec", "minAvailable") != nil {
				covered = true
			}
		}
		if !covered {
			t.Errorf("%s: no PodDisruptionBudget selects its pods", name)
		}
		if r, _ := dig(d, "spec", "replicas").(int); r < 2 {
			t.Errorf("%s: %d replicas; two keep the role up through a restart", name, r)
		}
		for _, c := range dig(d, "spec", "template", "spec", "containers").([]any) {
			if dig(c, "image") != "logbook" {
				t.Errorf("%s: image %v, want the kustomization's logbook", name, dig(c, "image"))
			}
			for _, probe := range []string{"readinessProbe", "livenessProbe"} {
				if dig(c, probe, "httpGet", "path") == nil {
					t.Errorf("%s: no %s", name, probe)
				}
			}
			if dig(c, "resources", "limits", "memory") == nil || dig(c, "resources", "requests", "cpu") == nil {
				t.Errorf("%s: no memory limit or cpu request", name)
			}
			var env []string
			for _, e := range asList(dig(c, "env")) {
				env = append(env, dig(e, "name").(string))
			}
			checkSettings(t, name, env)
			args := asList(dig(c, "args"))
			if len(args) < 3 || args[0] != "serve" || !knownRoles[args[2].(string)] {
				t.Errorf("%s: args %v", name, args)
			} else {
				roles[args[2].(string)] = true
			}
		}
	}
	if len(roles) != len(knownRoles) {
		t.Errorf("roles deployed: %v, want every one of %v", roles, knownRoles)
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func equalYAML(a, b any) bool {
	x, _ := yaml.Marshal(a)
	y, _ := yaml.Marshal(b)
	return bytes.Equal(x, y)
}
