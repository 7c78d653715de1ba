package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Run runs the benchmark o describes and returns its result, also written
// to o.Out (result.json, chart.png). A cancelled ctx ends the measured
// load early: the result then says it was interrupted.
func Run(ctx context.Context, o Options) (*Result, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("bench: %w", err)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.SUTLogger == nil {
		o.SUTLogger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = io.Discard
	}
	if err := os.MkdirAll(o.Out, 0o755); err != nil {
		return nil, fmt.Errorf("bench: output directory: %w", err)
	}
	if o.Scenario == ScenarioRestart {
		return runRestart(ctx, &o)
	}
	if o.Feed == FeedView && o.Mode == ModeRemote && len(o.Brokers) == 0 {
		return nil, errors.New("bench: the view feed needs the brokers")
	}
	r := &runner{o: &o, res: &Result{Scenario: o.Scenario, StartedAt: time.Now(), Machine: machine(), Options: settingsOf(&o)}}
	r.res.PresetChanged = presetChanges(&o)
	r.progress = newProgressWriter(o.Progress)
	defer r.cleanup()
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	return r.res, nil
}

// runner holds one run's parts.
type runner struct {
	o        *Options
	res      *Result
	progress *progressWriter
	begin    time.Time

	sut      target
	dataDir  string
	tempDir  bool
	secret   []byte
	accounts []string
	rec      *recorder
	load     *load
	subs     *subscribers
	tap      *tap
	join     *joiner
	lag      *lagSampler

	phase      atomic.Pointer[string]
	phaseBegin atomic.Int64 // Unix nanoseconds

	// samples: the sampler's per-second points and the values it keeps
	// for the window.
	mu        sync.Mutex
	series    []Point
	lagSeries []lagPoint
	rssWindow []int64

	stops []func()
}

type lagPoint struct {
	t   float64
	lag int64
}

func (r *runner) setPhase(p string) {
	r.phase.Store(&p)
	r.phaseBegin.Store(time.Now().UnixNano())
}

func (r *runner) cleanup() {
	for i := len(r.stops) - 1; i >= 0; i-- {
		r.stops[i]()
	}
	r.stops = nil
}

func (r *runner) onCleanup(f func()) { r.stops = append(r.stops, f) }

func (r *runner) noteErr(err error) {
	r.mu.Lock()
	r.res.Notes = append(r.res.Notes, err.Error())
	r.mu.Unlock()
}

