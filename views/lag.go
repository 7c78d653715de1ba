package views

import (
	"sync"
	"sync/atomic"
)

// lagMeter measures the view consumer's lag: the view topic's high
// watermarks minus the offsets consumed, summed over partitions. The view
// callback records what it consumed; Run polls the consumer's high
// watermarks.
type lagMeter struct {
	next sync.Map // partition (int32) → *atomic.Int64, the next offset to consume
	lag  atomic.Int64
}

// consumed records that offset of partition was consumed.
func (l *lagMeter) consumed(partition int32, offset int64) {
	v, ok := l.next.Load(partition)
	if !ok {
		v, _ = l.next.LoadOrStore(partition, new(atomic.Int64))
	}
	v.(*atomic.Int64).Store(offset + 1)
}

// update computes the lag from the partitions' high watermarks (the
// offset the next record will get). A partition nothing was consumed of
// lags by its whole high watermark.
func (l *lagMeter) update(hwms map[int32]int64) {
	var lag int64
	for p, hwm := range hwms {
		var next int64
		if v, ok := l.next.Load(p); ok {
			next = v.(*atomic.Int64).Load()
		}
		lag += max(0, hwm-next)
	}
	l.lag.Store(lag)
}

func (l *lagMeter) get() int64 { return l.lag.Load() }
