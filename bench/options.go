// Package bench is livetab's load generator and measurement: it drives the
// real system — HTTP collector → Kafka → processors → view topic →
// WebSocket subscribers — with realistic traffic (short-link hits followed
// by installs carrying their click ids and in-app events on the same app
// sessions, sent in SDK-like batches), and measures ingest rates, HTTP
// errors, end-to-end and per-stage latency, deliveries, slow-client
// disconnects, the consumer backlog, and the CPU and memory of the system
// under test separately from its own.
//
// By default the system under test runs as a child process (the same
// binary re-executed as `livetab bench sut`, which runs exactly what
// `livetab dev --demo=false` runs: system.Run with every part on the
// embedded broker), so that /proc/<pid> of the child measures the system
// and getrusage measures the generator. Options.URL measures a deployment
// instead, and the in-process mode (tests) runs both in one process.
package bench

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Mode is where the system under test runs.
type Mode string

const (
	// ModeChild runs the system as a child process (Options.Command).
	ModeChild Mode = "child"
	// ModeInProcess runs system.Run inside the generator's process: the
	// resources of both are then only known together.
	ModeInProcess Mode = "in-process"
	// ModeRemote measures a running deployment at Options.URL.
	ModeRemote Mode = "remote"
)

// Scenario names.
const (
	ScenarioThroughput  = "throughput"
	ScenarioFreshness   = "freshness"
	ScenarioFanout      = "fanout"
	ScenarioConnections = "connections"
	ScenarioRestart     = "restart"
	ScenarioSmoke       = "smoke"
)

// Scenarios are the named presets, in the order the help lists them.
func Scenarios() []string {
	return []string{ScenarioThroughput, ScenarioFreshness, ScenarioFanout, ScenarioConnections, ScenarioRestart, ScenarioSmoke}
}

// AllKinds is the subscription filter that receives every item with the
// sampling of unfiltered streams off.
const AllKinds = "kind=hit,event,conversion"

// Options configure a benchmark run. Start from Preset.
type Options struct {
	// Scenario names the preset the options came from; it selects which
	// targets the result is checked against.
	Scenario string

	// Mode of the system under test.
	Mode Mode
	// Command starts the child (ModeChild): the binary and the arguments
	// that make it run RunSUT, e.g. {"/path/livetab", "bench", "sut"}.
	Command []string
	// URL of a deployment (ModeRemote), e.g. "http://127.0.0.1:8080".
	URL string
	// Brokers of the deployment (ModeRemote), to measure the consumer
	// backlog and the processor stage. Optional.
	Brokers []string
	// PID of the deployment's process on this machine (ModeRemote), to
	// read its CPU and memory. Optional.
	PID int
	// Secret signs the tokens. ModeRemote needs the deployment's; the
	// other modes make one up and hand it to the system.
	Secret []byte
	// DataDir of the system under test; empty uses a temporary directory
	// removed afterwards.
	DataDir string
	// Partitions of every topic (system under test).
	Partitions int
	// CompactInterval of the system under test's embedded broker (its
	// --compact-interval); 0 keeps livetab's default. ModeChild only.
	CompactInterval time.Duration
	// CPUProfile makes the child write a CPU profile of the measured run
	// to <Out>/sut-cpu.pprof; Pprof makes it serve net/http/pprof on a
	// free port (printed). ModeChild only.
	CPUProfile bool
	Pprof      bool
	// GenCPUProfile, when set, writes a CPU profile of the generator over
	// the measured window to this file.
	GenCPUProfile string

	// Feed is where the load goes: FeedCollector (default, the whole
	// system) or FeedView (view items straight to the view topic: the
	// views' fan-out alone; needs the brokers).
	Feed string

	// Duration of the measured load.
	Duration time.Duration
	// Warmup runs load before measuring; its figures are not counted.
	Warmup time.Duration
	// HitRate and EventRate are the offered rates per second (open loop).
	HitRate   float64
	EventRate float64
	// Max sends as fast as it goes instead (closed loop): Concurrency
	// requests in flight, hits and events in the ratio of the rates.
	Max bool
	// Concurrency bounds the HTTP requests in flight.
	Concurrency int

	// Accounts receiving traffic ("acct-0000", ...; the first is the hot
	// one).
	Accounts int
	// HotShare is the fraction of all traffic that goes to the hot account
	// (0: spread evenly over the accounts).
	HotShare float64
	// SubsPerAccount subscribers watch each account with SubFilter.
	SubsPerAccount int
	SubFilter      string
	// HotSubs more subscribers watch the hot account with HotFilter.
	HotSubs   int
	HotFilter string
	// Baseline runs load this long before the subscribers connect, so that
	// the memory they add is measured on top of a system that already
	// carries traffic.
	Baseline time.Duration

	// SessionEvents is how many events an app session sends: an install
	// (alone in its request, as SDKs do for deferred deep linking) and
	// then in-app events in batches of Batch.
	SessionEvents int
	Batch         int
	// InstallRatio is the fraction of hits whose visitor installs the app
	// (its install carries the hit's click id, so it converts).
	InstallRatio float64
	// ParamBytes is the size of the padding parameter every hit and event
	// carries, to vary payload sizes.
	ParamBytes int

	// Drain bounds the wait, after the load stopped, for every accepted
	// item to reach every subscriber.
	Drain time.Duration

	// Fill (restart scenario) is how many items (hits and events) to put
	// through the system before the clean stop.
	Fill int64
	// MaxSUTRSS stops the fill early when the system's resident memory
	// passes it, to keep the machine usable (bytes).
	MaxSUTRSS int64
	// RestartTimeout bounds the wait for the restarted system.
	RestartTimeout time.Duration

	// Out is the directory for result.json, chart.png and the logs.
	Out string
	// Progress receives the live progress line and the summary; nil
	// discards them.
	Progress io.Writer
	// Logger for the generator's own diagnostics. Default: discard.
	Logger *slog.Logger
	// SUTLogger receives the system's logs in ModeInProcess. Default:
	// discard. (A child's logs go to <Out>/sut.log.)
	SUTLogger *slog.Logger
}

