package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/livetab/livetab/bench"
	"github.com/livetab/livetab/system"
)

const benchSynopsis = `Drives the whole system — HTTP collector → Kafka → processors → view topic → WebSocket
subscribers — with realistic traffic and measures it: ingest rates and HTTP errors, end-to-end
and per-stage latency (HDR histograms), deliveries and slow-client disconnects, the processors'
backlog, and the CPU and memory of the system under test apart from the generator's.

By default the system under test is this binary re-executed as a child ('livetab bench sut':
every part on the embedded broker, no demo traffic, as 'livetab dev --demo=false') in a temporary
data directory. --url (and optionally --brokers, --pid) measures a running deployment instead;
its token secret comes from LIVETAB_SECRET.

Scenarios (--scenario) preset every other flag; the defaults shown are the chosen scenario's
('livetab bench --scenario fanout --help' shows fanout's):
  throughput   20,000 events/s + 2,000 hits/s for 60 s, 100 accounts, 1 subscriber each
  freshness    5,000 events/s + 500 hits/s for 60 s: end-to-end latency
  fanout       one hot account (a fifth of 1,000 items/s) watched by 1,000 filtered subscribers
  connections  10,000 subscribers over 1,000 accounts, ~1 item/s each: memory per subscriber
  restart      fill 1,000,000 items, stop cleanly, restart: time until the page is served again
  smoke        a few seconds of light load

Writes result.json, chart.png and the system's log (sut.log) to --out.`

// runBench is `livetab bench`: flag parsing only; the work is in package
// bench.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "sut" {
		return runBenchSUT(ctx, args[1:], stdout, stderr)
	}
	scenario := scanScenario(args)
	o, err := bench.Preset(scenario)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errUsage
	}
	fs := newFlags("bench", benchSynopsis, stderr)
	fs.StringVar(&o.Scenario, "scenario", scenario, "preset: "+strings.Join(bench.Scenarios(), ", "))
	fs.StringVar(&o.Feed, "feed", o.Feed, "where the load goes: collector (the whole system) or view (view items straight to the view topic: the views' fan-out alone)")
	fs.DurationVar(&o.Duration, "duration", o.Duration, "how long the measured load runs")
	fs.DurationVar(&o.Warmup, "warmup", o.Warmup, "load before the measured window, not counted")
	fs.DurationVar(&o.Baseline, "baseline", o.Baseline, "load before the subscribers connect (their memory is measured on top of it)")
	fs.DurationVar(&o.Drain, "drain", o.Drain, "after the load, wait at most this long for every accepted item to reach every subscriber")
	fs.Float64Var(&o.HitRate, "hit-rate", o.HitRate, "hits per second offered (short-link clicks, one request each)")
	fs.Float64Var(&o.EventRate, "event-rate", o.EventRate, "SDK events per second offered (in batches)")
	fs.BoolVar(&o.Max, "max", o.Max, "as fast as it goes: --concurrency requests in flight, hits and events in the rates' ratio")
	fs.IntVar(&o.Concurrency, "concurrency", o.Concurrency, "HTTP requests in flight at most")
	fs.IntVar(&o.Accounts, "accounts", o.Accounts, "accounts receiving traffic (acct-0000 is the hot one)")
	fs.Float64Var(&o.HotShare, "hot-share", o.HotShare, "fraction of all traffic going to the hot account (0: even)")
	fs.IntVar(&o.SubsPerAccount, "subs", o.SubsPerAccount, "WebSocket subscribers per account")
	fs.StringVar(&o.SubFilter, "sub-filter", o.SubFilter, "their subscription filter (query parameters)")
	fs.IntVar(&o.HotSubs, "hot-subs", o.HotSubs, "more subscribers on the hot account")
	fs.StringVar(&o.HotFilter, "hot-filter", o.HotFilter, "their subscription filter (query parameters)")
	fs.IntVar(&o.SessionEvents, "session-events", o.SessionEvents, "events per app session: the install (alone in its request) and in-app events")
	fs.IntVar(&o.Batch, "batch", o.Batch, "in-app events per request (1-100)")
	fs.Float64Var(&o.InstallRatio, "install-ratio", o.InstallRatio, "fraction of hits whose visitor installs (with the click id: a conversion)")
	fs.IntVar(&o.ParamBytes, "param-bytes", o.ParamBytes, "padding parameter in every hit and event (payload size)")
	fs.Int64Var(&o.Fill, "fill", o.Fill, "restart scenario: items to put through before the clean stop")
	maxRSS := fs.Int64("max-sut-rss-mb", o.MaxSUTRSS>>20, "restart scenario: stop filling when the system's RSS passes this (MB)")
	fs.DurationVar(&o.RestartTimeout, "restart-timeout", o.RestartTimeout, "how long to wait for the system under test to start")
	fs.IntVar(&o.Partitions, "partitions", o.Partitions, "partitions of every topic of the system under test")
	fs.DurationVar(&o.CompactInterval, "compact-interval", 0, "compaction interval of the system under test's embedded broker (0: livetab's default)")
	fs.StringVar(&o.DataDir, "data-dir", "", "data directory of the system under test (default: a temporary one, removed)")
	fs.StringVar(&o.Out, "out", o.Out, "directory for result.json, chart.png, sut.log, sut-cpu.pprof")
	fs.BoolVar(&o.CPUProfile, "cpuprofile", false, "write a CPU profile of the system under test over the measured window to <out>/sut-cpu.pprof")
	fs.BoolVar(&o.Pprof, "pprof", false, "make the system under test serve net/http/pprof (address printed)")
	fs.StringVar(&o.GenCPUProfile, "gen-cpuprofile", "", "write a CPU profile of the generator itself over the measured window to this file")
	inProcess := fs.Bool("in-process", false, "run the system in the generator's process (resources then not separable)")
	target := fs.String("url", "", "measure the deployment at this URL instead of starting one")
	brokers := fs.String("brokers", "", "with --url: its Kafka brokers, to measure the backlog and the processor stage")
	fs.IntVar(&o.PID, "pid", 0, "with --url: its process id on this machine, to measure its CPU and memory")
	logLevel := fs.String("log-level", "warn", "the generator's log level")
	repeat := fs.Int("repeat", 1, "run the scenario this many times, each into <out>/run-<i>, and summarise them (median and range of each figure, targets met per run) in <out>/summary.json")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *repeat < 1 {
		return usageErr(fs, "--repeat must be at least 1")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr(fs, "bad --log-level %q: %v", *logLevel, err)
	}
	o.MaxSUTRSS = *maxRSS << 20
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	o.Progress = stderr
	switch {
	case *target != "":
		o.Mode, o.URL, o.Brokers = bench.ModeRemote, *target, system.SplitList(*brokers)
		o.Secret = []byte(os.Getenv(system.SecretEnv))
	case *inProcess:
		o.Mode = bench.ModeInProcess
	default:
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("find this binary to re-execute: %w", err)
		}
		o.Command = []string{exe, "bench", "sut"}
	}
	if *repeat > 1 {
		_, err = bench.Repeat(ctx, o, *repeat)
	} else {
		_, err = bench.Run(ctx, o)
	}
	return err
}

