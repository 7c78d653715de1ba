package topics

import (
	"hash"
	"hash/fnv"

	"github.com/IBM/sarama"
)

// KeySeparator splits a compound key ("account/slot", "account/slug"). Only
// the part before it decides the partition, so every key of one account
// lands in the account's partition, in order.
const KeySeparator = "/"

// Hasher is the partitioning hash of every producer and goka group livetab
// runs: FNV-1a (goka's default) over the key up to the first KeySeparator.
// Keys without a separator hash exactly as goka's default does. Collector,
// processors and views must all use it, or goka tables would be read from
// the wrong partition.
func Hasher() hash.Hash32 { return &prefixHash{h: fnv.New32a()} }

// Partitioner is Hasher as a sarama partitioner.
func Partitioner(topic string) sarama.Partitioner {
	return sarama.NewCustomHashPartitioner(Hasher)(topic)
}

type prefixHash struct {
	h    hash.Hash32
	done bool
}

func (p *prefixHash) Write(b []byte) (int, error) {
	n := len(b)
	if p.done {
		return n, nil
	}
	for i, c := range b {
		if c == KeySeparator[0] {
			p.done = true
			b = b[:i]
			break
		}
	}
	p.h.Write(b)
	return n, nil
}

func (p *prefixHash) Sum(b []byte) []byte { return p.h.Sum(b) }
func (p *prefixHash) Sum32() uint32       { return p.h.Sum32() }
func (p *prefixHash) Reset()              { p.h.Reset(); p.done = false }
func (p *prefixHash) Size() int           { return p.h.Size() }
func (p *prefixHash) BlockSize() int      { return p.h.BlockSize() }
