package collector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/topics"
)

// DefaultProduceTimeout is how long a request waits for Kafka to
// acknowledge its write, unless Options.ProduceTimeout says otherwise.
const DefaultProduceTimeout = 5 * time.Second

// producer writes messages to Kafka. A send returns nil only once Kafka
// acknowledged every message (all in-sync replicas); it returns an error
// when Kafka refused one, when the wait outlasted the producer's timeout or
// ctx ended, or after Close. A message whose wait ended early may still be
// written afterwards: callers answer 503, and the client's retry carries
// the same ids.
type producer interface {
	SendMessageContext(ctx context.Context, msg *sarama.ProducerMessage) (partition int32, offset int64, err error)
	SendMessagesContext(ctx context.Context, msgs []*sarama.ProducerMessage) error
	Close() error
}

var (
	// errProducerClosed is what a request gets that arrives after Close.
	errProducerClosed = errors.New("producer closed")
	// errProduceTimeout ends a wait that outlasted the produce timeout.
	errProduceTimeout = errors.New("kafka did not acknowledge the write in time")
)

// producerConfig is topics' sarama configuration with the settings that
// the collector's promise rests on spelled out, so that a change there
// cannot weaken it silently: a 2xx means every in-sync replica has the
// write (acks=all), the producer's own retries never duplicate a message
// (idempotent, one request in flight per broker), and every message's fate
// is reported back.
func producerConfig(k topics.Kafka) *sarama.Config {
	cfg := k.SaramaConfig(partName)
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	return cfg
}

// ackProducer is the collector's producer: a sarama AsyncProducer whose
// messages carry their caller's result channel, so that each send waits
// for its own acknowledgement no longer than its deadline. sarama's
// SyncProducer cannot be bounded that way: with Kafka down or slow it
// blocks for its retries, backoffs, metadata refreshes and network
// timeouts, which add up to minutes.
type ackProducer struct {
	p       sarama.AsyncProducer
	timeout time.Duration
	metrics *metrics
	log     *slog.Logger

	// mu makes Close and the sends that enter exclusive: once closed is
	// set no send starts, and Close waits for those under way (sends) to
	// end before it closes the producer's input.
	mu      sync.RWMutex
	closed  bool
	sends   sync.WaitGroup
	closing chan struct{} // closed when Close starts
	drained chan struct{} // closed once sarama reported every message and closed its channels
}

// ackResult is the fate of one message.
type ackResult struct {
	msg *sarama.ProducerMessage
	err error
}

// newAckProducer connects an idempotent, acks=all producer to k's brokers.
// Sends wait at most timeout for Kafka.
func newAckProducer(k topics.Kafka, timeout time.Duration, m *metrics, log *slog.Logger) (*ackProducer, error) {
	p, err := sarama.NewAsyncProducer(k.Brokers, producerConfig(k))
	if err != nil {
		return nil, fmt.Errorf("connect producer to %v: %w", k.Brokers, err)
	}
	a := &ackProducer{
		p:       p,
		timeout: timeout,
		metrics: m,
		log:     log,
		closing: make(chan struct{}),
		drained: make(chan struct{}),
	}
	go a.dispatch()
	return a, nil
}

// dispatch hands each acknowledgement and error to the send waiting for
// it, until sarama closes its channels after Close.
func (a *ackProducer) dispatch() {
	defer close(a.drained)
	successes, errs := a.p.Successes(), a.p.Errors()
	for successes != nil || errs != nil {
		select {
		case msg, ok := <-successes:
			if !ok {
				successes = nil
				continue
			}
			a.deliver(msg, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			a.deliver(pe.Msg, pe.Err)
		}
	}
}

func (a *ackProducer) deliver(msg *sarama.ProducerMessage, err error) {
	a.metrics.pending.Add(-1)
	if msg == nil {
		return
	}
	results, ok := msg.Metadata.(chan<- ackResult)
	if !ok {
		a.log.Error("producer reported a message it was not given", "topic", msg.Topic, "err", err)
		return
	}
	// The channel has room for every message of its send, and each
	// message is reported once: this never blocks, even when the send
	// stopped waiting long ago.
	results <- ackResult{msg: msg, err: err}
}

func (a *ackProducer) SendMessageContext(ctx context.Context, msg *sarama.ProducerMessage) (int32, int64, error) {
	if err := a.send(ctx, []*sarama.ProducerMessage{msg}); err != nil {
		return -1, -1, err
	}
	return msg.Partition, msg.Offset, nil
}

func (a *ackProducer) SendMessagesContext(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	return a.send(ctx, msgs)
}

// send hands msgs to sarama and waits until Kafka acknowledged them all,
// one failed, or the deadline passed. msgs' Metadata is the producer's.
func (a *ackProducer) send(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	if len(msgs) == 0 {
		return nil
	}
	a.mu.RLock()
	if a.closed {
		a.mu.RUnlock()
		return errProducerClosed
	}
	a.sends.Add(1)
	a.mu.RUnlock()
	defer a.sends.Done()

	ctx, cancel := context.WithTimeoutCause(ctx, a.timeout, errProduceTimeout)
	defer cancel()
	a.metrics.inFlight.Add(1)
	defer a.metrics.inFlight.Add(-1)
	start := time.Now()
	err := a.await(ctx, msgs)
	result := resultOK
	switch {
	case err != nil && ctx.Err() != nil:
		result = resultTimeout
	case err != nil:
		result = resultError
	}
	a.metrics.produced(msgs[0].Topic, result, time.Since(start))
	return err
}

func (a *ackProducer) await(ctx context.Context, msgs []*sarama.ProducerMessage) error {
	results := make(chan ackResult, len(msgs))
	for i, msg := range msgs {
		msg.Metadata = (chan<- ackResult)(results)
		a.metrics.pending.Add(1)
		select {
		case a.p.Input() <- msg:
		case <-ctx.Done():
			a.metrics.pending.Add(-1)
			// The messages already handed over may still be written.
			return fmt.Errorf("handing %d of %d messages to the producer: %w", len(msgs)-i, len(msgs), context.Cause(ctx))
		}
	}
	for range msgs {
		select {
		case r := <-results:
			if r.err != nil {
				// The request fails as a whole; the rest of its messages
				// report to the buffered channel, which nobody reads.
				return fmt.Errorf("kafka refused a write to %s: %w", r.msg.Topic, r.err)
			}
		case <-ctx.Done():
			return fmt.Errorf("waiting for kafka: %w", context.Cause(ctx))
		}
	}
	return nil
}

// Close stops taking sends, waits for the sends under way to get their
// answer (each waits at most the produce timeout), then flushes and closes
// the producer. Messages whose requests stopped waiting are flushed too,
// for at most the produce timeout: their clients were answered 503, so
// losing them breaks no promise, and Close returns an error naming them.
func (a *ackProducer) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil
	}
	a.closed = true
	close(a.closing)
	a.mu.Unlock()

	a.sends.Wait()
	a.p.AsyncClose()
	timer := time.NewTimer(a.timeout)
	defer timer.Stop()
	select {
	case <-a.drained:
		return nil
	case <-timer.C:
		return fmt.Errorf("producer did not flush within %v: %d messages of requests answered 503 may be lost", a.timeout, a.metrics.pending.Load())
	}
}
