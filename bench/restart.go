package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/coder/websocket"

	"github.com/livetab/livetab/codecs"
)

// runRestart is the restart scenario: fill the system with o.Fill items
// as fast as it takes them, wait for the processors to catch up, stop it
// cleanly, start it again on the same data and time how long until it
// serves the page and a live snapshot again.
func runRestart(ctx context.Context, o *Options) (*Result, error) {
	res := &Result{Scenario: o.Scenario, StartedAt: time.Now(), Machine: machine(), Options: settingsOf(o), PresetChanged: presetChanges(o)}
	rs := &Restart{}
	res.Restart = rs
	pw := newProgressWriter(o.Progress)
	begin := time.Now()

	dataDir := o.DataDir
	if dataDir == "" {
		d, err := os.MkdirTemp("", "livetab-bench-restart-")
		if err != nil {
			return nil, fmt.Errorf("bench: data dir: %w", err)
		}
		defer os.RemoveAll(d)
		dataDir = d
	}
	spec := childSpec{
		command:         o.Command,
		dataDir:         dataDir,
		partitions:      o.Partitions,
		compactInterval: o.CompactInterval,
		secret:          newSecret(),
		logPath:         filepath.Join(o.Out, "sut.log"),
		timeout:         o.RestartTimeout,
		progress: func(elapsed time.Duration, c *child) {
			pw.statusf("starting: %.0fs; %s", elapsed.Seconds(), c.lastLog())
		},
	}
	c, _, err := startChild(ctx, spec)
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			c.stop(context.Background())
		}
	}()
	inf := c.info()
	pw.linef("system under test: %s, data in %s", inf.URL, dataDir)

	accounts := accountNames(o.Accounts)
	rec := newRecorder()
	ld := newLoad(o, inf.URL, accounts, rec)
	if err := ld.setup(ctx, spec.secret); err != nil {
		return nil, err
	}
	lag, err := newLagSampler(inf.Brokers)
	if err != nil {
		return nil, err
	}
	lagClosed := false
	defer func() {
		if !lagClosed {
			lag.close()
		}
	}()

	var series []Point
	// Rates are per second of the time that really passed since the
	// previous point: a lag sample can block for seconds while the
	// broker compacts, and a fixed second would then inflate them.
	lastPoint := time.Now()
	point := func(phase string, prev *counters, prevSUT *usage, prevGen *usage, t target) Point {
		now := time.Now()
		dt := now.Sub(lastPoint).Seconds()
		lastPoint = now
		cur := ld.st.snapshot()
		gen := selfUsage()
		pt := Point{T: time.Since(begin).Seconds(), Phase: phase, Lag: lag.last.Load(),
			Hits: float64(cur.HitsOK-prev.HitsOK) / dt, Events: float64(cur.EventsOK-prev.EventsOK) / dt,
			OfferedHits: float64(cur.HitsOffered-prev.HitsOffered) / dt, OfferedEvents: float64(cur.EventsOffered-prev.EventsOffered) / dt,
			Errors: float64(cur.Errors-prev.Errors) / dt, GenCPU: 100 * (gen.CPU - prevGen.CPU).Seconds() / dt}
		if u, ok := t.usage(); ok {
			pt.SUTCPU = 100 * (u.CPU - prevSUT.CPU).Seconds() / dt
			pt.SUTRSSMB = float64(u.RSS) / 1e6
			*prevSUT = u
		}
		*prev, *prevGen = cur, gen
		return pt
	}

	// Fill, as fast as the system takes it.
	fillBegin := time.Now()
	loadCtx, stopLoad := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { ld.run(loadCtx) })
	prev, prevGen := ld.st.snapshot(), selfUsage()
	prevSUT, _ := c.usage()
	lastPoint = time.Now()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	interrupted := false
	for !interrupted {
		select {
		case <-ctx.Done():
			interrupted = true
			continue
		case <-tick.C:
		}
		lag.sample()
		pt := point("fill", &prev, &prevSUT, &prevGen, c)
		series = append(series, pt)
		filled := prev.HitsOK + prev.EventsOK
		pw.statusf("filling: %s/%s items, %.0f/s, errors %.0f/s, lag %s, sut %.0f%% %.0fMB, gen %.0f%%",
			human(filled), human(o.Fill), pt.Hits+pt.Events, pt.Errors, human(pt.Lag), pt.SUTCPU, pt.SUTRSSMB, pt.GenCPU)
		if filled >= o.Fill {
			break
		}
		// The embedded broker keeps every record in memory: stop before
		// the system takes the machine's memory from everyone else.
		if pt.SUTRSSMB*1e6 > float64(o.MaxSUTRSS) {
			res.Notes = append(res.Notes, fmt.Sprintf("filling stopped at %d items: the system's RSS reached %.0f MB (limit %d MB)", filled, pt.SUTRSSMB, o.MaxSUTRSS>>20))
			pw.linef("stopping the fill: the system's RSS reached %.0f MB", pt.SUTRSSMB)
			break
		}
		// The system writes far more than the items (every table update is
		// a record until the broker compacts, hourly): stop before the
		// disk fills up for everyone else.
		if free, err := freeBytes(dataDir); err == nil && free < minFreeBytes {
			res.Notes = append(res.Notes, fmt.Sprintf("filling stopped at %d items: only %.1f GB left on the data directory's disk", filled, float64(free)/1e9))
			pw.linef("stopping the fill: only %.1f GB free on the disk of %s", float64(free)/1e9, dataDir)
			break
		}
	}
	stopLoad()
	wg.Wait()
	if interrupted {
		return nil, fmt.Errorf("bench: restart scenario interrupted while filling: %w", ctx.Err())
	}
	fin := ld.st.snapshot()
	rs.FillItems = fin.HitsOK + fin.EventsOK
	rs.FillS = time.Since(fillBegin).Seconds()
	rs.FillPerS = float64(rs.FillItems) / rs.FillS
	pw.linef("filled %d items in %.1fs (%.0f/s); HTTP errors %v", rs.FillItems, rs.FillS, rs.FillPerS, ld.st.errorsByStatus())

	// Let the processors catch up: goka commits about every second, and the
	// processors' clock ticks keep a trickle of input.
	catchBegin := time.Now()
	calm := 0
	caughtUp := true
	for calm < 2 {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-tick.C:
		}
		l, err := lag.sample()
		pt := point("catch-up", &prev, &prevSUT, &prevGen, c)
		series = append(series, pt)
		pw.statusf("processors catching up: %.0fs, lag %s (%v)", time.Since(catchBegin).Seconds(), human(l), err)
		if err == nil && l <= int64(4*o.Partitions) {
			calm++
		} else {
			calm = 0
		}
		if time.Since(catchBegin) > catchUpTimeout {
			// Restart anyway: recovering with a backlog is a case too.
			res.Notes = append(res.Notes, fmt.Sprintf("the processors had not caught up after %s (lag %d); stopped with that backlog", catchUpTimeout, l))
			rs.BacklogAtStop = l
			caughtUp = false
			break
		}
	}
	rs.CatchUpS = time.Since(catchBegin).Seconds()
	if m, err := lag.topicMessages(); err == nil {
		rs.TopicMessages = m
		for _, n := range m {
			rs.TotalMessages += n
		}
	} else {
		res.Notes = append(res.Notes, "counting messages on the topics: "+err.Error())
	}
	lag.close()
	lagClosed = true
	if caughtUp {
		pw.linef("processors caught up in %.1fs; %d messages on the topics", rs.CatchUpS, rs.TotalMessages)
	} else {
		pw.linef("processors not caught up after %.1fs (lag %d); stopping anyway; %d messages on the topics", rs.CatchUpS, rs.BacklogAtStop, rs.TotalMessages)
	}

	// Clean stop, as Ctrl-C on `livetab dev`.
	d, err := c.stop(ctx)
	stopped = true
	if err != nil {
		return nil, err
	}
	rs.StopS = d.Seconds()
	rs.DataDirBytes = dirSize(dataDir)
	pw.linef("stopped cleanly in %.2fs; data dir %.0f MB", rs.StopS, float64(rs.DataDirBytes)/1e6)

	// Restart, showing the recovery as it goes.
	restartBegin := time.Now()
	var lastCPU time.Duration
	spec.progress = func(elapsed time.Duration, c *child) {
		u, _ := c.usage()
		cpu := 100 * (u.CPU - lastCPU).Seconds()
		lastCPU = u.CPU
		series = append(series, Point{T: time.Since(begin).Seconds(), Phase: "recovery", SUTCPU: cpu, SUTRSSMB: float64(u.RSS) / 1e6, Lag: -1})
		pw.statusf("recovering: %.0fs, sut %.0f%% %.0fMB; %s", elapsed.Seconds(), cpu, float64(u.RSS)/1e6, c.lastLog())
	}
	c2, ready, err := startChild(ctx, spec)
	if err != nil {
		return nil, err
	}
	defer c2.stop(context.Background())
	rs.ReadyS = ready.Seconds()
	tok, err := codecs.SignToken(spec.secret, codecs.Claims{Account: accounts[0], Expires: time.Now().Add(time.Hour)})
	if err != nil {
		return nil, fmt.Errorf("bench: sign token: %w", err)
	}
	q := url.Values{"account": {accounts[0]}, "token": {tok}}.Encode()
	if err := waitPage(ctx, c2.info().URL+"/?"+q, o.RestartTimeout); err != nil {
		return nil, err
	}
	rs.PageS = time.Since(restartBegin).Seconds()
	n, err := firstSnapshot(ctx, c2.info().URL, q)
	if err != nil {
		return nil, err
	}
	rs.SnapshotS, rs.SnapshotItems = time.Since(restartBegin).Seconds(), n
	if u, ok := c2.usage(); ok {
		rs.RecoveryCPUS = u.CPU.Seconds()
		rs.RecoveryPeakMB = float64(u.PeakRSS) / 1e6
		res.SUT.PeakRSSBytes, res.SUT.CPUSeconds = u.PeakRSS, u.CPU.Seconds()
		if rs.SnapshotS > 0 {
			res.SUT.CPUPercent = 100 * res.SUT.CPUSeconds / rs.SnapshotS
		}
	}
	res.SUT.Mode, res.SUT.URL, res.SUT.PID, res.SUT.Separated = ModeChild, c2.info().URL, c2.info().PID, true
	res.SUT.How = "child process: /proc/<pid>/stat and status, from the restart to the first snapshot"
	res.SUT.StopS = rs.StopS
	g := selfUsage()
	// The generator's figures are its whole run's: the fill included.
	res.Generator = Resources{CPUSeconds: g.CPU.Seconds(), PeakRSSBytes: g.PeakRSS, RSSEndBytes: g.RSS}
	if d := time.Since(begin).Seconds(); d > 0 {
		res.Generator.CPUPercent = 100 * res.Generator.CPUSeconds / d
	}
	res.Ingest.HTTPErrors = ld.st.errorsByStatus()
	res.Series = series
	res.Targets = []Check{restartCheck(res)}
	res.Machine.LoadAfter = loadavg()

	path, err := res.write(o.Out)
	if err != nil {
		return nil, err
	}
	chart := filepath.Join(o.Out, "chart.png")
	if err := writeChart(chart, res); err != nil {
		res.Notes = append(res.Notes, "chart: "+err.Error())
	}
	pw.done()
	res.summary(o.Progress)
	fmt.Fprintf(o.Progress, "wrote %s and %s\n", path, chart)
	return res, nil
}

// catchUpTimeout bounds the wait for the processors after the fill.
const catchUpTimeout = 5 * time.Minute

// minFreeBytes is the free disk space the restart scenario's fill leaves.
const minFreeBytes = 10 << 30

// freeBytes is the space available to unprivileged users on dir's disk.
func freeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// waitPage asks for the page until it answers 200.
func waitPage(ctx context.Context, u string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: 10 * time.Second}
	var last string
	for time.Now().Before(deadline) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: page not served within %s: %s", timeout, last)
}

// firstSnapshot opens a live stream and returns how many items its first
// frame holds.
func firstSnapshot(ctx context.Context, base, query string) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(base, "http")+"/v1/live?"+query+"&"+AllKinds, nil)
	if err != nil {
		return 0, fmt.Errorf("bench: live stream after restart: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(64 << 20)
	_, b, err := conn.Read(ctx)
	if err != nil {
		return 0, fmt.Errorf("bench: live stream after restart: %w", err)
	}
	var f listFrame
	if err := json.Unmarshal(b, &f); err != nil {
		return 0, fmt.Errorf("bench: live stream after restart: %w", err)
	}
	conn.Close(websocket.StatusNormalClosure, "")
	return len(f.Items), nil
}

func dirSize(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