func (r *runner) run(ctx context.Context) error {
	o := r.o
	r.begin = time.Now()
	r.setPhase("start")
	if err := r.startSUT(ctx); err != nil {
		return err
	}
	inf := r.sut.info()
	r.accounts = accountNames(o.Accounts)
	r.rec = newRecorder()
	r.load = newLoad(o, inf.URL, r.accounts, r.rec)
	r.progress.linef("system under test: %s (%s)", inf.URL, o.Mode)

	if o.Feed == FeedCollector {
		r.setPhase("setup")
		begin := time.Now()
		if err := r.load.setup(ctx, r.secret); err != nil {
			return err
		}
		r.progress.linef("registered a link for each of %d accounts in %.1fs", len(r.accounts), time.Since(begin).Seconds())
	}

	if len(inf.Brokers) > 0 {
		var err error
		if r.lag, err = newLagSampler(inf.Brokers); err != nil {
			return err
		}
		r.onCleanup(r.lag.close)
		r.join = newJoiner(r.rec)
		if r.tap, err = startTap(inf.Brokers, r.rec, r.join); err != nil {
			return err
		}
		r.onCleanup(r.tap.close)
	}
	subs, err := newSubscribers(o, inf.URL, r.accounts, r.secret, r.rec, r.join, r.tap != nil, o.Logger)
	if err != nil {
		return err
	}
	r.subs = subs

	// Background parts stop when the run ends.
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	var bgWG sync.WaitGroup
	r.onCleanup(func() { stopBG(); bgWG.Wait() })
	if r.lag != nil {
		bgWG.Go(func() { r.lag.run(bg, time.Second) })
	}
	bgWG.Go(func() { r.sample(bg) })

	loadCtx, stopLoad := context.WithCancel(context.WithoutCancel(ctx))
	var loadWG sync.WaitGroup
	startLoad := func() {
		loadWG.Go(func() {
			if o.Feed == FeedView {
				if err := r.load.feedView(loadCtx, inf.Brokers); err != nil {
					r.noteErr(err)
				}
				return
			}
			r.load.run(loadCtx)
		})
	}
	defer func() { stopLoad(); loadWG.Wait() }()

	subsCtx, stopSubs := context.WithCancel(context.WithoutCancel(ctx))
	r.onCleanup(func() { r.subs.stopping.Store(true); stopSubs(); r.subs.wait() })

	mem := &Memory{Subscribers: int64(len(r.subs.list))}
	loadStarted := false
	if o.Baseline > 0 {
		r.setPhase("baseline")
		startLoad()
		loadStarted = true
		if !r.sleep(ctx, o.Baseline) {
			return r.finishInterrupted(ctx)
		}
	}
	mem.BeforeBytes = r.sutRSS()

	if len(r.subs.list) > 0 {
		r.setPhase("connect")
		begin := time.Now()
		if err := r.subs.start(subsCtx, 200, 3*time.Minute); err != nil {
			return err
		}
		r.res.Delivery.ConnectS = time.Since(begin).Seconds()
		r.progress.linef("%d subscribers connected in %.1fs", len(r.subs.list), r.res.Delivery.ConnectS)
	}
	mem.ConnectedBytes = r.sutRSS()
	if !loadStarted {
		startLoad()
	}
	if o.Warmup > 0 {
		r.setPhase("warmup")
		if !r.sleep(ctx, o.Warmup) {
			return r.finishInterrupted(ctx)
		}
	}

	// The measured window.
	r.setPhase("measure")
	r.rec.reset()
	r.mu.Lock()
	r.rssWindow = nil
	r.mu.Unlock()
	w0 := r.window()
	profile := r.startProfile(bg)
	stopGenProfile := func() {}
	if o.GenCPUProfile != "" {
		stop, err := startCPUProfile(o.GenCPUProfile)
		if err != nil {
			return err
		}
		stopGenProfile = stop
	}
	interrupted := !r.sleep(ctx, o.Duration)
	w1 := r.window()
	stopGenProfile()
	stopLoad()
	loadWG.Wait()
	profile()
	r.res.Interrupted = interrupted

	// Drain: every accepted item should reach every subscriber.
	r.setPhase("drain")
	drainBegin := time.Now()
	undelivered, checkable := r.drain(ctx)
	r.res.Delivery.DrainS = time.Since(drainBegin).Seconds()
	if checkable && o.Baseline == 0 {
		r.res.Delivery.Undelivered = &undelivered
	}
	if r.lag != nil {
		if l, err := r.lag.sample(); err == nil {
			r.res.Backlog.AfterDrain = l
		}
	}
	w2 := r.window()

	r.setPhase("stop")
	r.subs.stopping.Store(true)
	stopSubs()
	r.subs.wait()
	stopBG()
	bgWG.Wait()
	r.fill(w0, w1, w2, mem)
	if d, err := r.sut.stop(context.WithoutCancel(ctx)); err != nil {
		r.res.Notes = append(r.res.Notes, "stopping the system under test: "+err.Error())
	} else {
		r.res.SUT.StopS = d.Seconds()
	}
	r.res.Machine.LoadAfter = loadavg()
	return r.write()
}

// finishInterrupted ends a run cancelled before its measured window.
func (r *runner) finishInterrupted(ctx context.Context) error {
	return fmt.Errorf("bench: interrupted before the measured window: %w", context.Cause(ctx))
}

