package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Summary is what Repeat found over its runs: each main figure per run
// with its median and range, and how many runs met each target. On a
// shared virtual machine one run can be seconds of a neighbour's load;
// the median of several, with the runs the host slowed marked, is the
// figure to quote.
type Summary struct {
	Scenario string `json:"scenario"`
	// Runs are the runs' output directories, in order.
	Runs []string `json:"runs"`
	// Stolen marks the runs that lost stealWarnPercent or more of the
	// machine to other guests, by index into Runs.
	Stolen  []int         `json:"stolen_runs,omitempty"`
	Figures []FigureRange `json:"figures"`
	Targets []TargetTally `json:"targets,omitempty"`
}

// FigureRange is one figure of every run.
type FigureRange struct {
	Name   string    `json:"name"`
	Unit   string    `json:"unit"`
	Values []float64 `json:"values"`
	Median float64   `json:"median"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
}

// TargetTally is how many runs met a target.
type TargetTally struct {
	Target string `json:"target"`
	Met    int    `json:"met"`
	Runs   int    `json:"runs"`
}

// figure reads one figure off a result; ok is false when the run has
// none (another scenario's figure, a stage not measured).
type figure struct {
	name, unit string
	get        func(*Result) (v float64, ok bool)
}

func latencyFigure(name string, l func(*Result) *Latency, p func(Latency) float64) figure {
	return figure{name, "ms", func(r *Result) (float64, bool) {
		if lat := l(r); lat != nil && lat.Count > 0 {
			return p(*lat), true
		}
		return 0, false
	}}
}

func positive(v float64) (float64, bool) { return v, v > 0 }

var summaryFigures = []figure{
	{"events accepted", "/s", func(r *Result) (float64, bool) { return positive(r.Ingest.AchievedEventsPerS) }},
	{"hits accepted", "/s", func(r *Result) (float64, bool) { return positive(r.Ingest.AchievedHitsPerS) }},
	latencyFigure("end to end p50", func(r *Result) *Latency { return &r.Latency.EndToEnd }, func(l Latency) float64 { return l.P50 }),
	latencyFigure("end to end p99", func(r *Result) *Latency { return &r.Latency.EndToEnd }, func(l Latency) float64 { return l.P99 }),
	latencyFigure("end to end p99.9", func(r *Result) *Latency { return &r.Latency.EndToEnd }, func(l Latency) float64 { return l.P999 }),
	latencyFigure("end to end max", func(r *Result) *Latency { return &r.Latency.EndToEnd }, func(l Latency) float64 { return l.Max }),
	latencyFigure("processor stage p99", func(r *Result) *Latency { return r.Latency.Processor }, func(l Latency) float64 { return l.P99 }),
	latencyFigure("views stage p99", func(r *Result) *Latency { return r.Latency.Views }, func(l Latency) float64 { return l.P99 }),
	{"deliveries", "/s", func(r *Result) (float64, bool) { return positive(r.Delivery.ItemsPerS) }},
	{"items per hot subscriber", "/s", func(r *Result) (float64, bool) { return positive(r.Delivery.HotItemsPerSubS) }},
	{"memory per subscriber, loaded", "KB", func(r *Result) (float64, bool) {
		if r.Memory == nil {
			return 0, false
		}
		return r.Memory.PerSubLoaded / 1024, true
	}},
	{"restart: page served", "s", func(r *Result) (float64, bool) {
		if r.Restart == nil {
			return 0, false
		}
		return r.Restart.PageS, true
	}},
	{"restart: items filled", "", func(r *Result) (float64, bool) {
		if r.Restart == nil {
			return 0, false
		}
		return float64(r.Restart.FillItems), true
	}},
	{"system CPU", "% of a core", func(r *Result) (float64, bool) { return positive(r.SUT.CPUPercent) }},
	{"system CPU per message", "µs", func(r *Result) (float64, bool) { return positive(r.SUT.CPUPerMessageUs) }},
	{"system peak RSS", "MB", func(r *Result) (float64, bool) { return positive(float64(r.SUT.PeakRSSBytes) / 1e6) }},
	{"generator CPU", "% of a core", func(r *Result) (float64, bool) { return positive(r.Generator.CPUPercent) }},
	{"CPU steal", "%", func(r *Result) (float64, bool) {
		return r.Machine.StealPercent, r.Machine.StealPercent >= 0
	}},
}

// Repeat runs the scenario of o n times, one after the other, the i-th
// into <o.Out>/run-<i>, and then writes the Summary to o.Progress and to
// <o.Out>/summary.json. When ctx ends or a run fails, it summarises the
// runs that completed and returns the error.
func Repeat(ctx context.Context, o Options, n int) (*Summary, error) {
	if n < 1 {
		return nil, fmt.Errorf("bench: repeat %d times: need at least 1", n)
	}
	out := o.Out
	if out == "" {
		return nil, errors.New("bench: no output directory")
	}
	progress := o.Progress
	if progress == nil {
		progress = io.Discard
	}
	var (
		dirs    []string
		results []*Result
		runErr  error
	)
	for i := 1; i <= n && ctx.Err() == nil; i++ {
		oi := o
		oi.Out = filepath.Join(out, fmt.Sprintf("run-%d", i))
		fmt.Fprintf(progress, "\n=== run %d of %d (%s)\n", i, n, oi.Out)
		res, err := Run(ctx, oi)
		if err != nil {
			runErr = fmt.Errorf("bench: run %d of %d: %w", i, n, err)
			break
		}
		dirs = append(dirs, oi.Out)
		results = append(results, res)
		if res.Interrupted {
			break
		}
	}
	if len(results) == 0 {
		return nil, errors.Join(runErr, ctx.Err())
	}
	s := summarizeRuns(o.Scenario, dirs, results)
	s.print(progress)
	b, err := json.MarshalIndent(s, "", "  ")
	if err == nil {
		err = os.WriteFile(filepath.Join(out, "summary.json"), append(b, '\n'), 0o644)
	}
	if err != nil {
		err = fmt.Errorf("bench: write summary: %w", err)
	} else {
		fmt.Fprintf(progress, "wrote %s\n", filepath.Join(out, "summary.json"))
	}
	return s, errors.Join(runErr, err)
}

func summarizeRuns(scenario string, dirs []string, results []*Result) *Summary {
	s := &Summary{Scenario: scenario, Runs: dirs}
	for i, r := range results {
		if r.Machine.StealPercent >= stealWarnPercent {
			s.Stolen = append(s.Stolen, i)
		}
	}
	for _, f := range summaryFigures {
		var vals []float64
		for _, r := range results {
			v, ok := f.get(r)
			if !ok {
				vals = nil
				break
			}
			vals = append(vals, v)
		}
		if vals == nil {
			continue
		}
		sorted := slices.Sorted(slices.Values(vals))
		s.Figures = append(s.Figures, FigureRange{Name: f.name, Unit: f.unit, Values: vals,
			Median: medianOf(sorted), Min: sorted[0], Max: sorted[len(sorted)-1]})
	}
	// Runs of one scenario check the same targets, in the same order.
	index := map[string]int{}
	for _, r := range results {
		for _, c := range r.Targets {
			i, seen := index[c.Target]
			if !seen {
				i = len(s.Targets)
				index[c.Target] = i
				s.Targets = append(s.Targets, TargetTally{Target: c.Target})
			}
			s.Targets[i].Runs++
			if c.Met {
				s.Targets[i].Met++
			}
		}
	}
	return s
}

// medianOf is the median of sorted values, the mean of the middle two for
// an even count.
func medianOf(sorted []float64) float64 {
	n := len(sorted)
	if n%2 == 1 {
		return sorted[n/2]
	}
	return (sorted[n/2-1] + sorted[n/2]) / 2
}

func (s *Summary) print(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	p("")
	p("livetab bench: scenario %s, %d runs", s.Scenario, len(s.Runs))
	head := fmt.Sprintf("  %-30s", "")
	for i := range s.Runs {
		mark := ""
		if slices.Contains(s.Stolen, i) {
			mark = "*"
		}
		head += fmt.Sprintf(" %10s", fmt.Sprintf("run %d%s", i+1, mark))
	}
	p("%s %10s  %s", head, "median", "range")
	for _, f := range s.Figures {
		line := fmt.Sprintf("  %-30s", strings.TrimSpace(f.Name+" ("+f.Unit+")"))
		if f.Unit == "" {
			line = fmt.Sprintf("  %-30s", f.Name)
		}
		for _, v := range f.Values {
			line += fmt.Sprintf(" %10s", num(v))
		}
		p("%s %10s  %s–%s", line, num(f.Median), num(f.Min), num(f.Max))
	}
	if len(s.Stolen) > 0 {
		p("  * the host took %d%% or more of the CPU in this run (steal): it measured a slower machine", stealWarnPercent)
	}
	for _, t := range s.Targets {
		p("target met in %d of %d runs: %s", t.Met, t.Runs, t.Target)
	}
}

// num prints a figure with the precision its size needs.
func num(v float64) string {
	switch a := max(v, -v); {
	case a >= 1000:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}
