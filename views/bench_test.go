package views

import (
	"fmt"
	"testing"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// fanOutSetup is a hub with n subscribers of one account, a quarter each
// without filters, for kind hit, for one session, and for a link on a
// platform, and a template item they mostly match.
func fanOutSetup(tb testing.TB, n, queue int) (*hub, []*subscriber, *update) {
	tb.Helper()
	clock := newFakeClock()
	h := testHub(defaultHubOptions(clock)) // no sampling: the worst case
	filters := []filtersJSON{
		{},
		{Kind: kindList{"hit"}},
		{Session: "web-1"},
		{Link: "spring", Platform: "ios"},
	}
	subs := make([]*subscriber, n)
	for i := range subs {
		subs[i], _ = h.subscribe("demo", queue, sel(tb, filters[i%len(filters)]))
	}
	it := mkHit("demo", 1, "web-1", "spring", "spring-sale", livetabv1.Platform_PLATFORM_IOS)
	it.GetHit().Request = &livetabv1.Request{Ip: "192.0.2.1", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
		Referrer: "https://news.example/", AcceptLanguage: "en-GB,en;q=0.9", Params: map[string]string{"utm_source": "news"}}
	return h, subs, mustUpdate(tb, it)
}

// next is a new version of the template with cursor c, as the view
// callback would have built it.
func next(tmpl *update, c uint64) *update {
	u := *tmpl
	u.cursor = c
	return &u
}

// drain empties the subscribers' queues as their writers would, into
// batch (reused: draining allocates nothing).
func drain(subs []*subscriber, batch []delivery) []delivery {
	for _, s := range subs {
		for batch = s.take(batch, maxBatchFrames, maxBatchBytes); len(batch) > 0; batch = s.take(batch, maxBatchFrames, maxBatchBytes) {
			clear(batch)
		}
	}
	return batch
}

// BenchmarkFanOut is the per-item path of the hub: history, sampling
// decision, and one filter match and queue push per subscriber. The
// queues are grown to a chunk's size first, as a busy connection's are.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			const chunk = 1024
			h, subs, tmpl := fanOutSetup(b, n, chunk)
			updates := make([]*update, chunk)
			var batch []delivery
			var cursor uint64
			for range chunk {
				cursor++
				h.publish("demo", next(tmpl, cursor), true)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%chunk == 0 {
					b.StopTimer()
					batch = drain(subs, batch)
					for j := range updates {
						cursor++
						updates[j] = next(tmpl, cursor)
					}
					b.StartTimer()
				}
				h.publish("demo", updates[i%chunk], true)
			}
			b.StopTimer()
			if h.stats.slow.Load() != 0 {
				b.Fatal("a subscriber was dropped")
			}
		})
	}
}

// BenchmarkItemFrame is the once-per-item encoding: the item's JSON and
// its frame.
func BenchmarkItemFrame(b *testing.B) {
	it := mkHit("demo", 1, "web-1", "spring", "spring-sale", livetabv1.Platform_PLATFORM_IOS)
	it.GetHit().Request = &livetabv1.Request{Ip: "192.0.2.1", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
		Referrer: "https://news.example/", AcceptLanguage: "en-GB,en;q=0.9", Params: map[string]string{"utm_source": "news"}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newUpdate(it, "demo"); err != nil {
			b.Fatal(err)
		}
	}
}

// TestFanOutAllocationsDoNotGrowWithSubscribers guards what the benchmark
// shows: once the subscribers' queues have grown to what they hold
// between two drains, the per-item path allocates the same for 10
// subscribers as for 1,000.
func TestFanOutAllocationsDoNotGrowWithSubscribers(t *testing.T) {
	allocs := func(n int) float64 {
		const runs, every = 400, 50 // items, and items between drains
		h, subs, tmpl := fanOutSetup(t, n, every+10)
		updates := make([]*update, 2*runs+2)
		for i := range updates {
			updates[i] = next(tmpl, uint64(i+1))
		}
		batch := make([]delivery, 0, maxBatchFrames)
		i := 0
		publish := func() {
			if i%every == 0 {
				batch = drain(subs, batch)
			}
			h.publish("demo", updates[i], true)
			i++
		}
		for range runs {
			publish() // the queues grow to their working size
		}
		a := testing.AllocsPerRun(runs, publish)
		if got := subs[0].queued(); got == 0 {
			t.Fatalf("%d subscribers: nothing was queued", n)
		}
		if got := h.stats.slow.Load(); got != 0 {
			t.Fatalf("%d subscribers dropped as slow", got)
		}
		return a
	}
	few, many := allocs(10), allocs(1000)
	t.Logf("allocations per item: %.2f for 10 subscribers, %.2f for 1,000", few, many)
	if many > few+0.5 {
		t.Errorf("an item to 1,000 subscribers allocates %.2f times, to 10 %.2f: the fan-out allocates per subscriber", many, few)
	}
}
