package collector

import (
	"context"
	"time"

	"github.com/IBM/sarama"
)

// HoldLinks makes c's links view call gate before it applies each record,
// and bounds link writes' wait for their record to be applied by timeout.
// Call it before Run.
func HoldLinks(c *Collector, gate func(), timeout time.Duration) {
	c.links.beforeApply = gate
	c.visibleTimeout = timeout
}

// FailProducer makes every later produce of c fail with err, as when Kafka
// is unreachable. Call it before serving requests.
func FailProducer(c *Collector, err error) {
	c.producer = failingProducer{producer: c.producer, err: err}
}

type failingProducer struct {
	producer
	err error
}

func (f failingProducer) SendMessageContext(context.Context, *sarama.ProducerMessage) (int32, int64, error) {
	return -1, -1, f.err
}

func (f failingProducer) SendMessagesContext(_ context.Context, msgs []*sarama.ProducerMessage) error {
	errs := make(sarama.ProducerErrors, 0, len(msgs))
	for _, m := range msgs {
		errs = append(errs, &sarama.ProducerError{Msg: m, Err: f.err})
	}
	return errs
}

// ProducerConfig is the sarama configuration of the collector's producer.
var ProducerConfig = producerConfig

// ProduceInFlight is how many writes c's requests are waiting on.
func ProduceInFlight(c *Collector) int64 { return c.metrics.inFlight.Load() }

// ProducerPending is how many messages c's producer holds unanswered.
func ProducerPending(c *Collector) int64 { return c.metrics.pending.Load() }

// ProducerClosing is closed once c's Close has begun (and no new write is
// taken).
func ProducerClosing(c *Collector) <-chan struct{} {
	return c.producer.(*ackProducer).closing
}

// MaxEventRecord bounds the value of a record of livetab.events that holds
// several events.
const MaxEventRecord = maxEventRecord
