package pgembed

// The server's log, forwarded, with its tail kept for error messages.

import (
	"io"
	"strings"
	"sync"
)

// logSink forwards the server log to w and keeps its tail for error
// messages. It never fails, so the pipe from postgres is always drained.
type logSink struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	if len(l.buf) > 2*tailBytes {
		n := copy(l.buf, l.buf[len(l.buf)-tailBytes:])
		l.buf = l.buf[:n]
	}
	if l.w != nil && len(p) > 0 {
		_, _ = l.w.Write(p)
	}
	return len(p), nil
}

func (l *logSink) tail(n int) string {
	if l == nil {
		return ""
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return lastLines(string(l.buf), n)
}

func lastLines(s string, n int) string {
	s = strings.TrimRight(s, "\n")
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
