package aifake

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"
)

// Answer returns the content a healthy fake answers to req, and its finish
// reason ("stop", or "length" when the request's token limit cut it). It
// depends on the messages and the token limit only: the same prompt always
// gets the same answer.
func Answer(req ChatRequest) (content, finishReason string) {
	h := sha256.New()
	for _, m := range req.Messages {
		fmt.Fprintf(h, "%s\x00%s\x00", m.Role, m.Content)
	}
	digest := hex.EncodeToString(h.Sum(nil))[:12]
	content = fmt.Sprintf("Answer %s to: %s", digest, firstLine(lastUser(req), 80))

	limit := req.MaxCompletionTokens
	if limit == 0 {
		limit = req.MaxTokens
	}
	if limit > 0 && Tokens(content) > limit {
		return truncate(content, 4*limit), "length"
	}
	return content, "stop"
}

// Tokens is the fake's token count of s: one per four characters, rounded
// up, as OpenAI's rule of thumb has it.
func Tokens(s string) int { return (utf8.RuneCountInString(s) + 3) / 4 }

// PromptTokens is the fake's prompt token count of req: the tokens of each
// message plus OpenAI's overhead of 4 a message and 3 a prompt.
func PromptTokens(req ChatRequest) int {
	n := 3
	for _, m := range req.Messages {
		n += 4 + Tokens(m.Content)
	}
	return n
}

func writeCompletion(w http.ResponseWriter, req ChatRequest, seq int64) {
	content, finish := Answer(req)
	prompt, completion := PromptTokens(req), Tokens(content)
	writeJSON(w, http.StatusOK, map[string]any{
		"id":      fmt.Sprintf("chatcmpl-aifake%06d", seq),
		"object":  "chat.completion",
		"created": time.Now().Unix(),
		"model":   req.Model,
		"choices": []map[string]any{{
			"index":         0,
			"message":       map[string]any{"role": "assistant", "content": content},
			"finish_reason": finish,
		}},
		"usage": map[string]int{
			"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
		},
		"system_fingerprint": "fp_aifake",
	})
}

// lastUser is the content of req's last user message.
func lastUser(req ChatRequest) string {
	for i := len(req.Messages) - 1; i >= 0; i-- {
		if req.Messages[i].Role == "user" {
			return req.Messages[i].Content
		}
	}
	return ""
}

func firstLine(s string, n int) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return truncate(s, n)
}

// truncate keeps the first n characters of s.
func truncate(s string, n int) string {
	i := 0
	for j := range s {
		if i == n {
			return s[:j]
		}
		i++
	}
	return s
}
