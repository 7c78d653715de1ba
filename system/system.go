// Package system wires livetab's parts — embedded broker, topics, collector,
// processors, views and demo traffic — into one runnable process. The
// livetab command parses flags into Options and calls Run; the end-to-end
// tests call Run the same way, on random ports.
package system

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/collector/demo"
	"github.com/livetab/livetab/processors"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/topics"
	"github.com/livetab/livetab/views"
)

// Parts selects what a process runs. `livetab dev` runs all of them; the
// collect, process and serve commands one each, so that each can be scaled
// on its own (processors by adding instances to their consumer groups).
type Parts struct {
	Collector  bool
	Processors bool
	Views      bool
}

// AllParts is every part.
func AllParts() Parts { return Parts{Collector: true, Processors: true, Views: true} }

// Options configure a livetab process.
type Options struct {
	// Addr is the HTTP listen address. Default "127.0.0.1:8080"; ":0" or
	// "127.0.0.1:0" picks a free port (tests).
	Addr string
	// Brokers of a Kafka cluster. Empty starts the embedded broker with
	// its data in DataDir.
	Brokers []string
	// DataDir keeps the embedded broker's topics and the processors'
	// local tables. Default "./.livetab".
	DataDir string
	// BrokerPort is the embedded broker's port on 127.0.0.1; 0 picks one.
	BrokerPort int
	// CompactInterval is how often the embedded broker compacts the
	// tables (see topics.EmbeddedOptions). Default
	// topics.DefaultCompactInterval.
	CompactInterval time.Duration
	// Topics sizes the topics created on start.
	Topics topics.Config
	// BackgroundPace is the Kafka pace of the parts off the live path
	// (topics.Kafka.BackgroundPace). Zero: topics' defaults.
	BackgroundPace topics.Pace
	// Secret signs and verifies access tokens. Required for the
	// collector and views.
	Secret []byte
	// TrustedProxies are the networks whose X-Forwarded-For the
	// collector believes.
	TrustedProxies []netip.Prefix
	// Parts to run. Default: none; use AllParts().
	Parts Parts
	// Demo seeds the "demo" account with links and sends it demo traffic
	// (needs the collector).
	Demo bool
	// DemoRate is demo visitors per second. Default 1.
	DemoRate float64
	// SampleRate is how many items per second an unfiltered live-view
	// client is shown on average. Default 5.
	SampleRate float64
	// AllowedOrigins are extra browser origins (host patterns, as
	// coder/websocket's OriginPatterns) allowed to open the live view;
	// the page's own host is always allowed.
	AllowedOrigins []string
	// Attribution sets the matching windows and the grace period of the
	// processors; zero fields take attribution's defaults.
	Attribution attribution.Config
	// SweepInterval is how often the processors apply the sessions' 60-day
	// retention and delete attribution's idle match keys. Default 1h.
	SweepInterval time.Duration
	// ProduceTimeout bounds how long a collector request waits for Kafka's
	// acknowledgement before it is answered 503. Default
	// collector.DefaultProduceTimeout (5s).
	ProduceTimeout time.Duration
	// ShutdownTimeout bounds the graceful stop. Default 15s: above
	// ProduceTimeout plus the links' read-your-writes wait, so requests in
	// flight are answered.
	ShutdownTimeout time.Duration
	// Logger for every part. Default: discard.
	Logger *slog.Logger
}

// DemoAccount is the account the demo traffic goes to.
const DemoAccount = "demo"

// DefaultOptions are the options of `livetab dev`.
func DefaultOptions() Options {
	return Options{
		Addr:            "127.0.0.1:8080",
		DataDir:         ".livetab",
		Parts:           AllParts(),
		Demo:            true,
		DemoRate:        1,
		ShutdownTimeout: 15 * time.Second,
	}
}

// Info describes a running process, handed to Run's ready callback.
type Info struct {
	// URL is the HTTP base address, like "http://127.0.0.1:8080".
	URL string
	// Brokers the process is connected to (the embedded broker's addresses
	// when it runs one).
	Brokers []string
	// Embedded is true when the process runs the in-process broker.
	Embedded bool
}

