package liveview_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/liveview"
	"github.com/livetab/livetab/topics"
)

// appEvent is an event of acme's app session "app" named name.
func appEvent(id, name string) *livetabv1.Event {
	e := event(id, "app")
	e.Name = name
	return e
}

func marshalAll(t testing.TB, evs ...*livetabv1.Event) [][]byte {
	t.Helper()
	out := make([][]byte, len(evs))
	for i, e := range evs {
		out[i] = marshal(t, e)
	}
	return out
}

// byAccount splits emitted items by account, each account's in the order
// they were emitted: the order that matters, as a view key holds one
// account's items.
func byAccount(items []emitted) map[string][]emitted {
	out := map[string][]emitted{}
	for _, e := range items {
		a := e.item.GetAccount()
		out[a] = append(out[a], e)
	}
	return out
}

// writesByKey counts the group table's writes per key.
func writesByKey(qt *tester.QueueTracker) map[string]int {
	out := map[string]int{}
	for _, m := range gokatest.Drain(qt) {
		out[m.Key]++
	}
	return out
}

// TestSessionEventsApplyAsSingleRecords: a SessionEvents emits the items,
// and leaves the states, that its events one record each do, with one
// table write for the record's account.
func TestSessionEventsApplyAsSingleRecords(t *testing.T) {
	before := []struct {
		topic goka.Stream
		key   string
		m     proto.Message
	}{
		{topics.Hits, "acme", hit("h1")},
		// i1's conversion before i1: its mark waits in the state.
		{topics.Conversions, "app", conversion("i1", "app")},
		{topics.Events, "acme", appEvent("e0", "open")},
	}
	other := appEvent("g1", "open")
	other.Account = "globex"
	batch := []*livetabv1.Event{
		appEvent("e1", "open"),
		appEvent("i1", "install"), // marked at once by the pending conversion
		appEvent("e2", "purchase"),
		appEvent("e0", "open"),     // redelivered: applied before the batch
		appEvent("e2", "purchase"), // redelivered within the batch
		other,                      // another account's: looped to it
		appEvent("i2", "first_open"),
		appEvent("e3", "close"),
	}
	type result struct {
		items  map[string][]emitted
		writes map[string]int
		states map[string]*livetabv1.AccountState
	}
	play := func(t *testing.T, asOne bool) result {
		tt := start(t, liveview.Options{})
		for _, r := range before {
			gokatest.Consume(t, tt, r.topic, r.key, r.m)
		}
		view := tt.NewQueueTracker(string(topics.View))
		writes := tt.NewQueueTracker(string(table))
		if asOne {
			tt.Consume(string(topics.Events), "acme", codecs.SessionEventsOf(marshalAll(t, batch...)...))
		} else {
			for _, e := range batch {
				gokatest.Consume(t, tt, topics.Events, "acme", e)
			}
		}
		return result{
			items:  byAccount(drainView(t, view)),
			writes: writesByKey(writes),
			states: map[string]*livetabv1.AccountState{"acme": state(t, tt, "acme"), "globex": state(t, tt, "globex")},
		}
	}
	single, batched := play(t, false), play(t, true)

	for _, account := range []string{"acme", "globex"} {
		s, b := single.items[account], batched.items[account]
		if len(s) != len(b) {
			t.Fatalf("%s: %d items one record each, %d from the SessionEvents", account, len(s), len(b))
		}
		for i := range s {
			if s[i].key != b[i].key || !proto.Equal(s[i].item, b[i].item) {
				t.Errorf("%s item %d\n  single %q %v\n   batch %q %v", account, i, s[i].key, s[i].item, b[i].key, b[i].item)
			}
		}
		if !proto.Equal(single.states[account], batched.states[account]) {
			t.Errorf("%s state\n  single %v\n   batch %v", account, single.states[account], batched.states[account])
		}
	}

	// What both gave is what the events call for: e1, i1 (marked), e2,
	// i2, e3 after the three items before; g1 for globex.
	var got []string
	for _, e := range batched.items["acme"] {
		got = append(got, e.key+" "+e.item.GetEvent().GetId())
		if id := e.item.GetEvent().GetId(); (id == "i1") != (e.item.GetConvertedWith() != nil) {
			t.Errorf("item %s marked %v; want only i1 marked", id, e.item.GetConvertedWith())
		}
	}
	if want := []string{"acme/4 e1", "acme/5 i1", "acme/6 e2", "acme/7 i2", "acme/8 e3"}; !slices.Equal(got, want) {
		t.Errorf("acme items %v, want %v", got, want)
	}
	if g := batched.items["globex"]; len(g) != 1 || g[0].key != "globex/1" {
		t.Errorf("globex items %v, want g1 at cursor 1", g)
	}
	if p := pendingOf(t, batched.states["acme"]); len(p) != 0 {
		t.Errorf("pending marks %v after i1 came", p)
	}
	if m := markableOf(t, batched.states["acme"]); len(m) != 1 || m[0].GetEvent().GetId() != "i2" {
		t.Errorf("markable items %v, want i2", m)
	}
	// One write per record and account.
	if want := map[string]int{"acme": 1, "globex": 1}; !mapsEqual(batched.writes, want) {
		t.Errorf("table writes from the SessionEvents %v, want %v", batched.writes, want)
	}
	if want := map[string]int{"acme": 5, "globex": 1}; !mapsEqual(single.writes, want) {
		t.Errorf("table writes one record each %v, want %v", single.writes, want)
	}
}

