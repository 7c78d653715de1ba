package collector

import (
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

func (f failingProducer) SendMessage(*sarama.ProducerMessage) (int32, int64, error) {
	return -1, -1, f.err
}

func (f failingProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	errs := make(sarama.ProducerErrors, 0, len(msgs))
	for _, m := range msgs {
		errs = append(errs, &sarama.ProducerError{Msg: m, Err: f.err})
	}
	return errs
}