// Run runs the selected parts until ctx is cancelled, then stops them
// gracefully: the HTTP server stops accepting and finishes in-flight
// requests (each answered only after Kafka acknowledged its write), then the
// processors and views stop, then the broker closes. ready, if not nil, is
// called once every part is ready and the HTTP server listens. Run returns
// nil after a clean stop, or the first error of any part.
func Run(ctx context.Context, opts Options, ready func(Info)) error {
	opts = withDefaults(opts)
	log := opts.Logger

	brokers := opts.Brokers
	var embedded *topics.Embedded
	if len(brokers) == 0 {
		var err error
		embedded, err = topics.StartEmbedded(topics.EmbeddedOptions{
			DataDir:         filepath.Join(opts.DataDir, "kafka"),
			Port:            opts.BrokerPort,
			CompactInterval: opts.CompactInterval,
			Logger:          log.With("part", "broker"),
		})
		if err != nil {
			return err
		}
		// Closing flushes the broker's data directory; it must come last.
		defer embedded.Close()
		brokers = embedded.Addrs()
		log.Info("embedded broker started", "addrs", brokers, "data_dir", filepath.Join(opts.DataDir, "kafka"))
	}
	k := topics.Kafka{Brokers: brokers, Topics: opts.Topics, Logger: log, BackgroundPace: opts.BackgroundPace}
	if err := ensureTopics(ctx, k, log); err != nil {
		return err
	}

	// parts run until partsCtx ends, which is after the HTTP server has
	// drained, so in-flight requests can still reach Kafka.
	partsCtx, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopParts()
	g, gctx := errgroup.WithContext(partsCtx)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"status":"ok"}`)
	})
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	var waits []func(context.Context) error
	var readies []func(context.Context) error
	var closers []func() error
	var progress []progressFunc

	if opts.Parts.Collector {
		c, err := collector.New(collector.Options{
			Kafka:          k,
			Secret:         opts.Secret,
			TrustedProxies: opts.TrustedProxies,
			ProduceTimeout: opts.ProduceTimeout,
			Metrics:        reg,
			Logger:         log.With("part", "collector"),
		})
		if err != nil {
			return fmt.Errorf("collector: %w", err)
		}
		closers = append(closers, c.Close)
		c.Register(mux)
		readies = append(readies, c.Ready)
		g.Go(func() error { return wrap("collector", c.Run(gctx)) })
		waits = append(waits, c.WaitReady)
	}
	if opts.Parts.Processors {
		p, err := processors.New(processors.Options{
			Kafka:         k,
			StorageDir:    filepath.Join(opts.DataDir, "tables"),
			Attribution:   opts.Attribution,
			SweepInterval: opts.SweepInterval,
			Logger:        log.With("part", "processors"),
		})
		if err != nil {
			return fmt.Errorf("processors: %w", err)
		}
		g.Go(func() error { return wrap("processors", p.Run(gctx)) })
		waits = append(waits, p.WaitReady)
		progress = append(progress, p.Progress)
	}
	if opts.Parts.Views {
		v, err := views.New(views.Options{
			Kafka:          k,
			Secret:         opts.Secret,
			SampleRate:     opts.SampleRate,
			OriginPatterns: opts.AllowedOrigins,
			StorageDir:     filepath.Join(opts.DataDir, "tables"),
			Logger:         log.With("part", "views"),
		})
		if err != nil {
			return fmt.Errorf("views: %w", err)
		}
		v.Register(mux)
		g.Go(func() error { return wrap("views", v.Run(gctx)) })
		waits = append(waits, v.WaitReady)
		progress = append(progress, v.Progress)
	}
	mux.Handle("GET /readyz", readyHandler(readies))
	defer func() {
		for _, c := range closers {
			if err := c(); err != nil {
				log.Warn("close", "err", err)
			}
		}
	}()

	err := serve(ctx, gctx, opts, mux, waits, progress, func(url string) {
		info := Info{URL: url, Brokers: brokers, Embedded: embedded != nil}
		if opts.Demo && opts.Parts.Collector {
			g.Go(func() error { return runDemo(gctx, info.URL, opts) })
		}
		if ready != nil {
			ready(info)
		}
	})
	stopParts()
	if werr := g.Wait(); err == nil {
		err = werr
	}
	if err != nil {
		log.Error("livetab stopped", "err", err)
	} else {
		log.Info("livetab stopped")
	}
	return err
}

// serve waits for the parts, listens, and serves until ctx ends or a part
// fails, then drains the HTTP server.
func serve(ctx, partsCtx context.Context, opts Options, mux *http.ServeMux, waits []func(context.Context) error, progress []progressFunc, ready func(url string)) error {
	// Waiting ends when a part is ready, when the caller stops, or when a
	// part fails (g.Wait then returns that part's error).
	waitCtx, cancel := context.WithCancel(partsCtx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	progressCtx, cancelProgress := context.WithCancel(waitCtx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		reportProgress(progressCtx, opts.Logger, progress, progressInterval)
	}()
	stopProgress := func() {
		cancelProgress()
		<-progressDone
	}
	defer stopProgress()
	for _, wait := range waits {
		if err := wait(waitCtx); err != nil {
			if waitCtx.Err() != nil {
				return nil
			}
			return err
		}
	}
	stopProgress()
	ln, err := net.Listen("tcp", opts.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", opts.Addr, err)
	}
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	ready("http://" + ln.Addr().String())

	select {
	case <-ctx.Done():
	case <-partsCtx.Done():
	case err := <-served:
		return fmt.Errorf("http server: %w", err)
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), opts.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	return nil
}

// readyHandler answers 200 when every check passes and 503 naming the
// failures otherwise. Parts without a check are ready once the process
// serves: it only listens after every part's WaitReady.
func readyHandler(checks []func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 3*time.Second)
		defer cancel()
		var errs []string
		for _, check := range checks {
			if err := check(ctx); err != nil {
				errs = append(errs, err.Error())
			}
		}
		w.Header().Set("Content-Type", "application/json")
		if len(errs) > 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": "not ready: " + strings.Join(errs, "; ")})
			return
		}
		io.WriteString(w, `{"status":"ready"}`)
	})
}

// ensureTopics creates and checks the topics, retrying while the cluster is
// unreachable (a deployment may start before its brokers), but not when a
// topic is misconfigured.
func ensureTopics(ctx context.Context, k topics.Kafka, log *slog.Logger) error {
	const maxWait = time.Minute
	deadline := time.Now().Add(maxWait)
	for attempt := 1; ; attempt++ {
		err := topics.EnsureAll(ctx, k)
		if err == nil || errors.Is(err, topics.ErrMismatch) || ctx.Err() != nil || time.Now().After(deadline) {
			return err
		}
		log.Warn("kafka not reachable yet, retrying", "brokers", k.Brokers, "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}

func runDemo(ctx context.Context, url string, opts Options) error {
	log := opts.Logger.With("part", "demo")
	token, err := codecs.SignToken(opts.Secret, codecs.Claims{Account: DemoAccount, Admin: true, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	if err := demo.Seed(ctx, client, url, DemoAccount, token); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("demo: seed links: %w", err)
	}
	err = demo.Run(ctx, client, url, DemoAccount, demo.Options{Rate: opts.DemoRate, Logger: log})
	if ctx.Err() != nil {
		return nil
	}
	return wrap("demo", err)
}

func wrap(part string, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return nil
	}
	return fmt.Errorf("%s: %w", part, err)
}

func withDefaults(o Options) Options {
	d := DefaultOptions()
	if o.Addr == "" {
		o.Addr = d.Addr
	}
	if o.DataDir == "" {
		o.DataDir = d.DataDir
	}
	if o.DemoRate <= 0 {
		o.DemoRate = d.DemoRate
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = max(d.ShutdownTimeout, o.ProduceTimeout+10*time.Second)
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	o.Brokers = cleanBrokers(o.Brokers)
	return o
}

// SplitList splits a comma-separated flag value (brokers, origins),
// dropping blanks.
func SplitList(s string) []string { return cleanBrokers(strings.Split(s, ",")) }

func cleanBrokers(in []string) []string {
	var out []string
	for _, b := range in {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}
