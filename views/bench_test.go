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

func drain(subs []*subscriber) {
	for _, s := range subs {
		for len(s.queue) > 0 {
			<-s.queue
		}
	}
}

// BenchmarkFanOut is the per-item path of the hub: history, sampling
// decision, and one filter match and queue send per subscriber.
func BenchmarkFanOut(b *testing.B) {
	for _, n := range []int{10, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			const chunk = 1024
			h, subs, tmpl := fanOutSetup(b, n, chunk)
			updates := make([]*update, chunk)
			var cursor uint64
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if i%chunk == 0 {
					b.StopTimer()
					drain(subs)
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
// shows: the per-item path allocates the same for 10 subscribers as for
// 1,000.
func TestFanOutAllocationsDoNotGrowWithSubscribers(t *testing.T) {
	allocs := func(n int) float64 {
		const runs = 200
		h, subs, tmpl := fanOutSetup(t, n, runs+10)
		updates := make([]*update, runs+1)
		for i := range updates {
			updates[i] = next(tmpl, uint64(i+1))
		}
		i := 0
		a := testing.AllocsPerRun(runs, func() {
			h.publish("demo", updates[i], true)
			i++
		})
		if got := len(subs[0].queue); got == 0 {
			t.Fatalf("%d subscribers: nothing was queued", n)
		}
		return a
	}
	few, many := allocs(10), allocs(1000)
	t.Logf("allocations per item: %.2f for 10 subscribers, %.2f for 1,000", few, many)
	if many > few+0.5 {
		t.Errorf("an item to 1,000 subscribers allocates %.2f times, to 10 %.2f: the fan-out allocates per subscriber", many, few)
	}
}
