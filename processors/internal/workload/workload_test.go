package workload_test

import (
	"testing"
	"time"

	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/workload"
)

// TestEnvelope checks what Generate promises: per match key, records
// within window plus grace of each other, and within the bounds.
func TestEnvelope(t *testing.T) {
	cfg := attribution.Config{}.WithDefaults()
	for seed := range uint64(20) {
		wl := workload.Generate(seed, time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC))
		type span struct{ lo, hi, hits, installs int64 }
		spans := map[string]*span{}
		add := func(key string, at int64, hit bool) {
			s := spans[key]
			if s == nil {
				s = &span{lo: at, hi: at}
				spans[key] = s
			}
			s.lo, s.hi = min(s.lo, at), max(s.hi, at)
			if hit {
				s.hits++
			} else {
				s.installs++
			}
		}
		for _, h := range wl.Hits {
			for _, k := range attribution.HitKeys(h) {
				add(k, h.GetReceivedUs(), true)
			}
		}
		for _, e := range wl.Events {
			if attribution.InstallLike(e.GetName()) {
				for _, k := range attribution.InstallKeys(e) {
					add(k, e.GetReceivedUs(), false)
				}
			}
		}
		for k, s := range spans {
			var w time.Duration
			switch k[:2] {
			case "c:":
				w = cfg.ClickWindow
			case "d:":
				w = cfg.DeviceWindow
			default:
				w = cfg.FingerprintWindow
			}
			if s.hi-s.lo > (w + cfg.Grace).Microseconds() {
				t.Errorf("seed %d: key %s spans %v", seed, k, time.Duration(s.hi-s.lo)*time.Microsecond)
			}
			if s.hits > attribution.MaxHits || s.installs > attribution.MaxInstalls {
				t.Errorf("seed %d: key %s has %d hits, %d installs", seed, k, s.hits, s.installs)
			}
		}
		// One install-like event per app session.
		seen := map[string]bool{}
		for _, e := range wl.Events {
			if attribution.InstallLike(e.GetName()) {
				if seen[e.GetSession()] {
					t.Errorf("seed %d: app session %s has two install-like events", seed, e.GetSession())
				}
				seen[e.GetSession()] = true
			}
		}
	}
}
