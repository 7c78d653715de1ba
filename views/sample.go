package views

import (
	"math"
	"time"
)

// Sampling keeps a client of a busy account at about Options.SampleRate
// items per second. The decision is made once per item for the account:
// an item is kept when the FNV-1a hash of its session (or of a session it
// is paired with) is below threshold(SampleRate, arriving rate), so that a
// kept session is kept whole while the rate holds, and as the rate rises
// the kept sessions are a subset of those kept before.

const (
	// fastTau and slowTau are the time constants of the arriving rate's
	// two moving averages: the fast one follows a burst within a second,
	// the slow one smooths Kafka's batched deliveries.
	fastTau = time.Second
	slowTau = 4 * time.Second
	// fullSample is the threshold that keeps every session.
	fullSample = uint64(1) << 32
)

// ewma is an exponentially weighted moving average of an event rate, in
// events per second, with time constant tau: every event adds 1/tau and
// the sum decays by e^(-dt/tau). A steady rate r converges to r.
type ewma struct {
	tau  float64 // seconds
	sum  float64 // as of last
	last time.Time
}

func newEWMA(tau time.Duration) ewma { return ewma{tau: tau.Seconds()} }

// decay brings the average forward to now.
func (e *ewma) decay(now time.Time) {
	if e.last.IsZero() {
		e.last = now
		return
	}
	if dt := now.Sub(e.last).Seconds(); dt > 0 {
		e.sum *= math.Exp(-dt / e.tau)
		e.last = now
	}
}

// add counts n events at now.
func (e *ewma) add(now time.Time, n float64) {
	e.decay(now)
	e.sum += n / e.tau
}

// rate is the average at now.
func (e *ewma) rate(now time.Time) float64 {
	if e.last.IsZero() {
		return 0
	}
	dt := now.Sub(e.last).Seconds()
	if dt <= 0 {
		return e.sum
	}
	return e.sum * math.Exp(-dt/e.tau)
}

// burstFactor: a burst is a fast average above burstFactor × the sample
// rate. Below, only the slow average counts, so that a handful of items
// arriving at once (up to about burstFactor × SampleRate) are all shown.
const burstFactor = 4

// arrivals is an account's arriving rate: the slow average, or during a
// burst the larger of the fast and the slow one, so that a sustained rise
// tightens the sample within a fraction of a second and a lull loosens it
// over a few seconds.
type arrivals struct{ fast, slow ewma }

func newArrivals() arrivals { return arrivals{fast: newEWMA(fastTau), slow: newEWMA(slowTau)} }

func (a *arrivals) add(now time.Time) {
	a.fast.add(now, 1)
	a.slow.add(now, 1)
}

// rate is the arriving rate at now for sampling at sampleRate.
func (a *arrivals) rate(now time.Time, sampleRate float64) float64 {
	slow := a.slow.rate(now)
	if fast := a.fast.rate(now); fast > burstFactor*sampleRate {
		return max(fast, slow)
	}
	return slow
}

// threshold is the hash threshold below which a session is kept:
// fraction × 2^32 with fraction = min(1, sampleRate / arriving).
func threshold(sampleRate, arriving float64) uint64 {
	if arriving <= sampleRate {
		return fullSample
	}
	return uint64(sampleRate / arriving * float64(fullSample))
}

// sessionHash is the FNV-1a hash of a session id; it does not allocate.
func sessionHash(s string) uint32 {
	const (
		offset = 2166136261
		prime  = 16777619
	)
	h := uint32(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= prime
	}
	return h
}

// kept reports whether session s is in the sample at threshold thr.
func kept(s string, thr uint64) bool {
	return uint64(sessionHash(s)) < thr
}
