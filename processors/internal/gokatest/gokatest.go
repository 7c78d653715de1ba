// Package gokatest helps the processors' tests drive a group graph with
// goka's tester. The processors read their inputs as raw bytes, so tests
// consume encoded protobuf; these helpers do the encoding.
package gokatest

import (
	"context"
	"io"
	"log"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"
)

// Start runs a processor of gg on a new tester and stops it (checking that
// it ran without error) when the test ends.
func Start(t testing.TB, gg *goka.GroupGraph) *tester.Tester {
	t.Helper()
	tt := tester.New(t)
	Run(t, tt, gg)
	return tt
}

// Run runs a processor of gg on tt until the test ends.
func Run(t testing.TB, tt *tester.Tester, gg *goka.GroupGraph) {
	t.Helper()
	RunProcessor(t, tt, gg)
}

// RunProcessor is Run, returning the processor, for tests that call its
// methods (VisitAll).
func RunProcessor(t testing.TB, tt *tester.Tester, gg *goka.GroupGraph) *goka.Processor {
	t.Helper()
	p, err := goka.NewProcessor(nil, gg, goka.WithTester(tt), goka.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		t.Fatalf("new processor %s: %v", gg.Group(), err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("processor %s: %v", gg.Group(), err)
		}
	})
	return p
}

// Consume hands m, encoded, to every processor reading topic, and returns
// once they processed it and everything it caused.
func Consume(t testing.TB, tt *tester.Tester, topic goka.Stream, key string, m proto.Message, opts ...tester.EmitOption) {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatalf("encode %T: %v", m, err)
	}
	tt.Consume(string(topic), key, data, opts...)
}

// Message is one record a processor wrote.
type Message struct {
	Key   string
	Value []byte
}

// Drain returns the records written to qt's topic since the last call.
func Drain(qt *tester.QueueTracker) []Message {
	var out []Message
	for {
		k, v, ok := qt.NextRaw()
		if !ok {
			return out
		}
		out = append(out, Message{k, v})
	}
}

// Decode decodes the value of a drained record as a P.
func Decode[P proto.Message](t testing.TB, m Message, into P) P {
	t.Helper()
	if err := proto.Unmarshal(m.Value, into); err != nil {
		t.Fatalf("decode %T of key %q: %v", into, m.Key, err)
	}
	return into
}

// Logs is a slog handler that keeps every record, for tests that check
// what was logged.
type Logs struct {
	mu    sync.Mutex
	lines []string
}

// Logger returns a logger writing to l.
func (l *Logs) Logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(writer{l}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type writer struct{ l *Logs }

func (w writer) Write(p []byte) (int, error) {
	w.l.mu.Lock()
	defer w.l.mu.Unlock()
	w.l.lines = append(w.l.lines, strings.TrimSpace(string(p)))
	return len(p), nil
}

// Lines returns the logged lines.
func (l *Logs) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Find returns the first logged line containing every one of parts.
func (l *Logs) Find(parts ...string) (string, bool) {
	for _, line := range l.Lines() {
		all := true
		for _, p := range parts {
			all = all && strings.Contains(line, p)
		}
		if all {
			return line, true
		}
	}
	return "", false
}
