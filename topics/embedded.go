package topics

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// EmbeddedOptions configure the in-process broker.
type EmbeddedOptions struct {
	// DataDir keeps every topic on disk so a restart loses nothing. Empty
	// keeps data in memory only (tests).
	DataDir string
	// Port the first broker listens on, on 127.0.0.1; 0 picks a free one.
	Port int
	// Brokers in the cluster. Default 1; tests use 3 for failure cases.
	Brokers int
	// Logger receives the broker's warnings and errors. Default: discarded.
	Logger *slog.Logger
	// CompactInterval is how often the broker compacts the compacted
	// topics (group tables, the view topic) and applies retention,
	// counted from the end of the previous pass. The
	// embedded broker reads its whole data directory when it starts, so
	// compacting often keeps restarts fast; each pass briefly holds up
	// requests, for longer the more table data there is: each pass is
	// logged with how long it took (a warning from SlowCompaction on).
	// Default DefaultCompactInterval.
	CompactInterval time.Duration
}

// SlowCompaction is how long a compaction pass of the embedded broker may
// take before it is logged as a warning: every request waited that long.
const SlowCompaction = 500 * time.Millisecond

// DefaultCompactInterval is EmbeddedOptions.CompactInterval's default.
const DefaultCompactInterval = time.Minute

// Embedded is an in-process Kafka-protocol broker (kfake) that livetab runs
// when no brokers are configured. Clients reach it over TCP like any other
// cluster.
type Embedded struct {
	*kfake.Cluster
	stop      chan struct{}
	done      chan struct{}
	closeOnce sync.Once
}

// StartEmbedded starts the in-process broker. Close it to flush its data
// directory.
func StartEmbedded(opts EmbeddedOptions) (*Embedded, error) {
	n := opts.Brokers
	if n <= 0 {
		n = 1
	}
	compact := opts.CompactInterval
	if compact <= 0 {
		compact = DefaultCompactInterval
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(n),
		// Topics are created by Ensure with their declared settings, never
		// by a client that happens to ask first.
		kfake.BrokerConfigs(map[string]string{
			"auto.create.topics.enable": "false",
			// The broker's own compaction ticker is left idle: compact
			// runs the passes, timing each, as a pass holds up every
			// request while it runs.
			"log.cleaner.backoff.ms": strconv.FormatInt(idleCompactTicker.Milliseconds(), 10),
		}),
	}
	if opts.Port != 0 {
		ports := make([]int, n)
		for i := range ports {
			ports[i] = opts.Port + i
		}
		kopts = append(kopts, kfake.Ports(ports...))
	}
	if opts.DataDir != "" {
		if err := os.MkdirAll(opts.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("topics: embedded broker data dir: %w", err)
		}
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	if opts.Logger != nil {
		kopts = append(kopts, kfake.WithLogger(slogLogger{opts.Logger}))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("topics: start embedded broker: %w", err)
	}
	e := &Embedded{Cluster: c, stop: make(chan struct{}), done: make(chan struct{})}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	go e.compact(compact, log)
	return e, nil
}

// idleCompactTicker is the interval given to kfake's own compaction
// ticker, which compact replaces: about a century.
const idleCompactTicker = 100 * 365 * 24 * time.Hour

// compact compacts the compacted topics and applies retention interval
// after the end of the previous pass, logging how long each took, until
// Close. Counting from the end, not the start, leaves the broker at least
// interval to serve between passes however long they grow.
func (e *Embedded) compact(interval time.Duration, log *slog.Logger) {
	defer close(e.done)
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		start := time.Now()
		e.Cluster.Compact()
		took := time.Since(start)
		level := slog.LevelDebug
		switch {
		case took >= SlowCompaction:
			level = slog.LevelWarn
		case took >= SlowCompaction/5:
			level = slog.LevelInfo
		}
		log.Log(context.Background(), level, "embedded broker compacted its topics; requests waited meanwhile",
			"took", took.Round(time.Millisecond))
		t.Reset(interval)
	}
}

// Close stops the compaction passes and the broker, flushing its data
// directory. Later calls do nothing.
func (e *Embedded) Close() {
	e.closeOnce.Do(func() {
		close(e.stop)
		<-e.done
		e.Cluster.Close()
	})
}

// Addrs are the brokers' host:port addresses.
func (e *Embedded) Addrs() []string { return e.ListenAddrs() }

type slogLogger struct{ l *slog.Logger }

func (s slogLogger) Logf(level kfake.LogLevel, msg string, args ...any) {
	switch level {
	case kfake.LogLevelError:
		s.l.Error(fmt.Sprintf(msg, args...), "part", "broker")
	case kfake.LogLevelWarn:
		s.l.Warn(fmt.Sprintf(msg, args...), "part", "broker")
	}
}
