// Package processors runs livetab's three goka processor groups together:
// sessions (per-session timelines), attribution (hit/app-session
// conversions) and liveview (per-account view items), with the two
// periodic jobs goka has no room for: the ticker that writes the time to
// topics.Clock (attribution's timers fire from it) and the sweeper that
// applies the sessions' retention and deletes attribution's idle match
// keys. Each group lives in its own subpackage,
// which owns its graph.
//
// Topics are not created here: run topics.EnsureAll first.
package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/procutil"
	"github.com/livetab/livetab/processors/liveview"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/processors/store"
	"github.com/livetab/livetab/topics"
)

// Clock tells the time. Tests inject one they control.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Options configure the processors.
type Options struct {
	Kafka topics.Kafka
	// StorageDir holds the group tables (leveldb, batched by package store; one
	// subfolder per group); empty keeps them in memory (tests).
	StorageDir string
	Logger     *slog.Logger // default: discard
	// Attribution sets the matching windows and the grace period; zero
	// fields take attribution's defaults.
	Attribution attribution.Config
	// Clock is the time the ticks and the retention sweeps use. Default:
	// the wall clock.
	Clock Clock
	// TickInterval is how often Run writes a tick per partition to
	// topics.Clock, which fires the attribution timers: a grace deadline
	// is acted on up to about one interval late. Default 1 s.
	TickInterval time.Duration
	// SweepInterval is how often Run applies the sessions' retention to
	// the sessions this instance owns (SweepSessions) and deletes the
	// idle match keys of attribution it owns (SweepMatchKeys). Default
	// 1 h. A match key outlives its window by up to one interval.
	SweepInterval time.Duration
}

// Defaults of Options.
const (
	DefaultTickInterval  = time.Second
	DefaultSweepInterval = time.Hour
)

// FirstSweepDelay is how long after the processors are ready Run sweeps
// the first time (or SweepInterval, when that is shorter).
const FirstSweepDelay = time.Minute

// Processors are the three goka processors of livetab, with the ticker
// that drives attribution's timers and the sweeper that applies the
// sessions' retention and attribution's clean-up. Run them once.
type Processors struct {
	procs       []named
	sessions    *goka.Processor
	attribution *goka.Processor
	kafka       topics.Kafka
	log         *slog.Logger
	clock       Clock
	tickKeys    []string
	tick        time.Duration
	sweep       time.Duration
}

type named struct {
	name  string
	table string
	p     *goka.Processor
}