// Preset returns the options of a named scenario; each default matches
// the target it measures (see BENCHMARKS.md).
func Preset(name string) (Options, error) {
	o := Options{
		Scenario:       name,
		Mode:           ModeChild,
		Feed:           FeedCollector,
		Partitions:     8,
		Duration:       60 * time.Second,
		HitRate:        500,
		EventRate:      5000,
		Concurrency:    256,
		Accounts:       100,
		SubsPerAccount: 1,
		SubFilter:      AllKinds,
		HotFilter:      AllKinds,
		SessionEvents:  21,
		Batch:          20,
		InstallRatio:   0.5,
		ParamBytes:     64,
		Drain:          30 * time.Second,
		RestartTimeout: 5 * time.Minute,
		MaxSUTRSS:      8 << 30,
		Out:            "bench-out",
	}
	switch name {
	case ScenarioThroughput:
		// Target 1: ≥ 20,000 events/s plus 2,000 hits/s for 60 s.
		o.HitRate, o.EventRate = 2000, 20000
	case ScenarioFreshness:
		// Target 2: p99 accept → WebSocket ≤ 50 ms at 5,000 events/s.
		o.HitRate, o.EventRate = 500, 5000
	case ScenarioFanout:
		// Target 3a: one hot account, 1,000 filtered subscribers, 200
		// items/s: a fifth of 1,000 items/s (plus its conversions).
		o.HitRate, o.EventRate = 100, 900
		o.Accounts = 50
		o.HotShare = 0.2
		o.HotSubs = 1000
	case ScenarioConnections:
		// Target 3b: 10,000 subscribers across accounts, items flowing:
		// about one item per second each.
		o.HitRate, o.EventRate = 100, 900
		o.Accounts = 1000
		o.SubsPerAccount = 10
		o.Baseline = 15 * time.Second
	case ScenarioRestart:
		// Target 4: restart with 1 million items on the topics.
		o.Max = true
		o.Concurrency = 32
		o.HitRate, o.EventRate = 1000, 10000
		o.Batch = 100
		o.SessionEvents = 101
		o.SubsPerAccount = 0
		o.Fill = 1_000_000
		o.Duration = 0
	case ScenarioSmoke:
		o.HitRate, o.EventRate = 50, 500
		o.Accounts = 5
		o.Duration = 5 * time.Second
		o.Drain = 15 * time.Second
	default:
		return Options{}, fmt.Errorf("bench: unknown scenario %q (one of %s)", name, strings.Join(Scenarios(), ", "))
	}
	return o, nil
}

