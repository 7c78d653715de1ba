// Package processors runs livetab's three goka processor groups together:
// sessions (per-session timelines), attribution (hit/app-session
// conversions) and liveview (per-account view items). Each group lives in
// its own subpackage, which owns its graph.
//
// Topics are not created here: run topics.EnsureAll first.
package processors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"golang.org/x/sync/errgroup"

	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/procutil"
	"github.com/livetab/livetab/processors/liveview"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

// Options configure the processors.
type Options struct {
	Kafka topics.Kafka
	// StorageDir holds the group tables (goka leveldb storage, one
	// subfolder per group); empty keeps them in memory (tests).
	StorageDir string
	Logger     *slog.Logger // default: discard
}

// Processors are the three goka processors of livetab. Run them once.
type Processors struct {
	procs []named
}

type named struct {
	name string
	p    *goka.Processor
}

// New builds the three goka processors (sessions, attribution, liveview).
// It does not touch Kafka beyond what goka.NewProcessor does (which checks
// that the group's topics exist and are co-partitioned).
func New(opts Options) (*Processors, error) {
	log := procutil.OrDiscard(opts.Logger)
	sb := func(g goka.Group) storage.Builder {
		if opts.StorageDir == "" {
			return storage.MemoryBuilder()
		}
		return storage.DefaultBuilder(filepath.Join(opts.StorageDir, string(g)))
	}
	s, err := sessions.NewProcessor(sessions.Options{Kafka: opts.Kafka, Storage: sb(sessions.Group), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	a, err := attribution.NewProcessor(attribution.Options{Kafka: opts.Kafka, Storage: sb(attribution.Group), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	l, err := liveview.NewProcessor(liveview.Options{Kafka: opts.Kafka, Storage: sb(liveview.Group), Logger: log})
	if err != nil {
		return nil, fmt.Errorf("processors: %w", err)
	}
	return &Processors{procs: []named{{"sessions", s}, {"attribution", a}, {"liveview", l}}}, nil
}

// Run runs all three on an errgroup until ctx is cancelled (returns nil
// then) or one fails (returns its error, wrapped; the others are stopped).
// A Processors runs only once: goka processors cannot be restarted, so
// build a new one with New to run again.
func (p *Processors) Run(ctx context.Context) error {
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
	return g.Wait()
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
