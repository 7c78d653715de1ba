package procutil

import (
	"fmt"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/topics"
)

// Partitions asks k's brokers how many partitions topic has.
func Partitions(k topics.Kafka, topic string) (int32, error) {
	c, err := sarama.NewClient(k.Brokers, k.SaramaConfig("metadata"))
	if err != nil {
		return 0, fmt.Errorf("procutil: connect to %v: %w", k.Brokers, err)
	}
	defer c.Close()
	parts, err := c.Partitions(topic)
	if err != nil {
		return 0, fmt.Errorf("procutil: partitions of %s: %w", topic, err)
	}
	return int32(len(parts)), nil
}
