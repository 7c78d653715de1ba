package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
)

// progressWriter prints the live status line: rewritten in place on a
// terminal, every few seconds as plain lines elsewhere (logs, CI).
type progressWriter struct {
	w    io.Writer
	tty  bool
	mu   sync.Mutex
	open bool // a status line is on screen
	last time.Time
}

func newProgressWriter(w io.Writer) *progressWriter {
	p := &progressWriter{w: w}
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

// statusf shows the current status.
func (p *progressWriter) statusf(format string, args ...any) {
	line := fmt.Sprintf(format, args...)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.tty {
		if len(line) > 180 {
			line = line[:180]
		}
		fmt.Fprintf(p.w, "\r\033[K%s", line)
		p.open = true
		return
	}
	if time.Since(p.last) >= 5*time.Second {
		p.last = time.Now()
		fmt.Fprintln(p.w, line)
	}
}

// linef prints a line that stays.
func (p *progressWriter) linef(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
	fmt.Fprintf(p.w, format+"\n", args...)
}

// done clears the status line.
func (p *progressWriter) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.open {
		fmt.Fprint(p.w, "\r\033[K")
		p.open = false
	}
}

// sample records one Point a second and shows it, until ctx ends.
func (r *runner) sample(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	type mark struct {
		at    time.Time
		load  counters
		items int64
		sut   usage
		sutOK bool
		gen   usage
		host  hostCPU
	}
	take := func() mark {
		m := mark{at: time.Now(), load: r.load.st.snapshot(), items: r.subs.st.items.Load(), gen: selfUsage(), host: readHostCPU()}
		m.sut, m.sutOK = r.sut.usage()
		return m
	}
	prev := take()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		cur := take()
		dt := cur.at.Sub(prev.at).Seconds()
		per := func(a, b int64) float64 { return float64(b-a) / dt }
		h := summarize(r.rec.takeInterval())
		pt := Point{
			T:             cur.at.Sub(r.begin).Seconds(),
			Phase:         *r.phase.Load(),
			OfferedHits:   per(prev.load.HitsOffered, cur.load.HitsOffered),
			OfferedEvents: per(prev.load.EventsOffered, cur.load.EventsOffered),
			Hits:          per(prev.load.HitsOK, cur.load.HitsOK),
			Events:        per(prev.load.EventsOK, cur.load.EventsOK),
			Errors:        per(prev.load.Errors, cur.load.Errors),
			Deliveries:    per(prev.items, cur.items),
			Count:         h.Count, P50: h.P50, P90: h.P90, P99: h.P99, Max: h.Max,
			GenCPU: 100 * (cur.gen.CPU - prev.gen.CPU).Seconds() / dt,
			Lag:    -1,
			Subs:   r.subs.st.connected.Load(),
			Steal:  stealPercent(prev.host, cur.host),
		}
		if cur.sutOK && prev.sutOK {
			pt.SUTCPU = 100 * (cur.sut.CPU - prev.sut.CPU).Seconds() / dt
			pt.SUTRSSMB = float64(cur.sut.RSS) / 1e6
		}
		if r.lag != nil {
			pt.Lag = r.lag.last.Load()
		}
		r.mu.Lock()
		r.series = append(r.series, pt)
		if pt.Lag >= 0 {
			r.lagSeries = append(r.lagSeries, lagPoint{t: pt.T, lag: pt.Lag})
		}
		if pt.Phase == "measure" && cur.sutOK {
			r.rssWindow = append(r.rssWindow, cur.sut.RSS)
		}
		r.mu.Unlock()
		prev = cur
		r.progress.statusf("%s", statusLine(r, pt))
	}
}

func statusLine(r *runner, pt Point) string {
	var b strings.Builder
	elapsed := time.Since(time.Unix(0, r.phaseBegin.Load())).Seconds()
	of := ""
	if pt.Phase == "measure" {
		of = fmt.Sprintf("/%s", r.o.Duration.Round(time.Second))
	}
	fmt.Fprintf(&b, "[%s %.0fs%s] hits %.0f/%.0f/s events %.0f/%.0f/s err %.0f/s | subs %d deliv %.0f/s",
		pt.Phase, elapsed, of, pt.Hits, pt.OfferedHits, pt.Events, pt.OfferedEvents, pt.Errors, pt.Subs, pt.Deliveries)
	if pt.Count > 0 {
		fmt.Fprintf(&b, " | e2e p50 %.1f p99 %.1f max %.0f ms", pt.P50, pt.P99, pt.Max)
	}
	if pt.Lag >= 0 {
		fmt.Fprintf(&b, " | lag %s", human(pt.Lag))
	}
	if pt.SUTRSSMB > 0 {
		fmt.Fprintf(&b, " | sut %.0f%% %.0fMB", pt.SUTCPU, pt.SUTRSSMB)
	}
	fmt.Fprintf(&b, " | gen %.0f%%", pt.GenCPU)
	if pt.Steal >= 1 {
		fmt.Fprintf(&b, " | steal %.0f%%", pt.Steal)
	}
	return b.String()
}

func human(n int64) string {
	switch {
	case n >= 1_000_000:
		return fmt.Sprintf("%.1fM", float64(n)/1e6)
	case n >= 10_000:
		return fmt.Sprintf("%.0fk", float64(n)/1e3)
	case n >= 1_000:
		return fmt.Sprintf("%.1fk", float64(n)/1e3)
	}
	return fmt.Sprint(n)
}
