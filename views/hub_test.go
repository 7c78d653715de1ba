package views

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// fakeClock is a hub clock that tests move by hand.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time          { return c.now }
func (c *fakeClock) advance(d time.Duration) { c.now = c.now.Add(d) }
func newFakeClock() *fakeClock               { return &fakeClock{now: time.Unix(1_750_000_000, 0)} }
func testHub(opts hubOptions) *hub           { return newHub(slog.New(slog.DiscardHandler), opts) }

// defaultHubOptions sample nothing: tests publish many items at one
// instant of the fake clock.
func defaultHubOptions(c *fakeClock) hubOptions {
	return hubOptions{historySize: 1000, historyBytes: 1 << 30, sampleRate: 1e9, now: c.Now}
}

func sel(t testing.TB, f filtersJSON) selection { return mustSelection(t, f, false, 0) }
func resumeSel(t testing.TB, f filtersJSON, c uint64) selection {
	return mustSelection(t, f, true, c)
}

func mustSelection(t testing.TB, fj filtersJSON, resume bool, cursor uint64) selection {
	t.Helper()
	f, echo, err := compile(fj)
	if err != nil {
		t.Fatalf("test filters %+v: %v", fj, err)
	}
	return selection{filter: f, echo: echo, resume: resume, cursor: cursor}
}

func mustUpdate(t testing.TB, it *livetabv1.ViewItem) *update {
	t.Helper()
	u, err := newUpdate(it, it.GetAccount())
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func mkHit(account string, cursor uint64, session, link, campaign string, p livetabv1.Platform) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{
		Cursor: cursor, Account: account, Kind: livetabv1.Kind_KIND_HIT, Session: session,
		ReceivedUs: t0 + int64(cursor), Counters: counters(cursor),
		Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Id: fmt.Sprintf("hit-%d", cursor), Account: account,
			Session: session, Link: link, Campaign: campaign, Platform: p, ReceivedUs: t0 + int64(cursor)}},
	}
}

func mkEvent(account string, cursor uint64, session, name string, p livetabv1.Platform) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{
		Cursor: cursor, Account: account, Kind: livetabv1.Kind_KIND_EVENT, Session: session,
		ReceivedUs: t0 + int64(cursor), Counters: counters(cursor),
		Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{Id: fmt.Sprintf("event-%d", cursor), Account: account,
			Session: session, Name: name, Platform: p, ReceivedUs: t0 + int64(cursor)}},
	}
}

func mkConversion(account string, cursor uint64, hitSession, appSession, link string) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{
		Cursor: cursor, Account: account, Kind: livetabv1.Kind_KIND_CONVERSION, Session: appSession,
		ReceivedUs: t0 + int64(cursor), Counters: counters(cursor),
		Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{Id: fmt.Sprintf("conv-%d", cursor),
			Account: account, HitSession: hitSession, AppSession: appSession, Link: link, Campaign: "spring-sale",
			Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID}},
	}
}

// marked is ev marked as converted with hitSession.
func marked(ev *livetabv1.ViewItem, hitSession string) *livetabv1.ViewItem {
	m := proto.CloneOf(ev)
	m.ConvertedWith = &livetabv1.ConvertedWith{Session: hitSession, Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID}
	return m
}

// queued drains s's queue as "item 3" / "update 2" strings.
func queued(s *subscriber) []string {
	var out []string
	for _, d := range queuedDeliveries(s) {
		typ := "item"
		if d.update {
			typ = "update"
		}
		var f frame
		if err := json.Unmarshal(d.frame(), &f); err != nil || f.Type != typ || f.Item == nil || f.Item.Cursor != d.u.cursor {
			out = append(out, fmt.Sprintf("bad frame %s (%v)", d.frame(), err))
			continue
		}
		out = append(out, fmt.Sprintf("%s %d", typ, d.u.cursor))
	}
	return out
}

