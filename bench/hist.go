package bench

import (
	"sync"
	"time"

	hdr "github.com/HdrHistogram/hdrhistogram-go"
)

// Latencies are recorded in microseconds into HDR histograms with three
// significant digits, from 1 µs to histMaxUs (larger values are clamped:
// the maximum then reads as 10 minutes).
const histMaxUs = int64(10 * time.Minute / time.Microsecond)

func newHist() *hdr.Histogram { return hdr.New(1, histMaxUs, 3) }

func recordUs(h *hdr.Histogram, us int64) {
	_ = h.RecordValue(min(max(us, 1), histMaxUs))
}

// Latency summarises a histogram, in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	Mean  float64 `json:"mean_ms"`
	P50   float64 `json:"p50_ms"`
	P90   float64 `json:"p90_ms"`
	P99   float64 `json:"p99_ms"`
	P999  float64 `json:"p99_9_ms"`
	Max   float64 `json:"max_ms"`
}

func summarize(h *hdr.Histogram) Latency {
	if h == nil || h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{
		Count: h.TotalCount(),
		Mean:  h.Mean() / 1000,
		P50:   ms(h.ValueAtQuantile(50)),
		P90:   ms(h.ValueAtQuantile(90)),
		P99:   ms(h.ValueAtQuantile(99)),
		P999:  ms(h.ValueAtQuantile(99.9)),
		Max:   ms(h.Max()),
	}
}

// metric names one latency the recorder keeps.
type metric int

const (
	// mE2E is collector accept (item received_at) → subscriber, for hit
	// and event items: the headline figure, also kept per interval.
	mE2E metric = iota
	mHit
	mEvent
	// mConversion is the install's accept → the conversion item at a
	// subscriber: two more hops (attribution, then liveview).
	mConversion
	// mHot is mE2E at the hot account's subscribers only.
	mHot
	// mViews is the liveview processor's emit (emitted_us) → subscriber.
	mViews
	// mProcessor is accept → the liveview processor's emit.
	mProcessor
	// mTapDelivery is emit → the generator's own consumer of the view
	// topic: Kafka's part of the views stage.
	mTapDelivery
	// mAckHit and mAckEvents are the collector's HTTP round trips: accept
	// → Kafka acknowledged → answered.
	mAckHit
	mAckEvents
	// mSchedule is how late the generator started a request after it was
	// due: the generator's own queueing.
	mSchedule
	numMetrics
)

// recorder collects latencies from many goroutines. Recording takes one
// shard's lock; the shards are merged when read.
type recorder struct {
	shards [16]recShard
}

type recShard struct {
	mu       sync.Mutex
	total    [numMetrics]*hdr.Histogram
	interval *hdr.Histogram // mE2E since the last takeInterval
	_        [64]byte       // keep shards' locks on separate cache lines
}

func newRecorder() *recorder {
	r := &recorder{}
	for i := range r.shards {
		s := &r.shards[i]
		for m := range s.total {
			s.total[m] = newHist()
		}
		s.interval = newHist()
	}
	return r
}

// record adds us to metric m, in the shard chosen by the caller (any
// number; callers spread over shards by their own id).
func (r *recorder) record(shard int, m metric, us int64) {
	s := &r.shards[uint(shard)%uint(len(r.shards))]
	s.mu.Lock()
	recordUs(s.total[m], us)
	if m == mE2E {
		recordUs(s.interval, us)
	}
	s.mu.Unlock()
}

// recordAll adds us to each of ms under one lock.
func (r *recorder) recordAll(shard int, us int64, ms ...metric) {
	s := &r.shards[uint(shard)%uint(len(r.shards))]
	s.mu.Lock()
	for _, m := range ms {
		recordUs(s.total[m], us)
		if m == mE2E {
			recordUs(s.interval, us)
		}
	}
	s.mu.Unlock()
}

// takeInterval returns mE2E since the last call and starts a new interval.
func (r *recorder) takeInterval() *hdr.Histogram {
	out := newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		out.Merge(s.interval)
		s.interval.Reset()
		s.mu.Unlock()
	}
	return out
}

// total returns metric m since the last reset.
func (r *recorder) total(m metric) *hdr.Histogram {
	out := newHist()
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		out.Merge(s.total[m])
		s.mu.Unlock()
	}
	return out
}

// reset clears every total, at the start of the measured window.
func (r *recorder) reset() {
	for i := range r.shards {
		s := &r.shards[i]
		s.mu.Lock()
		for _, h := range s.total {
			h.Reset()
		}
		s.mu.Unlock()
	}
}
