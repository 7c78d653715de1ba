package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestSummarizeRuns(t *testing.T) {
	run := func(events, p99, steal float64, met bool, withViews bool) *Result {
		r := &Result{Machine: Machine{StealPercent: steal}}
		r.Ingest.AchievedEventsPerS = events
		r.Latency.EndToEnd = Latency{Count: 10, P50: p99 / 4, P99: p99, P999: p99 * 1.5, Max: p99 * 2}
		if withViews {
			r.Latency.Views = &Latency{Count: 10, P99: p99 / 2}
		}
		r.Targets = []Check{{Target: "freshness", Met: met}, {Target: "nothing lost", Met: true}}
		return r
	}
	results := []*Result{
		run(5000, 120, 0.5, false, true),
		run(4990, 40, 9, true, true),
		run(5001, 80, 1, true, false),
		run(4000, 200, 2, false, true),
	}
	s := summarizeRuns(ScenarioFreshness, []string{"a", "b", "c", "d"}, results)

	byName := map[string]FigureRange{}
	for _, f := range s.Figures {
		byName[f.Name] = f
	}
	for _, c := range []struct {
		name             string
		median, min, max float64
	}{
		{"events accepted", 4995, 4000, 5001},
		{"end to end p99", 100, 40, 200},
		{"end to end max", 200, 80, 400},
		{"CPU steal", 1.5, 0.5, 9},
	} {
		f, ok := byName[c.name]
		if !ok {
			t.Errorf("no figure %q in %v", c.name, s.Figures)
			continue
		}
		if f.Median != c.median || f.Min != c.min || f.Max != c.max {
			t.Errorf("%s: median %v, range %v–%v; want %v, %v–%v", c.name, f.Median, f.Min, f.Max, c.median, c.min, c.max)
		}
		if len(f.Values) != len(results) {
			t.Errorf("%s: %d values, want one per run", c.name, len(f.Values))
		}
	}
	// A figure that one run lacks is left out rather than summarised over
	// the others; figures no run has are left out too.
	for _, name := range []string{"views stage p99", "deliveries", "restart: page served"} {
		if _, ok := byName[name]; ok {
			t.Errorf("figure %q summarised though a run lacks it", name)
		}
	}
	if !slices.Equal(s.Stolen, []int{1}) {
		t.Errorf("stolen runs %v, want [1] (9%% steal)", s.Stolen)
	}
	want := []TargetTally{{"freshness", 2, 4}, {"nothing lost", 4, 4}}
	if !slices.Equal(s.Targets, want) {
		t.Errorf("targets %v, want %v", s.Targets, want)
	}

	var out bytes.Buffer
	s.print(&out)
	for _, line := range []string{"run 2*", "target met in 2 of 4 runs: freshness", "end to end p99 (ms)"} {
		if !strings.Contains(out.String(), line) {
			t.Errorf("printed summary lacks %q:\n%s", line, out.String())
		}
	}
	if odd := medianOf([]float64{1, 2, 10}); odd != 2 {
		t.Errorf("median of 1, 2, 10 = %v, want 2", odd)
	}
}

// TestRepeatInProcess repeats a tiny run of the whole system and checks
// that every run has its own result and the summary covers them all.
func TestRepeatInProcess(t *testing.T) {
	o := inProcessSmoke(t)
	o.Duration = 2 * time.Second
	o.Accounts = 2
	o.HitRate, o.EventRate = 10, 50
	var progress bytes.Buffer
	o.Progress = &progress
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	if _, err := Repeat(ctx, o, 0); err == nil {
		t.Error("Repeat accepted 0 runs")
	}
	s, err := Repeat(ctx, o, 2)
	if err != nil {
		t.Fatalf("Repeat: %v\nprogress:\n%s", err, progress.String())
	}
	for i := 1; i <= 2; i++ {
		if _, err := os.Stat(filepath.Join(o.Out, fmt.Sprintf("run-%d", i), "result.json")); err != nil {
			t.Errorf("run %d: %v", i, err)
		}
	}
	b, err := os.ReadFile(filepath.Join(o.Out, "summary.json"))
	if err != nil {
		t.Fatal(err)
	}
	var got Summary
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatalf("summary.json: %v", err)
	}
	if len(got.Runs) != 2 || len(s.Runs) != 2 {
		t.Fatalf("summary of %d runs (returned %d), want 2", len(got.Runs), len(s.Runs))
	}
	var events *FigureRange
	for i := range got.Figures {
		if got.Figures[i].Name == "events accepted" {
			events = &got.Figures[i]
		}
	}
	if events == nil || len(events.Values) != 2 || !(events.Min > 0) {
		t.Errorf("events accepted in the summary: %+v, want two positive values", events)
	}
	if !strings.Contains(progress.String(), "=== run 2 of 2") {
		t.Errorf("progress does not announce the second run:\n%s", progress.String())
	}
}