// New builds the three goka processors (sessions, attribution, liveview).
// It does not touch Kafka beyond reading the partition count of
// topics.Clock and what goka.NewProcessor does (which checks that the
// group's topics exist and are co-partitioned).
func New(opts Options) (*Processors, error) {
	log := procutil.OrDiscard(opts.Logger)
	sb := func(g goka.Group) storage.Builder {
		if opts.StorageDir == "" {
			return storage.MemoryBuilder()
		}
		return store.Builder(filepath.Join(opts.StorageDir, string(g)), store.Options{})
	}
	parts, err := procutil.Partitions(opts.Kafka, string(topics.Clock))
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	// Sessions and attribution are off the live path: their clients wait
	// to fill requests, which leaves the CPU to liveview (topics.Pace).
	s, err := sessions.NewProcessor(sessions.Options{Kafka: opts.Kafka.Background(), Storage: sb(sessions.Group), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	a, err := attribution.NewProcessor(attribution.Options{Kafka: opts.Kafka.Background(), Storage: sb(attribution.Group), Logger: log,
		Config: opts.Attribution, Partitions: parts})
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	l, err := liveview.NewProcessor(liveview.Options{Kafka: opts.Kafka, Storage: sb(liveview.Group), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	p := &Processors{
		procs: []named{
			{"sessions", string(goka.GroupTable(sessions.Group)), s},
			{"attribution", string(goka.GroupTable(attribution.Group)), a},
			{"liveview", string(goka.GroupTable(liveview.Group)), l},
		},
		sessions:    s,
		attribution: a,
		kafka:       opts.Kafka,
		log:         log,
		clock:       opts.Clock,
		tickKeys:    attribution.TickKeys(parts),
		tick:        opts.TickInterval,
		sweep:       opts.SweepInterval,
	}
	if p.clock == nil {
		p.clock = wallClock{}
	}
	if p.tick <= 0 {
		p.tick = DefaultTickInterval
	}
	if p.sweep <= 0 {
		p.sweep = DefaultSweepInterval
	}
	return p, nil
}

// Run runs all three, the ticker and the sweeper on an errgroup until ctx
// is cancelled (returns nil then) or one processor fails (returns its
// error, wrapped; the others are stopped). A Processors runs only once:
// goka processors cannot be restarted, so build a new one with New to run
// again.
//
// The ticker writes, every TickInterval, one livetabv1.Tick with the
// Clock's time to each partition of topics.Clock. Every instance ticks;
// that is harmless, as the timers keep the latest time they saw. A failed
// write is logged and retried at the next interval. The sweeper calls
// SweepSessions and SweepMatchKeys FirstSweepDelay after the processors
// are ready and then every SweepInterval; a failed sweep is logged.
func (p *Processors) Run(ctx context.Context) error {
	prod, err := p.kafka.NewSyncProducer("processors-clock")
	if err != nil {
		return fmt.Errorf("processors: clock producer: %w", err)
	}
	defer prod.Close()
	g, gctx := errgroup.WithContext(ctx)
	for _, n := range p.procs {
		g.Go(func() error {
			err := n.p.Run(gctx)
			// A group stopped because ctx or a sibling ended is no failure.
			if err == nil || (gctx.Err() != nil && errors.Is(err, context.Canceled)) {
				return nil
			}
			return fmt.Errorf("processors: %s: %w", n.name, err)
		})
	}
	g.Go(func() error {
		p.runTicker(gctx, prod)
		return nil
	})
	g.Go(func() error {
		p.runSweeper(gctx)
		return nil
	})
	return g.Wait()
}

func (p *Processors) runTicker(ctx context.Context, prod sarama.SyncProducer) {
	t := time.NewTicker(p.tick)
	defer t.Stop()
	failing := false
	for {
		// Logged when it starts and stops failing, not at every tick.
		switch err := p.sendTicks(prod); {
		case err != nil && !failing:
			p.log.Warn("processors: cannot write ticks; attribution timers wait", "err", err)
			failing = true
		case err == nil && failing:
			p.log.Info("processors: writing ticks again")
			failing = false
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// sendTicks writes one tick with the clock's time to every partition of
// topics.Clock.
func (p *Processors) sendTicks(prod sarama.SyncProducer) error {
	data, err := proto.Marshal(&livetabv1.Tick{TimeUs: p.clock.Now().UnixMicro()})
	if err != nil {
		return fmt.Errorf("encode tick: %w", err)
	}
	msgs := make([]*sarama.ProducerMessage, len(p.tickKeys))
	for i, k := range p.tickKeys {
		msgs[i] = &sarama.ProducerMessage{Topic: string(topics.Clock), Key: sarama.StringEncoder(k), Value: sarama.ByteEncoder(data)}
	}
	return prod.SendMessages(msgs)
}

func (p *Processors) runSweeper(ctx context.Context) {
	for _, proc := range []*goka.Processor{p.sessions, p.attribution} {
		if err := proc.WaitForReadyContext(ctx); err != nil {
			return
		}
	}
	// Not at once: a sweep reads every key of both tables, and right
	// after a restart the CPU is better spent on whatever else of the
	// process is still catching up (the views, for the page). Not a whole
	// interval either, or processes restarted more often than that would
	// never sweep.
	t := time.NewTimer(min(p.sweep, FirstSweepDelay))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := p.SweepSessions(ctx, p.clock.Now()); err != nil && ctx.Err() == nil {
			p.log.Warn("processors: sessions retention sweep failed", "err", err)
		}
		if err := p.SweepMatchKeys(ctx, p.clock.Now()); err != nil && ctx.Err() == nil {
			p.log.Warn("processors: attribution clean-up sweep failed", "err", err)
		}
		t.Reset(p.sweep)
	}
}

// SweepSessions applies the sessions' retention as of now to every session
// of the partitions this instance currently owns (each instance sweeps its
// own): entries older than sessions.Retention go, and a session left with
// nothing is deleted from the table and, by a tombstone, from its
// compacted topic. It returns once every visited session was written. It
// is a no-op before Run made the processor ready; a rebalance during the
// sweep aborts it with an error (goka.ErrVisitAborted).
func (p *Processors) SweepSessions(ctx context.Context, now time.Time) error {
	if err := p.sessions.VisitAll(ctx, sessions.ExpireVisitor, now); err != nil {
		return fmt.Errorf("processors: sweep sessions: %w", err)
	}
	return nil
}

// SweepMatchKeys deletes the match keys of attribution whose clean-up
// time has come by now (attribution.CleanupVisitor), in the partitions
// this instance currently owns, from the table and, by a tombstone, from
// its compacted topic. It returns once every visited key was handled. It
// is a no-op before Run made the processor ready; a rebalance during the
// sweep aborts it with an error (goka.ErrVisitAborted).
func (p *Processors) SweepMatchKeys(ctx context.Context, now time.Time) error {
	if err := p.attribution.VisitAll(ctx, attribution.CleanupVisitor, now); err != nil {
		return fmt.Errorf("processors: sweep attribution's match keys: %w", err)
	}
	return nil
}

// WaitReady returns once all three processors have recovered their tables
// and are consuming, or ctx ends (its error). It may be called before Run.
// A processor that stopped before it was ready is an error.
//
// On the embedded broker with small tables this takes a few hundred
// milliseconds. It grows with the table topics to recover (leveldb storage
// in StorageDir only recovers what it lacks), and after an unclean stop the
// groups may wait for the broker to drop the old members (sarama's session
// timeout, 10 s by default).
func (p *Processors) WaitReady(ctx context.Context) error {
	for _, n := range p.procs {
		if err := n.p.WaitForReadyContext(ctx); err != nil {
			return fmt.Errorf("processors: wait for %s: %w", n.name, err)
		}
		// goka's wait also returns when the processor stopped.
		select {
		case <-n.p.Done():
			return fmt.Errorf("processors: %s stopped before it was ready: %w", n.name, errStopped(n.p))
		default:
		}
	}
	return nil
}

func errStopped(p *goka.Processor) error {
	if err := p.Error(); err != nil {
		return err
	}
	return errors.New("processor stopped")
}
