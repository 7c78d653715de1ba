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
	opts := testOptions(t.TempDir())
	opts.Brokers = brokers
	opts.Parts = parts
	return run(t, opts)
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
