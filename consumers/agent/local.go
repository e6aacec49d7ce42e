package agent

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/logbook-dev/logbook/domain"
)

// Local is the built-in responder: rules, not a model, and no network. It
// is the dev default and the fallback where a workspace's policy allows
// one. It grades the task's urgency from keywords, files it under a
// category, checks the input (empty, over-long lines, control characters,
// unbalanced brackets) and answers with a fixed template. The answer
// depends on the agent's name, its instructions and the input alone: the
// same task always gets the same answer. The zero value is ready to use.
type Local struct{}

// Local's names, as its responses report them.
const (
	LocalProvider = "local"
	LocalModel    = "local-rules-v1"
)

// Bounds of the local answer.
const (
	localMaxLine     = 200 // a longer input line is flagged
	localQuoteLen    = 160 // of the summary and role lines
	localMaxFindings = 5   // over-long lines listed before "and N more"
)

// Name implements Provider.
func (Local) Name() string { return LocalProvider }

// Complete implements Provider. It fails only when ctx has ended.
func (l Local) Complete(ctx context.Context, r Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, &ProviderError{Provider: LocalProvider, Class: ClassUnavailable, Err: err}
	}
	out := localAnswer(r.AgentName, r.Instructions, r.Input)
	return Response{
		Output: out,
		Usage: domain.TokenUsage{
			PromptTokens:     int64(len(strings.Fields(r.Instructions)) + len(strings.Fields(r.Input))),
			CompletionTokens: int64(len(strings.Fields(out))),
		},
		Model:    LocalModel,
		Provider: LocalProvider,
	}, nil
}

// urgency levels, from the 0–9 urgency score.
func urgencyLevel(score int) string {
	switch {
	case score >= 8:
		return "critical"
	case score >= 6:
		return "high"
	case score >= 3:
		return "normal"
	}
	return "low"
}

// keyword is a word that moves a task's urgency and suggests its category.
type keyword struct {
	word     string
	weight   int
	category string // "" leaves the category to other words
}

// keywords, strongest first: a task's category is that of its strongest
// keyword, ties going to the earlier one.
var keywords = []keyword{
	{"outage", 5, "incident"}, {"breach", 5, "incident"}, {"emergency", 5, "incident"},
	{"incident", 4, "incident"}, {"down", 4, "incident"}, {"p0", 5, ""}, {"sev1", 5, ""},
	{"critical", 4, ""}, {"vulnerability", 4, "incident"}, {"security", 3, "incident"},
	{"urgent", 3, ""}, {"asap", 3, ""}, {"immediately", 3, ""}, {"blocker", 3, ""},
	{"blocking", 3, ""}, {"p1", 3, ""}, {"sev2", 3, ""},
	{"crash", 2, "bug"}, {"crashes", 2, "bug"}, {"broken", 2, "bug"}, {"regression", 2, "bug"},
	{"failing", 2, "bug"}, {"fails", 2, "bug"}, {"error", 2, "bug"}, {"errors", 2, "bug"},
	{"bug", 2, "bug"}, {"customer", 2, ""}, {"customers", 2, ""}, {"deadline", 2, ""}, {"today", 2, ""},
	{"important", 1, ""}, {"soon", 1, ""}, {"tomorrow", 1, ""}, {"slow", 1, "bug"},
	{"feature", 0, "feature"}, {"implement", 0, "feature"}, {"add", 0, "feature"}, {"support", 0, "feature"},
	{"docs", 0, "docs"}, {"documentation", 0, "docs"}, {"readme", 0, "docs"},
	{"why", 0, "question"}, {"how", 0, "question"}, {"what", 0, "question"},
	{"minor", -2, ""}, {"cosmetic", -2, ""}, {"typo", -2, "docs"}, {"someday", -2, ""},
	{"eventually", -2, ""}, {"later", -1, ""}, {"whenever", -2, ""}, {"backlog", -1, ""},
}

// nextSteps per category.
var nextSteps = map[string][]string{
	"incident": {"Page the owner on call and open an incident channel.", "Mitigate first (roll back, fail over), then look for the cause.", "Keep a timeline for the review afterwards."},
	"bug":      {"Reproduce the failure and write down the exact steps.", "Add a test that fails before the fix.", "Fix it, then check the neighbouring code paths."},
	"feature":  {"Restate the need and its acceptance criteria.", "Sketch the smallest change that meets them.", "Plan the rollout and how to tell it worked."},
	"docs":     {"Find the pages concerned.", "Correct them and have someone read the change.", "Link the change from the task."},
	"question": {"Answer from the facts at hand.", "Point to the source or the owner for details.", "Note what is still open."},
	"task":     {"Split the work into steps of less than a day.", "Do the riskiest step first.", "Report when done."},
}

// assessment is what the rules make of a task's input.
type assessment struct {
	urgency  int // 0–9, 9 most urgent
	level    string
	category string
	signals  []string // the keywords that moved the urgency, in table order
}