func TestHubDropsOnlyTheFullSubscriber(t *testing.T) {
	h := testHub(defaultHubOptions(newFakeClock()))
	full, _ := h.subscribe("demo", 1, selection{})
	roomy, _ := h.subscribe("demo", 10, selection{})
	other, _ := h.subscribe("acme", 10, selection{})

	h.publish("demo", mustUpdate(t, hitItem("demo", 1)), true)
	h.publish("demo", mustUpdate(t, hitItem("demo", 2)), true) // full's queue holds 1 already

	if !full.stopped() {
		t.Fatal("the full subscriber was not stopped")
	}
	if full.reason.code != websocket.StatusPolicyViolation || full.reason.text != "too slow: outgoing queue full" {
		t.Errorf("reason %+v", full.reason)
	}
	if roomy.queued() != 2 {
		t.Errorf("the other subscriber got %d updates, want 2", roomy.queued())
	}
	if other.queued() != 0 {
		t.Errorf("acme's subscriber got %d of demo's updates", other.queued())
	}
	h.publish("demo", mustUpdate(t, hitItem("demo", 3)), true)
	if full.queued() != 1 {
		t.Errorf("a dropped subscriber still gets updates")
	}
	if got := h.stats.slow.Load(); got != 1 {
		t.Errorf("slow = %d, want 1", got)
	}

	h.close()
	for _, s := range []*subscriber{roomy, other} {
		if !s.stopped() || s.reason != reasonShutdown {
			t.Errorf("after close: stopped %v, reason %+v", s.stopped(), s.reason)
		}
	}
	if late, _ := h.subscribe("demo", 1, selection{}); !late.stopped() {
		t.Error("a closed hub accepted a subscriber")
	}
}