func mapsEqual(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestSessionEventsSkipBadEvents: a bad event of a SessionEvents is
// skipped with a warning that tells its index, and the others still apply
// with one write; a SessionEvents whose framing is broken is skipped whole.
func TestSessionEventsSkipBadEvents(t *testing.T) {
	var logs gokatest.Logs
	tt := start(t, liveview.Options{Logger: logs.Logger()})
	view := tt.NewQueueTracker(string(topics.View))
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))

	good1, good2 := marshal(t, appEvent("e1", "open")), marshal(t, appEvent("e2", "install"))
	noID := marshal(t, appEvent("", "open"))
	// Its outer fields read, its request does not decode: found by the
	// full check.
	deep := append(marshal(t, appEvent("e3", "open")), protowire.AppendBytes(protowire.AppendTag(nil, codecs.EventRequest, protowire.BytesType), []byte{0xff, 0xff})...)
	garbage := []byte{0xff, 0xff}
	tt.Consume(string(topics.Events), "acme", codecs.SessionEventsOf(good1, noID, deep, garbage, good2))

	for _, w := range []struct{ reason, index string }{
		{"without account or id", "index=1"},
		{"does not decode", "index=2"},
		{"does not decode", "index=3"},
	} {
		if _, ok := logs.Find("level=WARN", w.reason, w.index, "topic="+string(topics.Events), "key=acme"); !ok {
			t.Errorf("no warning %q with %s; logs %v", w.reason, w.index, logs.Lines())
		}
	}
	var ids []string
	for _, e := range drainView(t, view) {
		ids = append(ids, e.key+" "+e.item.GetEvent().GetId())
	}
	if want := []string{"acme/1 e1", "acme/2 e2"}; !slices.Equal(ids, want) {
		t.Errorf("emitted %v, want %v", ids, want)
	}
	if w := writesByKey(writes); !mapsEqual(w, map[string]int{"acme": 1}) {
		t.Errorf("table writes %v, want one of acme", w)
	}
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("looped %d records", len(l))
	}

	// Broken framing: skipped whole, the good event before the break too.
	n := len(logs.Lines())
	broken := append(protowire.AppendTag(codecs.SessionEventsOf(marshal(t, appEvent("e4", "open"))), codecs.SessionEventsEvents, protowire.BytesType), 0x05, 'x')
	tt.Consume(string(topics.Events), "acme", broken)
	lines := logs.Lines()[n:]
	if len(lines) != 1 || !strings.Contains(lines[0], "does not decode") || !strings.Contains(lines[0], "session events") || !strings.Contains(lines[0], "level=WARN") {
		t.Errorf("logs for a broken SessionEvents %v, want one warning that it does not decode", lines)
	}
	if got := drainView(t, view); len(got) != 0 {
		t.Errorf("a broken SessionEvents emitted %v", got)
	}
	if w := writesByKey(writes); len(w) != 0 {
		t.Errorf("a broken SessionEvents wrote %v", w)
	}

	// The first SessionEvents applied only its good events.
	if st := state(t, tt, "acme"); st.GetSeq() != 2 || !proto.Equal(st.GetCounters(), counters(0, 2, 0)) {
		t.Errorf("state seq %d counters %v, want 2 and two events", st.GetSeq(), st.GetCounters())
	}
}