// validate checks o and fills what is derived.
func (o *Options) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	switch o.Mode {
	case ModeChild:
		if len(o.Command) == 0 {
			bad("no command to start the system under test")
		}
	case ModeInProcess:
	case ModeRemote:
		if o.URL == "" {
			bad("remote mode needs a URL")
		} else if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("bad URL %q: want http://host:port", o.URL)
		}
		if len(o.Secret) == 0 {
			bad("remote mode needs the deployment's token secret (LIVETAB_SECRET)")
		}
	default:
		bad("unknown mode %q", o.Mode)
	}
	if o.Mode != ModeChild && (o.CPUProfile || o.Pprof) {
		bad("profiling needs the child mode")
	}
	switch o.Feed {
	case FeedCollector:
	case FeedView:
		if o.Mode == ModeRemote && len(o.Brokers) == 0 {
			bad("the view feed needs the deployment's brokers")
		}
		if o.Scenario == ScenarioRestart {
			bad("the restart scenario feeds the collector")
		}
	default:
		bad("unknown feed %q (collector or view)", o.Feed)
	}
	if o.Partitions <= 0 {
		bad("partitions must be positive")
	}
	if o.Scenario != ScenarioRestart && o.Duration <= 0 {
		bad("duration must be positive")
	}
	if o.Warmup < 0 || o.Baseline < 0 || o.Drain < 0 {
		bad("warmup, baseline and drain must not be negative")
	}
	if o.HitRate < 0 || o.EventRate < 0 || o.HitRate+o.EventRate == 0 {
		bad("hit and event rates must not be negative, and not both zero")
	}
	if o.Concurrency <= 0 {
		bad("concurrency must be positive")
	}
	if o.Accounts <= 0 || o.Accounts > 100000 {
		bad("accounts must be between 1 and 100000")
	}
	if o.HotShare < 0 || o.HotShare > 1 {
		bad("hot share must be between 0 and 1")
	}
	if o.SubsPerAccount < 0 || o.HotSubs < 0 {
		bad("subscriber counts must not be negative")
	}
	if o.SessionEvents < 1 {
		bad("session events must be at least 1 (the install)")
	}
	if o.Batch < 1 || o.Batch > 100 {
		bad("batch must be between 1 and 100 (the collector's limit)")
	}
	if o.InstallRatio < 0 || o.InstallRatio > 1 {
		bad("install ratio must be between 0 and 1")
	}
	if o.ParamBytes < 0 || o.ParamBytes > 1024 {
		bad("param bytes must be between 0 and 1024 (the collector's limit)")
	}
	for _, f := range []string{o.SubFilter, o.HotFilter} {
		if _, err := url.ParseQuery(f); err != nil {
			bad("bad filter %q: %v", f, err)
		}
	}
	if o.Scenario == ScenarioRestart {
		if o.Mode != ModeChild {
			bad("the restart scenario needs the child mode")
		}
		if o.Fill <= 0 {
			bad("fill must be positive")
		}
	}
	if o.Out == "" {
		bad("no output directory")
	}
	return errors.Join(errs...)
}

// complete reports whether a subscription with filter receives every hit
// and event of its account, so that its deliveries can be checked against
// what the collector accepted.
func complete(filter string) bool {
	q, err := url.ParseQuery(filter)
	if err != nil {
		return false
	}
	for k := range q {
		if k != "kind" {
			return false
		}
	}
	var kinds []string
	for _, v := range q["kind"] {
		kinds = append(kinds, strings.Split(v, ",")...)
	}
	return slices.Contains(kinds, "hit") && slices.Contains(kinds, "event")
}
