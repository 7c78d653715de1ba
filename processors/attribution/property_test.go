package attribution_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/internal/workload"
)

// TestShuffledDeliveryGivesTheSameConversions delivers generated
// workloads in many random orders, with redeliveries, through the goka
// tester, then lets the clock pass every grace period: the conversions
// must equal the reference computed over the whole workload, whatever the
// order.
func TestShuffledDeliveryGivesTheSameConversions(t *testing.T) {
	const (
		workloads = 3
		shuffles  = 10
	)
	for w := range uint64(workloads) {
		wl := workload.Generate(w, t0)
		ref := workload.Reference(attribution.Config{}, wl)
		if w == 0 {
			logShape(t, wl, ref)
		}
		for s := range uint64(shuffles) {
			seed := w<<32 | s
			rng := rand.New(rand.NewPCG(seed, 99))
			r := start(t, attribution.Options{})
			for _, rec := range wl.Shuffled(rng) {
				gokatest.Consume(t, r.tt, rec.Topic, rec.Key, rec.Msg)
			}
			r.tickUs(wl.LastReceivedUs() + (cfg.Grace + time.Second).Microseconds())
			if d := workload.Diff(r.conversions(), ref); d != "" {
				t.Fatalf("workload %d, shuffle seed %d (rand.NewPCG(%d, 99)): conversions differ from the reference:\n%s", w, s, seed, d)
			}
		}
	}
}

// logShape shows what a workload exercises, and fails when the generator
// stopped producing a case the test relies on.
func logShape(t *testing.T, wl workload.Workload, ref map[string]*livetabv1.Conversion) {
	t.Helper()
	installs := 0
	for _, e := range wl.Events {
		if attribution.InstallLike(e.GetName()) {
			installs++
		}
	}
	byMethod := map[livetabv1.MatchMethod]int{}
	multi := 0
	for _, c := range ref {
		byMethod[c.GetMethod()]++
		if c.GetCandidates() > 1 {
			multi++
		}
	}
	t.Logf("workload 0: %d hits, %d events, %d installs, %d conversions %v, %d fingerprint matches with several candidates",
		len(wl.Hits), len(wl.Events), installs, len(ref), byMethod, multi)
	for _, m := range []livetabv1.MatchMethod{byClick, byDevice, byFingerprint} {
		if byMethod[m] == 0 {
			t.Errorf("the workload converts nothing by %v", m)
		}
	}
	if installs-len(ref) < 4 {
		t.Errorf("the workload has %d organic installs, want several", installs-len(ref))
	}
}
