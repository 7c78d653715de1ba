package liveview_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/liveview"
	"github.com/livetab/livetab/topics"
)

var (
	table = goka.GroupTable(liveview.Group)
	loop  = topics.GroupLoop(liveview.Group)
)

func start(t *testing.T, opts liveview.Options) *tester.Tester {
	t.Helper()
	opts.Now = func() time.Time { return time.UnixMicro(now) }
	return gokatest.Start(t, liveview.NewGraph(opts))
}

type emitted struct {
	key  string
	item *livetabv1.ViewItem
}

func drainView(t *testing.T, qt *tester.QueueTracker) []emitted {
	t.Helper()
	var out []emitted
	for {
		k, v, ok := qt.Next()
		if !ok {
			return out
		}
		it := v.(*livetabv1.ViewItem)
		if want := topics.ViewKey(it.GetAccount(), it.GetCursor()); k != want {
			t.Errorf("item %d keyed %q, want %q", it.GetCursor(), k, want)
		}
		out = append(out, emitted{k, it})
	}
}

func state(t *testing.T, tt *tester.Tester, account string) *livetabv1.AccountState {
	t.Helper()
	v, _ := tt.TableValue(table, account).(*livetabv1.AccountState)
	return v
}

// TestEveryInputBecomesAnItem feeds hits and events keyed by account, as
// the collector writes them, and a conversion keyed by app session.
func TestEveryInputBecomesAnItem(t *testing.T) {
	tt := start(t, liveview.Options{})
	view := tt.NewQueueTracker(string(topics.View))
	loops := tt.NewQueueTracker(string(loop))
	h := hit("h1")
	e := event("e1", "app")
	c := conversion("e1", "app")
	gokatest.Consume(t, tt, topics.Hits, h.Account, h)
	gokatest.Consume(t, tt, topics.Events, e.Account, e)
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("inputs keyed by their account were looped: %d loop records", len(l))
	}
	gokatest.Consume(t, tt, topics.Conversions, c.AppSession, c)
	if l := gokatest.Drain(loops); len(l) != 1 || l[0].Key != "acme" {
		t.Errorf("conversion keyed by app session: loop records %v, want one keyed acme", l)
	}

	want := []*livetabv1.ViewItem{
		hitItem(1, h, counters(1, 0, 0)),
		eventItem(2, e, counters(1, 1, 0), nil),
		eventItem(2, e, counters(1, 1, 0), mark), // marked, same cursor
		convItem(3, c, counters(1, 1, 1)),
	}
	got := drainView(t, view)
	if len(got) != len(want) {
		t.Fatalf("emitted %d items, want %d: %v", len(got), len(want), got)
	}
	for i := range got {
		if !proto.Equal(got[i].item, want[i]) {
			t.Errorf("item %d\n got %v\nwant %v", i, got[i].item, want[i])
		}
	}
	if got[1].key != got[2].key || got[2].key != "acme/2" {
		t.Errorf("marked event re-emitted under %q, first under %q; want acme/2 both", got[2].key, got[1].key)
	}

	t.Run("redelivery emits nothing", func(t *testing.T) {
		gokatest.Consume(t, tt, topics.Hits, h.Account, h)
		gokatest.Consume(t, tt, topics.Events, e.Account, e)
		gokatest.Consume(t, tt, topics.Conversions, c.AppSession, c)
		if again := drainView(t, view); len(again) != 0 {
			t.Errorf("redelivery emitted %v", again)
		}
		if st := state(t, tt, "acme"); st.GetSeq() != 3 || !proto.Equal(st.GetCounters(), counters(1, 1, 1)) {
			t.Errorf("state seq %d counters %v after redelivery", st.GetSeq(), st.GetCounters())
		}
	})

	t.Run("accounts count apart", func(t *testing.T) {
		other := hit("h1")
		other.Account = "globex"
		gokatest.Consume(t, tt, topics.Hits, other.Account, other)
		got := drainView(t, view)
		if len(got) != 1 || got[0].key != "globex/1" || got[0].item.GetCursor() != 1 || !proto.Equal(got[0].item.GetCounters(), counters(1, 0, 0)) {
			t.Errorf("other account emitted %v, want its cursor 1", got)
		}
	})
}

func TestMarkBeforeEventItem(t *testing.T) {
	tt := start(t, liveview.Options{})
	view := tt.NewQueueTracker(string(topics.View))
	e, c := event("e1", "app"), conversion("e1", "app")
	gokatest.Consume(t, tt, topics.Conversions, c.AppSession, c)
	if p := pendingOf(t, state(t, tt, "acme")); len(p) != 1 {
		t.Fatalf("pending marks %v, want the conversion", p)
	}
	gokatest.Consume(t, tt, topics.Events, e.Session, e)
	got := drainView(t, view)
	want := []*livetabv1.ViewItem{convItem(1, c, counters(0, 0, 1)), eventItem(2, e, counters(0, 1, 1), mark)}
	if len(got) != 2 || !proto.Equal(got[0].item, want[0]) || !proto.Equal(got[1].item, want[1]) {
		t.Fatalf("emitted %v, want %v", got, want)
	}
	if p := pendingOf(t, state(t, tt, "acme")); len(p) != 0 {
		t.Errorf("pending marks %v after the event arrived", p)
	}
}

