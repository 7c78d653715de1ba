package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRunInProcess runs a tiny scenario against the whole system started
// in the test's process, and checks that result.json holds sane, non-zero
// figures: what `livetab bench` reports comes out of a real run.
func TestRunInProcess(t *testing.T) {
	o := inProcessSmoke(t)
	o.Duration = 3 * time.Second
	o.Accounts = 3
	o.HotSubs = 2
	o.HotShare = 0.5
	o.HitRate, o.EventRate = 10, 100
	o.SessionEvents, o.Batch = 5, 4
	o.InstallRatio = 1
	var progress bytes.Buffer
	o.Progress = &progress

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	if _, err := Run(ctx, o); err != nil {
		t.Fatalf("Run: %v\nprogress:\n%s", err, progress.String())
	}
	t.Logf("run took %s; progress:\n%s", time.Since(begin).Round(time.Millisecond), progress.String())

	b, err := os.ReadFile(filepath.Join(o.Out, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result.json: %v", err)
	}
	checkPNG(t, filepath.Join(o.Out, "chart.png"))

	positive := []struct {
		name string
		v    float64
	}{
		{"window", res.Ingest.WindowS},
		{"offered events/s", res.Ingest.OfferedEventsPerS},
		{"achieved events/s", res.Ingest.AchievedEventsPerS},
		{"achieved hits/s", res.Ingest.AchievedHitsPerS},
		{"bytes per event", res.Ingest.BytesPerEvent},
		{"converting installs", float64(res.Ingest.ConvertingInstalls)},
		{"end-to-end count", float64(res.Latency.EndToEnd.Count)},
		{"end-to-end p50", res.Latency.EndToEnd.P50},
		{"hit count", float64(res.Latency.Hit.Count)},
		{"event count", float64(res.Latency.Event.Count)},
		{"collector ack (events) p50", res.Latency.CollectorAckEvents.P50},
		{"collector ack (hit) p50", res.Latency.CollectorAckHit.P50},
		{"deliveries/s", res.Delivery.ItemsPerS},
		{"hot items per subscriber/s", res.Delivery.HotItemsPerSubS},
		{"series points", float64(len(res.Series))},
		{"generator CPU", res.Generator.CPUSeconds},
	}
	for _, p := range positive {
		if !(p.v > 0) {
			t.Errorf("%s = %v, want > 0", p.name, p.v)
		}
	}
	e := res.Latency.EndToEnd
	if !(e.P50 <= e.P90 && e.P90 <= e.P99 && e.P99 <= e.P999 && e.P999 <= e.Max) {
		t.Errorf("percentiles out of order: %+v", e)
	}
	// Every hit and event accepted reached every subscriber (5: one per
	// account and two hot ones).
	if res.Delivery.Subscribers != 5 || res.Delivery.Undelivered == nil || *res.Delivery.Undelivered != 0 {
		t.Errorf("subscribers %d, undelivered %v: want 5 and 0", res.Delivery.Subscribers, res.Delivery.Undelivered)
	}
	if res.Delivery.Gaps != 0 || res.Delivery.BadFrames != 0 || res.Delivery.ErrorFrames != 0 {
		t.Errorf("delivery = %+v", res.Delivery)
	}
	// In one process the stages come from the tap of the view topic.
	if res.Latency.Processor == nil || res.Latency.Views == nil || res.Latency.Processor.Count == 0 {
		t.Errorf("stages not measured: processor %+v, views %+v (%s)", res.Latency.Processor, res.Latency.Views, res.Latency.StageSource)
	}
	if res.Latency.Hot == nil || res.Latency.Hot.Count == 0 {
		t.Errorf("hot account latency = %+v", res.Latency.Hot)
	}
	if !res.Backlog.Measured {
		t.Error("backlog not measured")
	}
	if res.SUT.Separated || res.SUT.Mode != ModeInProcess {
		t.Errorf("in-process system reported as %+v", res.SUT)
	}
	if res.Ingest.AchievedEventsPerS > 1.5*o.EventRate {
		t.Errorf("achieved %.0f events/s, offered only %.0f", res.Ingest.AchievedEventsPerS, o.EventRate)
	}
	if !strings.Contains(progress.String(), "end to end") {
		t.Errorf("no summary in the progress output")
	}
}

// inProcessSmoke is the smoke preset run in the test's process, on 2
// partitions, writing to a temporary directory: the base of the tests'
// tiny real runs.
func inProcessSmoke(t *testing.T) Options {
	t.Helper()
	o, err := Preset(ScenarioSmoke)
	if err != nil {
		t.Fatal(err)
	}
	o.Mode = ModeInProcess
	o.Partitions = 2
	o.Drain = 30 * time.Second
	o.Out = t.TempDir()
	return o
}
