package collector

import (
	"errors"
	"sync"

	"github.com/IBM/sarama"
)

// producer is the part of sarama.SyncProducer the collector uses.
type producer interface {
	SendMessage(msg *sarama.ProducerMessage) (partition int32, offset int64, err error)
	SendMessages(msgs []*sarama.ProducerMessage) error
	Close() error
}

// errProducerClosed is what a request gets that arrives after Close.
var errProducerClosed = errors.New("producer closed")

// closingProducer lets Close wait for the sends in flight and turns sends
// after Close into errors: sarama's producer panics on a send after Close,
// and an HTTP server may still answer a straggler.
type closingProducer struct {
	mu     sync.RWMutex
	closed bool
	p      producer
}

func (c *closingProducer) SendMessage(msg *sarama.ProducerMessage) (int32, int64, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return -1, -1, errProducerClosed
	}
	return c.p.SendMessage(msg)
}

func (c *closingProducer) SendMessages(msgs []*sarama.ProducerMessage) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed {
		return errProducerClosed
	}
	return c.p.SendMessages(msgs)
}

func (c *closingProducer) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	return c.p.Close()
}
