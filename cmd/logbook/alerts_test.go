package main_test

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEveryAlertLinksToItsRunbookSection: each alert in the rules names a
// runbook_url whose anchor is a section of docs/RUNBOOK.md, and each
// section of the runbook's alerts is an alert that exists.
func TestEveryAlertLinksToItsRunbookSection(t *testing.T) {
	rules, err := os.ReadFile("../../deploy/prometheus/alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	book, err := os.ReadFile("../../docs/RUNBOOK.md")
	if err != nil {
		t.Fatal(err)
	}
	sections := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^## (\S+)$`).FindAllStringSubmatch(string(book), -1) {
		sections[strings.ToLower(m[1])] = true
	}
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\S+)\n(?:\s+.*\n)*?\s+runbook_url: "docs/RUNBOOK\.md#([^"]+)"`).FindAllStringSubmatch(string(rules), -1)
	if n := strings.Count(string(rules), "- alert: "); n != len(alerts) || n == 0 {
		t.Fatalf("%d alerts, %d with a runbook_url", n, len(alerts))
	}
	for _, a := range alerts {
		if a[2] != strings.ToLower(a[1]) {
			t.Errorf("alert %s links to #%s, not to its own section", a[1], a[2])
		}
		if !sections[a[2]] {
			t.Errorf("alert %s: docs/RUNBOOK.md has no section %q", a[1], a[1])
		}
		delete(sections, a[2])
	}
	for s := range sections {
		t.Errorf("docs/RUNBOOK.md has a section for %s, which no rule raises", s)
	}
}