// sleep waits d; false when ctx ended first.
func (r *runner) sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (r *runner) startSUT(ctx context.Context) error {
	o := r.o
	if o.Mode == ModeRemote {
		r.secret = o.Secret
		rm := &remote{inf: sutInfo{URL: strings.TrimRight(o.URL, "/"), Brokers: o.Brokers, PID: o.PID}}
		if o.PID > 0 {
			p := newProcReader(o.PID)
			rm.proc = &p
		}
		r.sut = rm
		return nil
	}
	r.secret = newSecret()
	r.dataDir = o.DataDir
	if r.dataDir == "" {
		d, err := os.MkdirTemp("", "livetab-bench-")
		if err != nil {
			return fmt.Errorf("bench: data dir: %w", err)
		}
		r.dataDir, r.tempDir = d, true
		r.onCleanup(func() { os.RemoveAll(d) })
	}
	begin := time.Now()
	if o.Mode == ModeInProcess {
		p, err := startInProcess(ctx, r.dataDir, o.Partitions, r.secret, o.SUTLogger)
		if err != nil {
			return err
		}
		r.sut = p
		r.onCleanup(func() { p.stop(context.Background()) })
		r.res.SUT.StartS = time.Since(begin).Seconds()
		return nil
	}
	c, d, err := startChild(ctx, childSpec{
		command:         o.Command,
		dataDir:         r.dataDir,
		partitions:      o.Partitions,
		compactInterval: o.CompactInterval,
		secret:          r.secret,
		pprof:           o.Pprof || o.CPUProfile,
		logPath:         filepath.Join(o.Out, "sut.log"),
		timeout:         o.RestartTimeout,
		progress: func(elapsed time.Duration, c *child) {
			r.progress.statusf("starting the system under test: %.0fs; %s", elapsed.Seconds(), c.lastLog())
		},
	})
	if err != nil {
		return err
	}
	r.sut = c
	r.onCleanup(func() { c.stop(context.Background()) })
	r.res.SUT.StartS = d.Seconds()
	if c.inf.Pprof != "" {
		r.progress.linef("system under test serves pprof on http://%s/debug/pprof/", c.inf.Pprof)
	}
	return nil
}

// startProfile fetches a CPU profile of the measured window from the
// child's pprof endpoint into <Out>/sut-cpu.pprof; the returned function
// waits for it.
func (r *runner) startProfile(ctx context.Context) func() {
	addr := r.sut.info().Pprof
	if !r.o.CPUProfile || addr == "" {
		return func() {}
	}
	secs := max(1, int(r.o.Duration.Seconds()))
	done := make(chan struct{})
	go func() {
		defer close(done)
		path := filepath.Join(r.o.Out, "sut-cpu.pprof")
		err := fetch(ctx, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, secs), path)
		if err != nil {
			r.mu.Lock()
			r.res.Notes = append(r.res.Notes, "cpu profile: "+err.Error())
			r.mu.Unlock()
			return
		}
		r.progress.linef("CPU profile of the system under test: %s (go tool pprof -top %s)", path, path)
	}()
	return func() { <-done }
}

func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", url, resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// windowMark is everything counted at one edge of the measured window.
type windowMark struct {
	at        time.Time
	load      counters
	items     int64
	hot       int64
	connected int64
	sut       usage
	sutOK     bool
	gen       usage
	host      hostCPU
	lag       int64
	lagSeen   bool
}

func (r *runner) window() windowMark {
	m := windowMark{at: time.Now(), load: r.load.st.snapshot(), gen: selfUsage(), host: readHostCPU()}
	m.items, m.hot, m.connected = r.subs.st.items.Load(), r.subs.st.hotItems.Load(), r.subs.st.connected.Load()
	m.sut, m.sutOK = r.sut.usage()
	// The sampler's latest value: sampling here would stretch the window
	// by the time the broker takes to answer.
	if r.lag != nil {
		if l := r.lag.last.Load(); l >= 0 {
			m.lag, m.lagSeen = l, true
		}
	}
	return m
}

func (r *runner) sutRSS() int64 {
	u, ok := r.sut.usage()
	if !ok {
		return 0
	}
	return u.RSS
}

// drain waits until every complete subscriber has every accepted hit and
// event, or until nothing arrived for a few seconds when that cannot be
// checked, for at most o.Drain.
func (r *runner) drain(ctx context.Context) (undelivered int64, checkable bool) {
	deadline := time.Now().Add(r.o.Drain)
	lastItems, quietSince := r.subs.st.items.Load(), time.Now()
	for {
		undelivered, checkable = r.subs.undelivered(r.load.accepted)
		if checkable && undelivered == 0 {
			return 0, true
		}
		items := r.subs.st.items.Load()
		if items != lastItems {
			lastItems, quietSince = items, time.Now()
		}
		if !checkable && time.Since(quietSince) > 3*time.Second {
			return 0, false
		}
		if time.Now().After(deadline) || !r.sleep(ctx, 100*time.Millisecond) {
			return undelivered, checkable
		}
	}
}

