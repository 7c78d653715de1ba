// Package collector is livetab's HTTP front door. Short-link clicks (hits)
// and SDK events come in over HTTP; the collector gathers what each request
// tells, fills the livetab.v1 protobuf messages and produces them to Kafka,
// answering only after Kafka acknowledged the write. It also serves the link
// admin endpoints, which write the compacted links topic and read it back
// through a goka view.
//
// Routes (see Register):
//
//	PUT    /v1/links/{account}/{slug}   create or replace a link (admin token)
//	GET    /v1/links/{account}/{slug}   one link (token of the account)
//	GET    /v1/links/{account}          the account's links (token of the account)
//	DELETE /v1/links/{account}/{slug}   delete a link (admin token)
//	GET    /l/{account}/{slug}          follow a short link: produce a Hit, 302
//	POST   /v1/events                   SDK events: produce Events, per-event results
//
// Every error is JSON {"error":"<reason>"} with a 4xx or 5xx status, and a
// rejected request produces nothing.
//
// # Nothing acknowledged is lost
//
// A 2xx is sent only after Kafka acknowledged the write: acks from all
// in-sync replicas, idempotent producer (so the producer's own retries never
// duplicate a message). A request waits for that at most
// Options.ProduceTimeout (default 5 s) and no longer than the request
// itself lives; when Kafka is unreachable, slow or refuses the write, the
// answer is 503 with Retry-After and nothing else. The producer keeps
// trying in the background and the collector recovers by itself when Kafka
// is back: there is nothing to restart.
//
// A 503 does not say the write is absent: a message whose request stopped
// waiting may still be written a moment later. That is harmless because
// every retry is idempotent downstream. SDKs retry a batch answered 503
// (or not answered at all) with the same event ids, and the processors
// drop events whose id they have seen, so an event may be on the events
// topic more than once but counts once (at-least-once delivery, deduplicated
// by id). A visitor whose click was answered 503 clicks again and makes a
// new hit with a new click id; the first hit, if it was written late,
// stays a hit without a redirect. A link write answered 503 is retried as
// the same PUT or DELETE, which writes the same key again.
//
// On shutdown the HTTP server stops accepting and drains first; Close then
// waits for the writes still in flight to get their answer before it
// closes the producer.
//
// # Operations
//
// Metrics serves Prometheus metrics (see the Metric* constants for their
// names), Ready and ReadyHandler tell whether Kafka answers and the links
// view has caught up.
package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/topics"
)

// Options configure a Collector.
type Options struct {
	Kafka  topics.Kafka
	Secret []byte // verifies tokens for the link admin endpoints (codecs.ParseToken)
	// TrustedProxies: X-Forwarded-For / Forwarded are believed only when the
	// direct peer is in one of these.
	TrustedProxies []netip.Prefix
	Logger         *slog.Logger     // default discard
	Now            func() time.Time // default time.Now
	// ProduceTimeout bounds how long a request waits for Kafka to
	// acknowledge its write before it is answered 503 with Retry-After.
	// Default DefaultProduceTimeout (5 s). A shorter request context ends
	// the wait earlier.
	ProduceTimeout time.Duration
	// Metrics is the Prometheus registry the collector registers its
	// metrics in, so that a process can serve several parts' metrics from
	// one registry. Default: a registry of the collector's own, with the
	// Go runtime and process collectors. Metrics() serves it.
	Metrics *prometheus.Registry
}

// Collector serves the HTTP routes and owns the Kafka producer and the view
// of the links topic. Create it with New, Register its routes, Run it, wait
// for WaitReady before serving traffic, and Close it after the HTTP server
// has shut down. Serve Metrics and ReadyHandler (or Ready) to operators.
type Collector struct {
	log     *slog.Logger
	now     func() time.Time
	secret  []byte
	proxies proxies
	ua      userAgentParser
	// redirects remembers where each destination takes the click id.
	redirects *redirectCache

	producer producer
	links    *linkStore
	metrics  *metrics
	probe    *kafkaProbe
	// visibleTimeout bounds the read-your-writes wait of link writes.
	visibleTimeout time.Duration

	mu      sync.Mutex
	started bool // Run was called
	closed  bool
	runDone chan struct{} // closed when Run returns
}

// partName names the collector's Kafka clients.
const partName = "collector"

