package collector

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/topics"
)

const (
	// readyProbeTimeout bounds each network step (dial, read, write) of a
	// Kafka probe.
	readyProbeTimeout = 2 * time.Second
	// readyCacheFor is how long a probe's result answers later readiness
	// checks: /readyz may be asked often, by many, and each probe opens a
	// connection to Kafka.
	readyCacheFor = time.Second
	// readyHandlerTimeout bounds a /readyz answer.
	readyHandlerTimeout = 3 * time.Second
)

// Readiness failures, wrapped by Ready's errors.
var (
	// ErrKafkaUnreachable: no broker answered a metadata request for the
	// collector's topics, or a topic has a partition without a leader.
	ErrKafkaUnreachable = errors.New("kafka unreachable")
	// ErrLinksNotLoaded: the links view has not caught up with the links
	// topic (starting, or stopped), so short links cannot be followed.
	ErrLinksNotLoaded = errors.New("links view not caught up")
)

// Ready reports whether the collector can take traffic: the links view has
// caught up and a broker answers a metadata request for the hits, events
// and links topics, each partition having a leader. It returns nil when
// ready, else an error wrapping ErrLinksNotLoaded and/or
// ErrKafkaUnreachable with the reason. A Kafka probe takes at most a few
// seconds; Ready returns when ctx ends, whichever is first. Probes are
// shared by concurrent callers and their result reused for a second. After
// Close the collector is not ready.
func (c *Collector) Ready(ctx context.Context) error {
	var errs []error
	if !c.links.ready() {
		errs = append(errs, ErrLinksNotLoaded)
	}
	if err := c.probe.check(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// ReadyHandler answers a readiness probe (GET /readyz): 200
// {"status":"ready"}, or 503 with Retry-After and {"error":"<reason>"}.
func (c *Collector) ReadyHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), readyHandlerTimeout)
		defer cancel()
		if err := c.Ready(ctx); err != nil {
			writeUnavailable(w, "not ready: "+strings.ReplaceAll(err.Error(), "\n", "; "))
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
}

// kafkaProbe checks that Kafka answers for the collector's topics. It
// opens a fresh connection each time rather than asking a long-lived
// client, whose cached metadata and connection state would say more about
// the past than about now.
type kafkaProbe struct {
	brokers []string
	topics  []string
	cfg     *sarama.Config

	mu      sync.Mutex
	running chan struct{} // closed when the probe under way ends; nil when none runs
	last    error
	lastAt  time.Time
	closed  bool
	wg      sync.WaitGroup // probes under way, for close
}

// errClosed answers readiness checks after Close.
var errClosed = errors.New("collector closed")

func newKafkaProbe(k topics.Kafka) *kafkaProbe {
	cfg := k.SaramaConfig(partName + "-ready")
	cfg.Net.DialTimeout = readyProbeTimeout
	cfg.Net.ReadTimeout = readyProbeTimeout
	cfg.Net.WriteTimeout = readyProbeTimeout
	return &kafkaProbe{
		brokers: k.Brokers,
		topics:  []string{string(topics.Hits), string(topics.Events), string(topics.Links)},
		cfg:     cfg,
	}
}

// check returns the latest probe's result if it is recent, else waits for
// a probe (starting one unless one is under way) or for ctx.
func (p *kafkaProbe) check(ctx context.Context) error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return errClosed
	}
	if p.running == nil && !p.lastAt.IsZero() && time.Now().Sub(p.lastAt) < readyCacheFor {
		err := p.last
		p.mu.Unlock()
		return err
	}
	done := p.running
	if done == nil {
		done = make(chan struct{})
		p.running = done
		p.wg.Add(1)
		// The probe runs on its own so that a caller whose ctx ends
		// first does not leave it half done; it is bounded by the
		// network timeouts of cfg.
		go func() {
			defer p.wg.Done()
			err := p.probe()
			p.mu.Lock()
			p.last, p.lastAt, p.running = err, time.Now(), nil
			p.mu.Unlock()
			close(done)
		}()
	}
	p.mu.Unlock()
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.last
	case <-ctx.Done():
		return fmt.Errorf("%w: no answer before the readiness check ended: %w", ErrKafkaUnreachable, ctx.Err())
	}
}

// close fails later checks and waits for the probe under way, which its
// network timeouts bound.
func (p *kafkaProbe) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}

// probe asks the brokers in turn until one answers.
func (p *kafkaProbe) probe() error {
	var errs []error
	for _, addr := range p.brokers {
		err := p.probeBroker(addr)
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return fmt.Errorf("%w: %w", ErrKafkaUnreachable, errors.Join(errs...))
}

func (p *kafkaProbe) probeBroker(addr string) error {
	b := sarama.NewBroker(addr)
	if err := b.Open(p.cfg); err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	// Closing an unconnected broker only says it was not connected.
	defer b.Close()
	md, err := b.GetMetadata(sarama.NewMetadataRequest(p.cfg.Version, p.topics))
	if err != nil {
		return fmt.Errorf("%s: %w", addr, err)
	}
	for _, t := range md.Topics {
		if t.Err != sarama.ErrNoError {
			return fmt.Errorf("%s: topic %s: %w", addr, t.Name, t.Err)
		}
		if len(t.Partitions) == 0 {
			return fmt.Errorf("%s: topic %s has no partitions", addr, t.Name)
		}
		for _, part := range t.Partitions {
			switch {
			case part.Err != sarama.ErrNoError && part.Err != sarama.ErrReplicaNotAvailable:
				return fmt.Errorf("%s: topic %s partition %d: %w", addr, t.Name, part.ID, part.Err)
			case part.Leader < 0:
				return fmt.Errorf("%s: topic %s partition %d has no leader", addr, t.Name, part.ID)
			}
		}
	}
	if len(md.Topics) != len(p.topics) {
		return fmt.Errorf("%s: metadata for %d of %d topics", addr, len(md.Topics), len(p.topics))
	}
	return nil
}