// compact keeps the last value of each key, as Kafka's compaction does.
func compact(items []emitted) map[string]*livetabv1.ViewItem {
	out := map[string]*livetabv1.ViewItem{}
	for _, e := range items {
		out[e.key] = e.item
	}
	return out
}

func TestViewTopicRebuildsAccount(t *testing.T) {
	tt := start(t, liveview.Options{})
	view := tt.NewQueueTracker(string(topics.View))
	n := liveview.Window + 37
	// An install converted late, whose mark lands after it left the
	// window; then a stream of hits with, near the end, an install
	// converted later and an event of another name.
	type in struct {
		kind livetabv1.Kind
		id   string
	}
	var sent []in // in cursor order
	consume := func(topic goka.Stream, key string, m proto.Message, kind livetabv1.Kind, id string) {
		gokatest.Consume(t, tt, topic, key, m)
		sent = append(sent, in{kind, id})
	}
	consume(topics.Events, "app0", event("e0", "app0"), livetabv1.Kind_KIND_EVENT, "e0")
	for i := range n {
		h := hit(fmt.Sprintf("h%03d", i))
		consume(topics.Hits, h.Session, h, livetabv1.Kind_KIND_HIT, h.Id)
		if i == n-10 {
			consume(topics.Events, "app1", event("e1", "app1"), livetabv1.Kind_KIND_EVENT, "e1")
			p := event("p1", "app1")
			p.Name = "purchase"
			consume(topics.Events, "app1", p, livetabv1.Kind_KIND_EVENT, "p1")
		}
	}
	consume(topics.Conversions, "app1", conversion("e1", "app1"), livetabv1.Kind_KIND_CONVERSION, "cv-app1")
	consume(topics.Conversions, "app0", conversion("e0", "app0"), livetabv1.Kind_KIND_CONVERSION, "cv-app0")

	all := drainView(t, view)
	st := state(t, tt, "acme")
	total := uint64(len(sent))
	if st.GetSeq() != total {
		t.Errorf("seq %d, want %d", st.GetSeq(), total)
	}
	// e1 was marked, e0 aged out: the state keeps no item, only the
	// fingerprints, and e0's conversion waits.
	if len(st.GetMarkable()) != 0 || len(st.GetRecent()) != liveview.Window {
		t.Errorf("state keeps %d items and %d fingerprints, want 0 and %d", len(st.GetMarkable()), len(st.GetRecent()), liveview.Window)
	}
	if p := pendingOf(t, st); len(p) != 1 || p[0].GetEventId() != "e0" {
		t.Errorf("pending marks %v, want e0's conversion", p)
	}

	rebuilt := compact(all)
	if len(rebuilt) != liveview.Window {
		t.Fatalf("compacted view holds %d items, want %d", len(rebuilt), liveview.Window)
	}
	items := make([]*livetabv1.ViewItem, 0, len(rebuilt))
	for _, it := range rebuilt {
		items = append(items, it)
	}
	slices.SortFunc(items, func(a, b *livetabv1.ViewItem) int { return int(a.GetCursor()) - int(b.GetCursor()) })
	for i, it := range items {
		cursor := total - uint64(liveview.Window) + 1 + uint64(i)
		want := sent[cursor-1]
		var id string
		switch it.GetKind() {
		case livetabv1.Kind_KIND_HIT:
			id = it.GetHit().GetId()
		case livetabv1.Kind_KIND_EVENT:
			id = it.GetEvent().GetId()
		case livetabv1.Kind_KIND_CONVERSION:
			id = it.GetConversion().GetId()
		}
		if it.GetCursor() != cursor || it.GetKind() != want.kind || id != want.id {
			t.Fatalf("compacted item %d: cursor %d %v %q, want cursor %d %v %q", i, it.GetCursor(), it.GetKind(), id, cursor, want.kind, want.id)
		}
	}
	newest := items[len(items)-1]
	if newest.GetCursor() != total || !proto.Equal(newest.GetCounters(), st.GetCounters()) {
		t.Errorf("newest item cursor %d counters %v, want %d %v", newest.GetCursor(), newest.GetCounters(), total, st.GetCounters())
	}
	marked := 0
	for _, it := range items {
		if it.GetConvertedWith() != nil {
			marked++
			if it.GetEvent().GetId() != "e1" || !proto.Equal(it.GetConvertedWith(), mark) {
				t.Errorf("item %d marked %v, want only e1", it.GetCursor(), it.GetConvertedWith())
			}
		}
	}
	if marked != 1 {
		t.Errorf("%d marked items in the compacted view, want 1 (e1)", marked)
	}
}