// scanScenario finds --scenario before the flags are defined, since the
// scenario sets their defaults.
func scanScenario(args []string) string {
	for i, a := range args {
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || name != "scenario" {
			continue
		}
		if hasValue {
			return value
		}
		if i+1 < len(args) {
			return args[i+1]
		}
	}
	return bench.ScenarioThroughput
}

// runBenchSUT is `livetab bench sut`, the system under test the bench
// starts as its child.
func runBenchSUT(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o bench.SUTOptions
	fs := newFlags("bench sut", "Runs the system under test for 'livetab bench': every part on the embedded broker, no\ndemo traffic (as 'livetab dev --demo=false'), loopback trusted as a proxy; prints a ready\nline on stdout. Token secret: LIVETAB_SECRET.", stderr)
	fs.StringVar(&o.Addr, "addr", "127.0.0.1:0", "HTTP listen address")
	fs.StringVar(&o.DataDir, "data-dir", "", "data directory (required)")
	fs.IntVar(&o.BrokerPort, "broker-port", 0, "port of the embedded broker (0: any free port)")
	fs.IntVar(&o.Partitions, "partitions", 8, "partitions of every topic")
	fs.DurationVar(&o.CompactInterval, "compact-interval", 0, "compaction interval of the embedded broker (0: the default)")
	fs.StringVar(&o.Pprof, "pprof", "", "serve net/http/pprof on this address")
	fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the whole run to this file")
	logLevel := fs.String("log-level", "info", "log level")
	if err := parse(fs, args); err != nil {
		return err
	}
	if o.DataDir == "" {
		return usageErr(fs, "--data-dir is required")
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr(fs, "bad --log-level %q: %v", *logLevel, err)
	}
	o.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	return bench.RunSUT(ctx, o, stdout)
}