// New connects the producer and builds the view of topics.Links. The topics
// must exist (topics.EnsureAll).
func New(opts Options) (*Collector, error) {
	if len(opts.Kafka.Brokers) == 0 {
		return nil, errors.New("collector: no kafka brokers")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("collector: empty token secret")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	timeout := opts.ProduceTimeout
	if timeout <= 0 {
		timeout = DefaultProduceTimeout
	}
	reg := opts.Metrics
	if reg == nil {
		// A registry of its own shows the process too, as a shared one
		// would.
		reg = prometheus.NewRegistry()
		if err := errors.Join(
			reg.Register(collectors.NewGoCollector()),
			reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})),
		); err != nil {
			return nil, fmt.Errorf("collector: register metrics: %w", err)
		}
	}
	m := newMetrics()
	p, err := newAckProducer(opts.Kafka, timeout, m, log)
	if err != nil {
		return nil, fmt.Errorf("collector: %w", err)
	}
	links, err := newLinkStore(opts.Kafka, log)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("collector: %w", err), p.Close())
	}
	if err := m.register(reg); err != nil {
		return nil, errors.Join(fmt.Errorf("collector: register metrics: %w", err), p.Close(), links.closeClients())
	}
	return &Collector{
		log:       log,
		now:       now,
		secret:    opts.Secret,
		proxies:   proxies(opts.TrustedProxies),
		ua:        newUACache(mssolaUA{}, defaultUACacheSize),
		redirects: newRedirectCache(),
		producer:  p,
		links:     links,
		metrics:   m,
		probe:     newKafkaProbe(opts.Kafka),
		runDone:   make(chan struct{}),

		visibleTimeout: linkVisibleTimeout,
	}, nil
}

// Metrics serves the collector's metrics in Prometheus' exposition format
// (GET /metrics). With Options.Metrics set it serves that whole registry.
func (c *Collector) Metrics() http.Handler { return c.metrics.handler() }

// Run runs the goka view of topics.Links until ctx is done. It may be called
// once.
func (c *Collector) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.started || c.closed {
		c.mu.Unlock()
		return errors.New("collector: Run called twice or after Close")
	}
	c.started = true
	c.mu.Unlock()
	defer close(c.runDone)
	return c.links.run(ctx)
}

// WaitReady returns once the links view has recovered, so that links can be
// followed; or with an error when ctx ends or Run stopped first.
func (c *Collector) WaitReady(ctx context.Context) error {
	// goka's view reports running as soon as the partitions that reported
	// so far are running, so the partitions themselves are polled.
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !c.links.ready() {
		select {
		case <-tick.C:
		case <-c.runDone:
			return errors.New("collector: stopped before the links view recovered")
		case <-ctx.Done():
			return fmt.Errorf("collector: waiting for the links view: %w", ctx.Err())
		}
	}
	return nil
}

// Close waits for the writes in flight to get Kafka's answer (each waits at
// most the produce timeout), then flushes and closes the producer; a
// request that still arrives is answered 503. Call it after the HTTP server
// has shut down, so that no request is in flight any more.
func (c *Collector) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	started := c.started
	c.mu.Unlock()
	err := c.producer.Close()
	c.probe.close()
	if !started {
		// Run closes the view's clients when it ends; without Run nobody
		// else will.
		err = errors.Join(err, c.links.closeClients())
	}
	if err != nil {
		return fmt.Errorf("collector: close: %w", err)
	}
	return nil
}

// viewOptions are topics' view options plus consumer and topic manager
// builders that remember what they built: a goka View never closes its
// sarama clients, so the collector does when the view stops. The view
// reconnects after viewBackoffStep, growing to viewBackoffMax: goka's
// default (10 s, growing to 2 min) would keep short links unavailable long
// after a Kafka restart.
func viewOptions(k topics.Kafka, cb goka.UpdateCallback, track func(io.Closer)) []goka.ViewOption {
	consumer := goka.SaramaConsumerBuilderWithConfig(k.SaramaConfig(partName + "-links"))
	tm := goka.TopicManagerBuilderWithConfig(k.SaramaConfig(partName+"-links-topics"), goka.NewTopicManagerConfig())
	return append(k.ViewOptions(partName+"-links", storage.MemoryBuilder()),
		goka.WithViewCallback(cb),
		goka.WithViewBackoffBuilder(func() (goka.Backoff, error) {
			return goka.NewSimpleBackoff(viewBackoffStep, viewBackoffMax), nil
		}),
		goka.WithViewConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			c, err := consumer(brokers, clientID)
			if err == nil {
				track(c)
			}
			return c, err
		}),
		goka.WithViewTopicManagerBuilder(func(brokers []string) (goka.TopicManager, error) {
			m, err := tm(brokers)
			if err == nil {
				track(m)
			}
			return m, err
		}),
	)
}

// How soon the links view reconnects after losing Kafka.
const (
	viewBackoffStep = 500 * time.Millisecond
	viewBackoffMax  = 5 * time.Second
)

// linkCodec decodes the links view's values.
type linkCodec = codecs.LinkCodec
