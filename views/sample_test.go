package views

import (
	"fmt"
	"hash/fnv"
	"math"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestEWMAFollowsASteadyRate(t *testing.T) {
	tests := []struct {
		rate  float64 // events per second
		tau   time.Duration
		after time.Duration
	}{
		{2000, fastTau, 10 * time.Second},
		{2000, slowTau, 30 * time.Second},
		{3, slowTau, 60 * time.Second},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%g/s tau %v", tt.rate, tt.tau), func(t *testing.T) {
			clock := newFakeClock()
			e := newEWMA(tt.tau)
			step := time.Duration(float64(time.Second) / tt.rate)
			for end := clock.now.Add(tt.after); clock.now.Before(end); clock.advance(step) {
				e.add(clock.now, 1)
			}
			if got := e.rate(clock.now); math.Abs(got-tt.rate)/tt.rate > 0.2 {
				t.Errorf("rate %.1f, want about %g", got, tt.rate)
			}
			clock.advance(10 * tt.tau)
			if got := e.rate(clock.now); got > tt.rate/1000 {
				t.Errorf("rate %.3f ten time constants after the last event", got)
			}
		})
	}
}

func TestArrivalsLetSmallBurstsThrough(t *testing.T) {
	const sampleRate = 5
	clock := newFakeClock()
	a := newArrivals()
	for range burstFactor * sampleRate {
		a.add(clock.now)
	}
	if r := a.rate(clock.now, sampleRate); r > sampleRate {
		t.Errorf("a burst of %d items rates %.1f/s, above the sample rate", burstFactor*sampleRate, r)
	}
	for range 100 {
		a.add(clock.now)
	}
	if r := a.rate(clock.now, sampleRate); r < 100 {
		t.Errorf("a burst of %d items rates %.1f/s", 100+burstFactor*sampleRate, r)
	}
}

func TestThreshold(t *testing.T) {
	tests := []struct {
		sample, arriving float64
		want             uint64
	}{
		{5, 0, fullSample},
		{5, 5, fullSample},
		{5, 10, fullSample / 2},
		{5, 2000, fullSample / 400},
	}
	for _, tt := range tests {
		if got := threshold(tt.sample, tt.arriving); got != tt.want {
			t.Errorf("threshold(%g, %g) = %d, want %d", tt.sample, tt.arriving, got, tt.want)
		}
	}
	if !kept("anything", fullSample) {
		t.Error("the full threshold drops a session")
	}
	if kept("anything", 0) {
		t.Error("the zero threshold keeps a session")
	}
}

func TestSessionHashIsFNV1a(t *testing.T) {
	for _, s := range []string{"", "web-1", "0190e0b4-5b3c-7f6a-9d2e-3c4b5a6d7e8f"} {
		h := fnv.New32a()
		h.Write([]byte(s))
		if got, want := sessionHash(s), h.Sum32(); got != want {
			t.Errorf("sessionHash(%q) = %d, want %d", s, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { sessionHash("web-1") }); n != 0 {
		t.Errorf("sessionHash allocates %v times", n)
	}
}

// TestHubShowsSmallBursts: a quiet account's handful of items arriving at
// once are all shown.
func TestHubShowsSmallBursts(t *testing.T) {
	clock := newFakeClock()
	opts := defaultHubOptions(clock)
	opts.sampleRate = 5
	h := testHub(opts)
	s, _ := h.subscribe("demo", 100, selection{})
	const n = burstFactor * 5
	for c := uint64(1); c <= n; c++ {
		h.publish("demo", mustUpdate(t, mkHit("demo", c, fmt.Sprintf("s-%d", c), "l", "c", livetabv1.Platform_PLATFORM_WEB)), true)
	}
	if got := s.queued(); got != n {
		t.Errorf("%d of a burst of %d items shown", got, n)
	}
}
