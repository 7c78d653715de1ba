package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/livetab/livetab/system"
	"github.com/livetab/livetab/topics"
)

// startPart runs the given parts against brokers, as `livetab collect`,
// `livetab process` and `livetab serve` do.
func startPart(t *testing.T, brokers []string, parts system.Parts) *livetab {
	t.Helper()
	opts := system.DefaultOptions()
	opts.Addr = "127.0.0.1:0"
	opts.Brokers = brokers
	opts.DataDir = t.TempDir()
	opts.Secret = secret
	opts.Parts = parts
	opts.Demo = false
	opts.Topics.Partitions = 4
	opts.Logger = testLogger()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan system.Info, 1)
	done := make(chan error, 1)
	go func() { done <- system.Run(ctx, opts, func(i system.Info) { ready <- i }) }()
	lt := &livetab{t: t}
	select {
	case lt.info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("%+v stopped before it was ready: %v", parts, err)
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatalf("%+v not ready within 90s", parts)
	}
	lt.stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%+v stopped with error: %v", parts, err)
		}
	}
	t.Cleanup(lt.stop)
	return lt
}

// TestPartsRunSeparately runs the collector, two processor instances and
// the views as separate processes would, against one broker: the
// deployment shape of a real cluster.
func TestPartsRunSeparately(t *testing.T) {
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	brokers := broker.Addrs()

	collect := startPart(t, brokers, system.Parts{Collector: true})
	startPart(t, brokers, system.Parts{Processors: true})
	startPart(t, brokers, system.Parts{Processors: true})
	serve := startPart(t, brokers, system.Parts{Views: true})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	collect.registerLink("acme", "spring")
	ws, _, err := serve.dial(ctx, "acme", token(t, "acme", false))
	if err != nil {
		t.Fatal(err)
	}
	clickID, hitSession := collect.visit("acme", "spring")
	appSession := fmt.Sprintf("app-%d", time.Now().UnixNano())
	collect.postEvent(map[string]any{"id": "ev-split-1", "account": "acme", "session": appSession, "name": "install", "click_id": clickID})
	ws.until(ctx, "the install converted with the hit's session", func(it item) bool {
		return it.Kind == "event" && it.ConvertedWith != nil && it.ConvertedWith.Session == hitSession
	})
	checkTimeline(t, serve.timeline(ctx, "acme", appSession), appSession, hitSession)
}