func assess(input string) assessment {
	seen := make(map[string]bool)
	for _, w := range strings.FieldsFunc(strings.ToLower(input), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}) {
		seen[w] = true
	}
	a := assessment{category: "task"}
	score, strongest := 3, -1<<31
	for _, k := range keywords {
		if !seen[k.word] {
			continue
		}
		score += k.weight
		if k.weight != 0 {
			a.signals = append(a.signals, k.word)
		}
		if k.category != "" && k.weight > strongest {
			a.category, strongest = k.category, k.weight
		}
	}
	if a.category == "task" && strings.HasSuffix(strings.TrimSpace(input), "?") {
		a.category = "question"
	}
	a.urgency = min(max(score, 0), 9)
	a.level = urgencyLevel(a.urgency)
	return a
}

// checkInput is the static validation: what is wrong with the input, one
// finding a line.
func checkInput(instructions, input string) []string {
	var findings []string
	if strings.TrimSpace(input) == "" {
		findings = append(findings, "error: the input is empty")
	} else if n := len(strings.Fields(input)); n < 3 {
		findings = append(findings, fmt.Sprintf("warning: the input is only %d word(s); the answer may miss context", n))
	}
	if strings.TrimSpace(instructions) == "" {
		findings = append(findings, "note: the agent has no instructions")
	}
	var long []string
	for i, line := range strings.Split(input, "\n") {
		if n := utf8.RuneCountInString(strings.TrimRight(line, "\r")); n > localMaxLine {
			long = append(long, fmt.Sprintf("warning: line %d is %d characters long (over %d)", i+1, n, localMaxLine))
		}
		if strings.ContainsFunc(line, func(r rune) bool { return unicode.IsControl(r) && r != '\t' && r != '\r' }) {
			findings = append(findings, fmt.Sprintf("warning: line %d contains control characters", i+1))
		}
	}
	if len(long) > localMaxFindings {
		long = append(long[:localMaxFindings], fmt.Sprintf("warning: and %d more over-long lines", len(long)-localMaxFindings))
	}
	findings = append(findings, long...)
	if !bracketsBalanced(input) {
		findings = append(findings, "warning: brackets ( [ { are not balanced")
	}
	return findings
}

func bracketsBalanced(s string) bool {
	var stack []rune
	pairs := map[rune]rune{')': '(', ']': '[', '}': '{'}
	for _, r := range s {
		switch r {
		case '(', '[', '{':
			stack = append(stack, r)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[r] {
				return false
			}
			stack = stack[:len(stack)-1]
		}
	}
	return len(stack) == 0
}

// localAnswer is the templated answer.
func localAnswer(agentName, instructions, input string) string {
	a := assess(input)
	var b strings.Builder
	fmt.Fprintf(&b, "Agent: %s\n", orNone(quoteLine(agentName), "(unnamed)"))
	fmt.Fprintf(&b, "Role: %s\n", orNone(quoteLine(instructions), "(no instructions)"))
	fmt.Fprintf(&b, "Priority: %s (urgency %d/9)", a.level, a.urgency)
	if len(a.signals) > 0 {
		fmt.Fprintf(&b, "; signals: %s", strings.Join(a.signals, ", "))
	}
	fmt.Fprintf(&b, "\nCategory: %s\n", a.category)
	fmt.Fprintf(&b, "Summary: %s\n", orNone(quoteLine(input), "(empty input)"))

	b.WriteString("Checks:\n")
	findings := checkInput(instructions, input)
	if len(findings) == 0 {
		findings = []string{"ok: no problems found"}
	}
	for _, f := range findings {
		fmt.Fprintf(&b, "- %s\n", f)
	}

	b.WriteString("Next steps:\n")
	steps := nextSteps[a.category]
	switch {
	case strings.TrimSpace(input) == "":
		steps = []string{"Ask the requester what the task is."}
	case a.level == "critical" || a.level == "high":
		steps = append([]string{fmt.Sprintf("Start now: this is %s priority.", a.level)}, steps...)
	}
	for i, s := range steps {
		fmt.Fprintf(&b, "%d. %s\n", i+1, s)
	}
	return b.String()
}

// quoteLine is the first non-blank line of s, cut to localQuoteLen
// characters, control characters dropped.
func quoteLine(s string) string {
	for line := range strings.Lines(s) {
		line = strings.Map(func(r rune) rune {
			if unicode.IsControl(r) {
				return -1
			}
			return r
		}, line)
		if line = strings.TrimSpace(line); line != "" {
			if utf8.RuneCountInString(line) > localQuoteLen {
				line = string([]rune(line)[:localQuoteLen]) + "…"
			}
			return line
		}
	}
	return ""
}

func orNone(s, none string) string {
	if s == "" {
		return none
	}
	return s
}