// TestLoopRecords: every input not keyed by its account (here by session,
// as older collectors wrote hits and events) reaches its account's loop as
// the ViewInput that carries it.
func TestLoopRecords(t *testing.T) {
	tt := start(t, liveview.Options{})
	loops := tt.NewQueueTracker(string(loop))
	h, e, c := hit("h1"), event("e1", "app"), conversion("e1", "app")
	// Unknown fields travel along untouched.
	e.ProtoReflect().SetUnknown(protowire.AppendString(protowire.AppendTag(nil, 99, protowire.BytesType), "future"))
	gokatest.Consume(t, tt, topics.Hits, h.Session, h)
	gokatest.Consume(t, tt, topics.Events, e.Session, e)
	gokatest.Consume(t, tt, topics.Conversions, c.AppSession, c)
	want := []*livetabv1.ViewInput{inHit(h), inEvent(e), inConv(c)}
	got := gokatest.Drain(loops)
	if len(got) != len(want) {
		t.Fatalf("%d loop records, want %d", len(got), len(want))
	}
	for i, m := range got {
		in := gokatest.Decode(t, m, &livetabv1.ViewInput{})
		if m.Key != "acme" || !proto.Equal(in, want[i]) {
			t.Errorf("loop record %d keyed %q\n got %v\nwant %v keyed acme", i, m.Key, in, want[i])
		}
	}
}

func TestBadRecordsAreSkipped(t *testing.T) {
	var logs gokatest.Logs
	tt := start(t, liveview.Options{Logger: logs.Logger()})
	view := tt.NewQueueTracker(string(topics.View))
	loops := tt.NewQueueTracker(string(loop))

	garbage := []byte{0xff, 0xff}
	for _, topic := range []goka.Stream{topics.Hits, topics.Events, topics.Conversions, loop} {
		tt.Consume(string(topic), "k", garbage)
		if _, ok := logs.Find("level=WARN", "does not decode", "topic="+string(topic), "partition=0", "offset="); !ok {
			t.Errorf("no warning for garbage on %s; logs %v", topic, logs.Lines())
		}
	}
	noAccount := hit("h1")
	noAccount.Account = ""
	gokatest.Consume(t, tt, topics.Hits, noAccount.Session, noAccount)
	noID := event("", "app")
	gokatest.Consume(t, tt, topics.Events, "app", noID)
	if _, ok := logs.Find("level=WARN", "without account or id", "topic="+string(topics.Hits)); !ok {
		t.Errorf("no warning for a hit without account; logs %v", logs.Lines())
	}
	if _, ok := logs.Find("level=WARN", "without account or id", "topic="+string(topics.Events)); !ok {
		t.Errorf("no warning for an event without id; logs %v", logs.Lines())
	}
	// A record whose outer fields decode is looped; the loop decodes the
	// rest and skips it there.
	badRequest := protowire.AppendBytes(protowire.AppendTag(nil, 8, protowire.BytesType), garbage)
	okFields, err := proto.Marshal(hit("h9"))
	if err != nil {
		t.Fatal(err)
	}
	tt.Consume(string(topics.Hits), "web-h9", append(okFields, badRequest...))
	if _, ok := logs.Find("level=WARN", "does not decode", "topic="+string(loop), "key=acme"); !ok {
		t.Errorf("no warning for a hit with a corrupt request, on the loop; logs %v", logs.Lines())
	}
	// An account that is not UTF-8 is not used as a key.
	badAccount := protowire.AppendString(protowire.AppendTag(nil, 1, protowire.BytesType), "h8")
	badAccount = protowire.AppendBytes(protowire.AppendTag(badAccount, 2, protowire.BytesType), []byte{'a', 0xff})
	tt.Consume(string(topics.Hits), "web-h8", badAccount)
	if _, ok := logs.Find("level=WARN", "does not decode", "topic="+string(topics.Hits), "UTF-8"); !ok {
		t.Errorf("no warning for a hit whose account is not UTF-8; logs %v", logs.Lines())
	}
	// A loop record keyed by another account is not trusted.
	gokatest.Consume(t, tt, loop, "globex", inHit(hit("h2")))
	if _, ok := logs.Find("level=WARN", "not keyed by its account"); !ok {
		t.Errorf("no warning for a misrouted loop record; logs %v", logs.Lines())
	}
	if got := drainView(t, view); len(got) != 0 {
		t.Errorf("bad records emitted %v", got)
	}
	// Only the test's own loop records and the corrupt request's are on
	// the loop topic.
	if l := gokatest.Drain(loops); len(l) != 3 {
		t.Errorf("bad records were looped: %d loop records, want 3", len(l))
	}

	h := hit("h3")
	gokatest.Consume(t, tt, topics.Hits, h.Session, h)
	if got := drainView(t, view); len(got) != 1 || got[0].item.GetCursor() != 1 {
		t.Errorf("after bad records emitted %v, want cursor 1", got)
	}
}