// TestHubFramesPerSubscriber follows one account through hits, an
// install, its conversion and a later event, and checks what each kind
// of subscription is sent.
func TestHubFramesPerSubscriber(t *testing.T) {
	const (
		ios     = livetabv1.Platform_PLATFORM_IOS
		android = livetabv1.Platform_PLATFORM_ANDROID
		web     = livetabv1.Platform_PLATFORM_WEB
	)
	install := mkEvent("demo", 2, "app-1", "install", android)
	items := []*livetabv1.ViewItem{
		mkHit("demo", 1, "web-1", "spring", "spring-sale", ios),
		install,
		mkHit("demo", 3, "web-2", "autumn", "autumn-sale", web),
		marked(install, "web-1"),                            // the conversion marks the install (same cursor)...
		mkConversion("demo", 4, "web-1", "app-1", "spring"), // ...then comes itself
		mkEvent("demo", 5, "app-1", "open", android),
		mkEvent("demo", 6, "app-2", "install", ios),
	}
	tests := []struct {
		name    string
		filters filtersJSON
		want    []string
	}{
		{"no filter", filtersJSON{}, []string{"item 1", "item 2", "item 3", "update 2", "item 4", "item 5", "item 6"}},
		{"hit session, then its app session once paired", filtersJSON{Session: "web-1"},
			[]string{"item 1", "item 2", "item 4", "item 5"}},
		{"app session", filtersJSON{Session: "app-1"}, []string{"item 2", "update 2", "item 4", "item 5"}},
		{"kinds", filtersJSON{Kind: kindList{"conversion", "hit"}}, []string{"item 1", "item 3", "item 4"}},
		{"event name", filtersJSON{Event: "install"}, []string{"item 2", "update 2", "item 6"}},
		{"link", filtersJSON{Link: "spring"}, []string{"item 1", "item 4"}},
		{"campaign", filtersJSON{Campaign: "autumn-sale"}, []string{"item 3"}},
		{"platform", filtersJSON{Platform: "android"}, []string{"item 2", "update 2", "item 5"}},
		{"every filter must match", filtersJSON{Platform: "ios", Kind: kindList{"event"}}, []string{"item 6"}},
		{"nothing", filtersJSON{Session: "nobody"}, nil},
	}
	h := testHub(defaultHubOptions(newFakeClock()))
	subs := make([]*subscriber, len(tests))
	for i, tt := range tests {
		subs[i], _ = h.subscribe("demo", 100, sel(t, tt.filters))
	}
	for _, it := range items {
		h.publish("demo", mustUpdate(t, it), true)
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := queued(subs[i]); !slices.Equal(got, tt.want) {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}

	// A snapshot under a session filter includes what pairing learned.
	_, v := h.subscribe("demo", 10, sel(t, filtersJSON{Session: "web-1"}))
	if got := cursorsOfUpdates(v.items); !slices.Equal(got, []uint64{1, 2, 4, 5}) {
		t.Errorf("snapshot for web-1: %v, want [1 2 4 5]", got)
	}
	if v.sampled || v.cursor != 6 || v.counters != encodeCounters(counters(6)) {
		t.Errorf("snapshot sampled %v cursor %d counters %+v", v.sampled, v.cursor, v.counters)
	}
}

func cursorsOfUpdates(us []*update) []uint64 {
	cs := make([]uint64, len(us))
	for i, u := range us {
		cs[i] = u.cursor
	}
	return cs
}

func TestHubSnapshotResumeSkipped(t *testing.T) {
	opts := defaultHubOptions(newFakeClock())
	opts.historySize = 150
	h := testHub(opts)
	itemAt := func(c uint64) *livetabv1.ViewItem {
		it := hitItem("demo", c)
		if c%2 == 0 {
			it.GetHit().Link = "even"
		}
		return it
	}
	for c := uint64(1); c <= 300; c++ {
		h.publish("demo", mustUpdate(t, itemAt(c)), true)
	}
	seq := func(from, to, step uint64) []uint64 {
		var out []uint64
		for c := from; c <= to; c += step {
			out = append(out, c)
		}
		return out
	}
	tests := []struct {
		name        string
		sel         selection
		wantSkipped *skippedFrame
		wantResume  bool
		want        []uint64
	}{
		{"snapshot", sel(t, filtersJSON{}), nil, false, seq(201, 300, 1)},
		{"filtered snapshot", sel(t, filtersJSON{Link: "even"}), nil, false, seq(152, 300, 2)},
		{"resume", resumeSel(t, filtersJSON{}, 250), nil, true, seq(251, 300, 1)},
		{"resume filtered", resumeSel(t, filtersJSON{Link: "even"}, 151), nil, true, seq(152, 300, 2)},
		{"resume at the oldest held", resumeSel(t, filtersJSON{}, 150), nil, true, seq(151, 300, 1)},
		{"resume up to date", resumeSel(t, filtersJSON{}, 300), nil, true, nil},
		{"cursor too old", resumeSel(t, filtersJSON{}, 10),
			&skippedFrame{Type: "skipped", After: 10, Oldest: 151, Reason: reasonTooOld}, false, seq(201, 300, 1)},
		{"cursor ahead", resumeSel(t, filtersJSON{}, 400),
			&skippedFrame{Type: "skipped", After: 400, Oldest: 151, Reason: reasonAhead}, false, seq(201, 300, 1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, v := h.subscribe("demo", 10, tt.sel)
			defer h.unsubscribe(s)
			if (v.skipped == nil) != (tt.wantSkipped == nil) || (v.skipped != nil && *v.skipped != *tt.wantSkipped) {
				t.Errorf("skipped %+v, want %+v", v.skipped, tt.wantSkipped)
			}
			if v.resume != tt.wantResume {
				t.Errorf("resume %v, want %v", v.resume, tt.wantResume)
			}
			if got := cursorsOfUpdates(v.items); !slices.Equal(got, tt.want) {
				t.Errorf("items %v, want %v", got, tt.want)
			}
			frames := v.frames()
			var types []string
			for _, b := range frames {
				var f struct{ Type string }
				if err := json.Unmarshal(b, &f); err != nil {
					t.Fatalf("frame %s: %v", b, err)
				}
				types = append(types, f.Type)
			}
			wantTypes := []string{"snapshot"}
			switch {
			case tt.wantResume:
				wantTypes = []string{"resume"}
			case tt.wantSkipped != nil:
				wantTypes = []string{"skipped", "snapshot"}
			}
			if !slices.Equal(types, wantTypes) {
				t.Errorf("frames %v, want %v", types, wantTypes)
			}
			// A new version of an item the client had before its cursor is
			// an update to it.
			h.publish("demo", mustUpdate(t, itemAt(290)), true)
			want := []string{"update 290"}
			if got := queued(s); !slices.Equal(got, want) {
				t.Errorf("after re-emitting 290: %q, want %q", got, want)
			}
		})
	}
}

func TestHubResubscribeDropsWhatWasQueued(t *testing.T) {
	h := testHub(defaultHubOptions(newFakeClock()))
	s, _ := h.subscribe("demo", 10, selection{})
	h.publish("demo", mustUpdate(t, hitItem("demo", 1)), true)
	h.publish("demo", mustUpdate(t, eventItem("demo", 2, "app-1")), true)
	v, ok := h.resubscribe(s, sel(t, filtersJSON{Kind: kindList{"event"}}))
	if !ok || s.queued() != 0 {
		t.Fatalf("resubscribe: ok %v, %d frames still queued", ok, s.queued())
	}
	if got := cursorsOfUpdates(v.items); !slices.Equal(got, []uint64{2}) || v.echo.Kind[0] != "event" {
		t.Errorf("snapshot %v echo %+v, want [2] for kind event", got, v.echo)
	}
	h.publish("demo", mustUpdate(t, hitItem("demo", 3)), true)
	h.publish("demo", mustUpdate(t, eventItem("demo", 4, "app-2")), true)
	if got := queued(s); !slices.Equal(got, []string{"item 4"}) {
		t.Errorf("after resubscribe: %q", got)
	}
	s.stop(reasonSlow)
	if _, ok := h.resubscribe(s, selection{}); ok {
		t.Error("a stopped subscriber resubscribed")
	}
}

func TestHubForgetsEmptyAccounts(t *testing.T) {
	h := testHub(defaultHubOptions(newFakeClock()))
	s, _ := h.subscribe("quiet", 1, selection{})
	h.unsubscribe(s)
	h.unsubscribe(s)
	h.mu.RLock()
	n := len(h.accounts)
	h.mu.RUnlock()
	if n != 0 {
		t.Errorf("%d accounts kept after their only subscriber left", n)
	}
	// A subscriber of a forgotten account still works through a new one.
	s, _ = h.subscribe("quiet", 1, selection{})
	h.publish("quiet", mustUpdate(t, hitItem("quiet", 1)), true)
	if got := queued(s); !slices.Equal(got, []string{"item 1"}) {
		t.Errorf("got %q", got)
	}
	h.unsubscribe(s)
	if h.historyLen("quiet") != 1 {
		t.Error("an account with history was forgotten")
	}
}

// TestHubSampling runs an account at 2,000 items/s on a fake clock, in
// sessions of four items, and checks that an unfiltered subscriber gets
// about the sample rate, in whole sessions, with the conversions of the
// sessions it was shown.
func TestHubSampling(t *testing.T) {
	const (
		rate       = 2000
		perSession = 4
		seconds    = 12
		warmUp     = 2 // seconds before counting
	)
	clock := newFakeClock()
	opts := defaultHubOptions(clock)
	opts.sampleRate = 5
	h := testHub(opts)
	s, _ := h.subscribe("busy", 1<<16, selection{})
	filtered, _ := h.subscribe("busy", 1<<16, sel(t, filtersJSON{Kind: kindList{"hit"}}))

	produced := map[string]int{} // session → hits produced after the warm-up
	converted := map[uint64]string{}
	var cursor, steadyFrom uint64
	hits := 0
	for i := range rate * seconds {
		clock.advance(time.Second / rate)
		if i == rate*warmUp {
			steadyFrom = cursor + 1
		}
		cursor++
		session := fmt.Sprintf("s-%d", i/perSession)
		h.publish("busy", mustUpdate(t, mkHit("busy", cursor, session, "l", "c", livetabv1.Platform_PLATFORM_WEB)), true)
		hits++
		if steadyFrom != 0 {
			produced[session]++
		}
		if i%perSession == perSession-1 && i/perSession%50 == 0 {
			// Every 50th session converts.
			cursor++
			h.publish("busy", mustUpdate(t, mkConversion("busy", cursor, session, "app-"+session, "l")), true)
			converted[cursor] = session
		}
	}

	shown := map[string]int{} // session → hits shown after the warm-up
	anyShown := map[string]bool{}
	convShown := map[string]bool{}
	counted := 0
	for _, d := range queuedDeliveries(s) {
		if d.update {
			t.Fatalf("update %d: nothing was re-emitted", d.u.cursor)
		}
		if d.u.attrs.kind == kindConversion {
			convShown[d.u.attrs.hitSession] = true
			continue
		}
		anyShown[d.u.attrs.session] = true
		if d.u.cursor >= steadyFrom {
			shown[d.u.attrs.session]++
			counted++
		}
	}
	perSecond := float64(counted) / float64(seconds-warmUp)
	t.Logf("shown %.1f items/s of %d/s, %d sessions", perSecond, rate, len(shown))
	if perSecond < 5*0.5 || perSecond > 5*1.5 {
		t.Errorf("shown %.1f items/s, want about 5", perSecond)
	}
	for sess, n := range shown {
		if produced[sess] == perSession && n != perSession {
			t.Errorf("session %s: %d of its %d hits shown", sess, n, perSession)
		}
	}
	for _, sess := range converted {
		if anyShown[sess] && !convShown[sess] {
			t.Errorf("the conversion of shown session %s was not shown", sess)
		}
	}
	if st := h.status(s); !st.sampled || st.arriving < rate*0.9 || st.arriving > rate*1.1 {
		t.Errorf("status: sampled %v, arriving %.1f/s, want sampled at about %d/s", st.sampled, st.arriving, rate)
	}
	if st := h.status(filtered); st.sampled {
		t.Error("a filtered subscriber is reported sampled")
	}
	if n := filtered.queued(); n != hits {
		t.Errorf("the filtered subscriber got %d hits of %d", n, hits)
	}

	// Once the account is quiet, everything is shown again.
	clock.advance(time.Minute)
	cursor++
	h.publish("busy", mustUpdate(t, mkHit("busy", cursor, "late", "l", "c", livetabv1.Platform_PLATFORM_WEB)), true)
	if got := queued(s); !slices.Equal(got, []string{fmt.Sprintf("item %d", cursor)}) {
		t.Errorf("after a quiet minute: %q", got)
	}
}

// queuedDeliveries drains s's queue.
func queuedDeliveries(s *subscriber) []delivery {
	var out []delivery
	for batch := s.take(nil, 1<<20, 1<<30); len(batch) > 0; batch = s.take(nil, 1<<20, 1<<30) {
		out = append(out, batch...)
	}
	return out
}

func TestHubTrimsLeastRecentlyActive(t *testing.T) {
	clock := newFakeClock()
	opts := defaultHubOptions(clock)
	opts.historySize = 400
	h := testHub(opts)
	for c := uint64(1); c <= 400; c++ {
		h.publish("old", mustUpdate(t, hitItem("old", c)), false)
	}
	clock.advance(time.Second)
	for c := uint64(1); c <= 400; c++ {
		h.publish("new", mustUpdate(t, hitItem("new", c)), false)
	}
	if h.historyLen("old") != 400 || h.historyLen("new") != 400 {
		t.Fatalf("histories %d and %d, want 400 each", h.historyLen("old"), h.historyLen("new"))
	}
	// Lower the bound to what 600 items take: the old account goes down
	// to its newest 100 items, the newer one keeps its 400.
	h.opts.historyBytes = h.bytes.Load() / 800 * 600
	h.nextTrim.Store(h.opts.historyBytes)
	clock.advance(time.Second)
	h.publish("new", mustUpdate(t, hitItem("new", 401)), false)
	if got := h.historyLen("old"); got != topics.ViewSlots {
		t.Errorf("old account keeps %d items, want %d", got, topics.ViewSlots)
	}
	if got := h.historyLen("new"); got != 400 {
		t.Errorf("new account keeps %d items, want 400", got)
	}
	if h.bytes.Load() > h.opts.historyBytes {
		t.Errorf("%d bytes held, bound %d", h.bytes.Load(), h.opts.historyBytes)
	}
	// The newest 100 are never trimmed, however low the bound.
	h.opts.historyBytes = 1
	h.nextTrim.Store(1)
	h.publish("new", mustUpdate(t, hitItem("new", 402)), false)
	if h.historyLen("new") != topics.ViewSlots || h.historyLen("old") != topics.ViewSlots {
		t.Errorf("histories %d and %d, want %d each", h.historyLen("old"), h.historyLen("new"), topics.ViewSlots)
	}
	if next := h.nextTrim.Load(); next <= h.bytes.Load() {
		t.Errorf("next trim at %d with %d bytes held: every record would trim again", next, h.bytes.Load())
	}
}

func TestSeenSet(t *testing.T) {
	var s seenSet
	s.reset(10)
	s.set(10)
	s.set(3)
	s.set(11) // beyond hi: ignored
	for c, want := range map[uint64]bool{10: true, 3: true, 4: false, 11: false} {
		if s.has(c) != want {
			t.Errorf("has(%d) = %v", c, !want)
		}
	}
	s.advance(10 + seenWindow - 1)
	if !s.has(10) || s.has(3) {
		t.Errorf("after advancing near the window's edge: has(10) %v has(3) %v", s.has(10), s.has(3))
	}
	s.advance(10 + seenWindow)
	if s.has(10) {
		t.Error("a cursor out of the window is still seen")
	}
	s.set(10 + seenWindow)
	s.advance(10 + 5*seenWindow)
	if s.has(10 + seenWindow) {
		t.Error("a jump beyond the window kept old bits")
	}
}

func TestRing(t *testing.T) {
	u := func(c uint64, size int) *update { return &update{cursor: c, size: size} }
	r := ring{max: 4}
	for _, c := range []uint64{1, 2, 3, 5} {
		if d := r.put(u(c, 10)); d != 10 {
			t.Fatalf("put %d: delta %d", c, d)
		}
	}
	if _, whole := r.after(2); whole {
		t.Error("after(2) is whole despite the gap at 4")
	}
	if rest, whole := r.after(4); !whole || len(rest) != 1 {
		t.Errorf("after(4): %d items, whole %v", len(rest), whole)
	}
	if d := r.put(u(4, 10)); d != 0 || r.oldest() != 2 || r.len() != 4 { // gap filled, 1 evicted
		t.Errorf("gap fill: delta %d, oldest %d, len %d", d, r.oldest(), r.len())
	}
	if rest, whole := r.after(1); !whole || len(rest) != 4 {
		t.Errorf("after(1): %d items, whole %v", len(rest), whole)
	}
	if d := r.put(u(3, 25)); d != 15 || r.get(3).size != 25 {
		t.Errorf("replace: delta %d", d)
	}
	if d := r.put(u(1, 10)); d != 0 || r.get(1) != nil {
		t.Error("an item older than a full ring was stored")
	}
	if d := r.put(u(6, 10)); d != 0 || r.oldest() != 3 || r.newest() != 6 {
		t.Errorf("push: delta %d, oldest %d, newest %d", d, r.oldest(), r.newest())
	}
	if freed := r.trim(2); freed != 35 || r.oldest() != 5 || r.bytes != 20 {
		t.Errorf("trim: freed %d, oldest %d, bytes %d", freed, r.oldest(), r.bytes)
	}
	if _, whole := r.after(2); whole {
		t.Error("after(2) is whole although 3 and 4 were evicted")
	}
	var empty ring
	if rest, whole := empty.after(0); !whole || rest != nil || empty.oldest() != 0 {
		t.Error("empty ring")
	}
}

func TestPairs(t *testing.T) {
	p := pairs{max: 2}
	p.add("web-1", "app-1")
	p.add("web-1", "app-1")
	p.add("web-1", "app-2")
	p.add("", "app-3")
	p.add("x", "x")
	if !p.paired("app-1", "web-1") || !p.paired("web-1", "app-2") || p.paired("app-1", "app-2") {
		t.Errorf("pairs %v", p.partners)
	}
	p.add("web-3", "app-3") // evicts web-1/app-1
	if p.paired("web-1", "app-1") || !p.paired("web-1", "app-2") || !p.paired("app-3", "web-3") {
		t.Errorf("after eviction: %v", p.partners)
	}
	if len(p.partners) != 4 {
		t.Errorf("partners %v: an evicted session is still mapped", p.partners)
	}
}

func TestMapStorage(t *testing.T) {
	st, err := mapBuilder()("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := st.GetOffset(-3); off != -3 {
		t.Errorf("fresh offset %d, want the default", off)
	}
	st.SetOffset(42)
	if off, _ := st.GetOffset(-3); off != 42 {
		t.Errorf("offset %d, want 42", off)
	}
	for _, k := range []string{"b", "d", "a", "c"} {
		st.Set(k, []byte("v"+k))
	}
	st.Delete("d")
	if v, _ := st.Get("d"); v != nil {
		t.Errorf("deleted key still holds %q", v)
	}
	if ok, _ := st.Has("a"); !ok {
		t.Error("Has(a) = false")
	}
	keys := func(it storage.Iterator) []string {
		var ks []string
		for it.Next() {
			v, _ := it.Value()
			if string(v) != "v"+string(it.Key()) {
				t.Errorf("key %s holds %s", it.Key(), v)
			}
			ks = append(ks, string(it.Key()))
		}
		return ks
	}
	it, _ := st.Iterator()
	if got := keys(it); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("iterator keys %v", got)
	}
	it, _ = st.IteratorWithRange([]byte("b"), []byte("c"))
	if got := keys(it); !slices.Equal(got, []string{"b"}) {
		t.Errorf("range [b, c) keys %v", got)
	}
	it, _ = st.Iterator()
	if !it.Seek([]byte("bb")) {
		t.Fatal("seek bb found nothing")
	}
	if got := keys(it); !slices.Equal(got, []string{"c"}) {
		t.Errorf("after seek bb: %v", got)
	}

	off, _ := offsetBuilder()("t", 0)
	off.Set("a", []byte("v"))
	off.SetOffset(7)
	if v, _ := off.Get("a"); v != nil {
		t.Error("the offset storage stored a value")
	}
	if o, _ := off.GetOffset(-2); o != 7 {
		t.Errorf("offset %d, want 7", o)
	}
	if it, _ := off.Iterator(); it.Next() {
		t.Error("the offset storage iterates over something")
	}
}

func TestLagMeter(t *testing.T) {
	var l lagMeter
	l.consumed(0, 9)  // next 10
	l.consumed(1, 41) // next 42
	l.update(map[int32]int64{0: 15, 1: 42, 2: 3})
	if got := l.get(); got != 5+0+3 {
		t.Errorf("lag %d, want 8", got)
	}
}

// historyLen is how many items account's history holds, for tests.
func (h *hub) historyLen(account string) int {
	h.mu.RLock()
	a := h.accounts[account]
	h.mu.RUnlock()
	if a == nil {
		return 0
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.hist.len()
}