// fill computes the result from the window's edges (w0 start, w1 end of
// load, w2 end of drain) and the samples.
func (r *runner) fill(w0, w1, w2 windowMark, mem *Memory) {
	o, res := r.o, r.res
	secs := w1.at.Sub(w0.at).Seconds()
	a, b := w0.load, w1.load
	in := &res.Ingest
	in.WindowS = secs
	in.HitsOffered, in.HitsSkipped, in.HitsAccepted = b.HitsOffered-a.HitsOffered, b.HitsSkipped-a.HitsSkipped, b.HitsOK-a.HitsOK
	in.EventsOffered, in.EventsSkipped, in.EventsAccepted = b.EventsOffered-a.EventsOffered, b.EventsSkipped-a.EventsSkipped, b.EventsOK-a.EventsOK
	in.OfferedHitsPerS, in.OfferedEventsPerS = float64(in.HitsOffered)/secs, float64(in.EventsOffered)/secs
	in.AchievedHitsPerS, in.AchievedEventsPerS = float64(in.HitsAccepted)/secs, float64(in.EventsAccepted)/secs
	in.EventsRejected = r.load.st.eventsRejected.Load()
	in.ConvertingInstalls = r.load.st.convertingInstalls.Load()
	if sent := r.load.st.eventsSent.Load(); sent > 0 {
		in.BytesPerEvent = float64(r.load.st.bytesSent.Load()) / float64(sent)
	}
	in.HTTPErrors = r.load.st.errorsByStatus()
	if p := r.load.st.firstErr.Load(); p != nil {
		in.FirstError = *p
	}

	rec := r.rec
	l := &res.Latency
	l.EndToEnd = summarize(rec.total(mE2E))
	l.Hit, l.Event, l.Conversion = summarize(rec.total(mHit)), summarize(rec.total(mEvent)), summarize(rec.total(mConversion))
	if o.HotSubs > 0 {
		h := summarize(rec.total(mHot))
		l.Hot = &h
	}
	l.CollectorAckHit, l.CollectorAckEvents = summarize(rec.total(mAckHit)), summarize(rec.total(mAckEvents))
	l.Schedule = summarize(rec.total(mSchedule))
	if p := summarize(rec.total(mProcessor)); p.Count > 0 {
		l.Processor = &p
	}
	if v := summarize(rec.total(mViews)); v.Count > 0 {
		l.Views = &v
	}
	if t := summarize(rec.total(mTapDelivery)); t.Count > 0 {
		l.TapDelivery = &t
	}
	switch {
	case l.Views != nil && r.tap == nil:
		l.StageSource = "emitted_at in the item frames"
	case l.Views != nil:
		l.StageSource = "the generator's consumer of livetab.view (emitted_us), joined with the frames by account and cursor"
	default:
		l.StageSource = "not measured (the frames carry no emitted_at and no brokers were given for a view-topic tap)"
	}
	if o.Feed == FeedView {
		l.Processor = nil
		l.StageSource += "; view feed: items go straight to the view topic, so end to end is the views stage"
	}

	st := &r.subs.st
	d := &res.Delivery
	d.Subscribers, d.HotSubscribers = len(r.subs.list), o.HotSubs
	d.ConnectedEnd = w2.connected
	d.Items = w1.items - w0.items
	d.ItemsPerS = float64(d.Items) / secs
	if o.HotSubs > 0 {
		d.HotItemsPerSubS = float64(w1.hot-w0.hot) / secs / float64(o.HotSubs)
	}
	d.Updates, d.Catchup = st.updates.Load(), st.catchup.Load()
	d.SlowDisconnects, d.Disconnects, d.DialErrors = st.slow.Load(), st.disconnects.Load(), st.dialErrors.Load()
	d.Gaps, d.ErrorFrames, d.BadFrames = st.gaps.Load(), st.errorFrames.Load(), st.badFrames.Load()
	if v := st.lag.Load(); v >= 0 {
		d.ServerLag = &v
	}
	if v := st.delayUs.Load(); v >= 0 {
		ms := float64(v) / 1000
		d.ServerDelayMs = &ms
	}
	if p := st.firstErr.Load(); p != nil {
		d.FirstError = *p
	}

	// Backlog: lag samples within the window.
	r.mu.Lock()
	var xs, ys []float64
	for _, p := range r.lagSeries {
		if p.t >= w0.at.Sub(r.begin).Seconds() && p.t <= w1.at.Sub(r.begin).Seconds() {
			xs, ys = append(xs, p.t), append(ys, float64(p.lag))
			res.Backlog.Max = max(res.Backlog.Max, p.lag)
		}
	}
	rss := slices.Clone(r.rssWindow)
	res.Series = r.series
	r.mu.Unlock()
	if w0.lagSeen && w1.lagSeen {
		res.Backlog.Measured = true
		res.Backlog.AtStart, res.Backlog.AtEnd = w0.lag, w1.lag
		res.Backlog.Max = max(res.Backlog.Max, w0.lag, w1.lag)
		res.Backlog.GrowthPerS = slope(xs, ys)
	}

	// Resources over the window.
	res.SUT.Mode, res.SUT.URL, res.SUT.PID, res.SUT.Pprof = o.Mode, r.sut.info().URL, r.sut.info().PID, r.sut.info().Pprof
	switch {
	case w0.sutOK && w1.sutOK:
		res.SUT.Separated = true
		res.SUT.How = "its own process: /proc/<pid>/stat utime+stime and /proc/<pid>/status VmRSS, VmHWM; the generator: getrusage(RUSAGE_SELF)"
		res.SUT.CPUSeconds = (w1.sut.CPU - w0.sut.CPU).Seconds()
		res.SUT.CPUPercent = 100 * res.SUT.CPUSeconds / secs
		res.SUT.PeakRSSBytes, res.SUT.RSSEndBytes = w1.sut.PeakRSS, w1.sut.RSS
		if n := in.HitsAccepted + in.EventsAccepted; n > 0 {
			res.SUT.CPUPerMessageUs = 1e6 * res.SUT.CPUSeconds / float64(n)
		}
	case o.Mode == ModeInProcess:
		res.SUT.How = "in the generator's process: the generator's figures include the system's"
	default:
		res.SUT.How = "not measured (no process id of the deployment)"
	}
	res.Machine.StealPercent, res.Machine.StealMaxPercent = stealPercent(w0.host, w1.host), -1
	if res.Machine.StealPercent >= 0 {
		res.Machine.StealMaxPercent = 0
		r.mu.Lock()
		for _, pt := range r.series {
			if pt.Phase == "measure" {
				res.Machine.StealMaxPercent = max(res.Machine.StealMaxPercent, pt.Steal)
			}
		}
		r.mu.Unlock()
	}
	res.Generator.CPUSeconds = (w1.gen.CPU - w0.gen.CPU).Seconds()
	res.Generator.CPUPercent = 100 * res.Generator.CPUSeconds / secs
	res.Generator.PeakRSSBytes, res.Generator.RSSEndBytes = w2.gen.PeakRSS, w2.gen.RSS

	// Memory per subscriber is only told apart from the traffic's when the
	// traffic ran before the subscribers connected (Baseline).
	if len(r.subs.list) > 0 && res.SUT.Separated && o.Baseline > 0 {
		mem.LoadedBytes = median(rss)
		// RSS moves with the garbage collector: the baseline is the median
		// of its last five seconds rather than one reading.
		var base []int64
		for _, p := range res.Series {
			if p.Phase == "baseline" && p.SUTRSSMB > 0 {
				base = append(base, int64(p.SUTRSSMB*1e6))
			}
		}
		if len(base) > 5 {
			base = base[len(base)-5:]
		}
		if len(base) > 0 {
			mem.BeforeBytes = median(base)
		}
		n := float64(len(r.subs.list))
		mem.PerSubConnect = float64(mem.ConnectedBytes-mem.BeforeBytes) / n
		mem.PerSubLoaded = float64(mem.LoadedBytes-mem.BeforeBytes) / n
		res.Memory = mem
	}
	res.Targets = checks(r.o, res)
}

// slope is the least-squares slope of ys over xs (0 with fewer than 2).
func slope(xs, ys []float64) float64 {
	n := float64(len(xs))
	if n < 2 {
		return 0
	}
	var sx, sy, sxx, sxy float64
	for i := range xs {
		sx += xs[i]
		sy += ys[i]
		sxx += xs[i] * xs[i]
		sxy += xs[i] * ys[i]
	}
	den := n*sxx - sx*sx
	if den == 0 {
		return 0
	}
	return (n*sxy - sx*sy) / den
}

func median(v []int64) int64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}

func sortedStrings(s []string) []string {
	slices.Sort(s)
	return s
}

// write saves the result and the chart and prints the summary.
func (r *runner) write() error {
	path, err := r.res.write(r.o.Out)
	if err != nil {
		return err
	}
	chart := filepath.Join(r.o.Out, "chart.png")
	if err := writeChart(chart, r.res); err != nil {
		r.res.Notes = append(r.res.Notes, "chart: "+err.Error())
	}
	r.progress.done()
	r.res.summary(r.o.Progress)
	fmt.Fprintf(r.o.Progress, "wrote %s and %s\n", path, chart)
	return nil
}
