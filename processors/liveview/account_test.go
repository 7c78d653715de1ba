package liveview_test

import (
	"fmt"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/liveview"
)

const now = int64(1_700_000_000_000_000)

func hit(id string) *livetabv1.Hit {
	return &livetabv1.Hit{Id: id, Account: "acme", Session: "web-" + id, ReceivedUs: 100}
}

func event(id, session string) *livetabv1.Event {
	return &livetabv1.Event{Id: id, Account: "acme", Session: session, Name: "install", ReceivedUs: 200}
}

func conversion(eventID, appSession string) *livetabv1.Conversion {
	return &livetabv1.Conversion{
		Id: "cv-" + appSession, Account: "acme", HitSession: "web", AppSession: appSession,
		HitId: "h1", EventId: eventID, Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, TimeUs: 300, ReceivedUs: 250,
	}
}

func inHit(h *livetabv1.Hit) *livetabv1.ViewInput {
	return &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Hit{Hit: h}}
}

func inEvent(e *livetabv1.Event) *livetabv1.ViewInput {
	return &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Event{Event: e}}
}

func inConv(c *livetabv1.Conversion) *livetabv1.ViewInput {
	return &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Conversion{Conversion: c}}
}

func counters(h, e, c uint64) *livetabv1.Counters {
	return &livetabv1.Counters{Hits: h, Events: e, Conversions: c}
}

var mark = &livetabv1.ConvertedWith{Session: "web", Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, HitId: "h1", TimeUs: 300}

func hitItem(cursor uint64, h *livetabv1.Hit, c *livetabv1.Counters) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{Cursor: cursor, Account: "acme", Kind: livetabv1.Kind_KIND_HIT, Session: h.Session,
		ReceivedUs: h.ReceivedUs, Counters: c, EmittedUs: now, Payload: &livetabv1.ViewItem_Hit{Hit: h}}
}

func eventItem(cursor uint64, e *livetabv1.Event, c *livetabv1.Counters, with *livetabv1.ConvertedWith) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{Cursor: cursor, Account: "acme", Kind: livetabv1.Kind_KIND_EVENT, Session: e.Session,
		ReceivedUs: e.ReceivedUs, Counters: c, EmittedUs: now, ConvertedWith: with, Payload: &livetabv1.ViewItem_Event{Event: e}}
}

func convItem(cursor uint64, cv *livetabv1.Conversion, c *livetabv1.Counters) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{Cursor: cursor, Account: "acme", Kind: livetabv1.Kind_KIND_CONVERSION, Session: cv.AppSession,
		ReceivedUs: cv.ReceivedUs, Counters: c, EmittedUs: now, Payload: &livetabv1.ViewItem_Conversion{Conversion: cv}}
}

func fpHit(id string) uint64   { return liveview.Fingerprint(livetabv1.Kind_KIND_HIT, id) }
func fpEvent(id string) uint64 { return liveview.Fingerprint(livetabv1.Kind_KIND_EVENT, id) }
func fpConv(c *livetabv1.Conversion) uint64 {
	return liveview.Fingerprint(livetabv1.Kind_KIND_CONVERSION, c.GetId())
}

func recent(fps ...uint64) []uint64 { return fps }

// marshal is proto.Marshal, for messages that always encode.
func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// read is the Input of the loop record that carries in.
func read(t testing.TB, in *livetabv1.ViewInput) liveview.Input {
	t.Helper()
	rin, err := liveview.ReadInput(marshal(t, in))
	if err != nil {
		t.Fatalf("ReadInput(%v): %v", in, err)
	}
	return rin
}

// decodeItems decodes what Apply returned, checking each item's cursor.
func decodeItems(t testing.TB, items []liveview.Item) []*livetabv1.ViewItem {
	t.Helper()
	out := make([]*livetabv1.ViewItem, len(items))
	for i, it := range items {
		out[i] = &livetabv1.ViewItem{}
		if err := proto.Unmarshal(it.Data, out[i]); err != nil {
			t.Fatalf("item %d does not decode: %v", i, err)
		}
		if out[i].GetCursor() != it.Cursor {
			t.Fatalf("item %d: cursor %d, but it says %d", i, it.Cursor, out[i].GetCursor())
		}
	}
	return out
}

// apply is Apply on the loop record that carries in, at now, its items
// decoded.
func apply(t testing.TB, st *livetabv1.AccountState, in *livetabv1.ViewInput) []*livetabv1.ViewItem {
	t.Helper()
	return decodeItems(t, liveview.Apply(st, read(t, in), now))
}

// markable is what the state keeps of markable items: the items without
// emitted_us, encoded as AccountState.MarkableItems.
func markable(t testing.TB, items ...*livetabv1.ViewItem) []byte {
	t.Helper()
	list := &livetabv1.AccountState_MarkableItems{}
	for _, it := range items {
		it = proto.CloneOf(it)
		it.EmittedUs = 0
		list.Items = append(list.Items, it)
	}
	return marshal(t, list)
}

// pending is what the state keeps of waiting conversions: what a mark
// needs, encoded as AccountState.PendingMarks.
func pending(t testing.TB, cs ...*livetabv1.Conversion) []byte {
	t.Helper()
	marks := &livetabv1.AccountState_PendingMarks{}
	for _, c := range cs {
		marks.Marks = append(marks.Marks, &livetabv1.Conversion{Id: c.Id, AppSession: c.AppSession, EventId: c.EventId,
			HitSession: c.HitSession, HitId: c.HitId, Method: c.Method, TimeUs: c.TimeUs})
	}
	return marshal(t, marks)
}

// markableOf decodes st's markable items.
func markableOf(t testing.TB, st *livetabv1.AccountState) []*livetabv1.ViewItem {
	t.Helper()
	list := &livetabv1.AccountState_MarkableItems{}
	if err := proto.Unmarshal(st.GetMarkable(), list); err != nil {
		t.Fatalf("markable items do not decode: %v", err)
	}
	return list.Items
}

// pendingOf decodes st's pending marks.
func pendingOf(t testing.TB, st *livetabv1.AccountState) []*livetabv1.Conversion {
	t.Helper()
	marks := &livetabv1.AccountState_PendingMarks{}
	if err := proto.Unmarshal(st.GetPending(), marks); err != nil {
		t.Fatalf("pending marks do not decode: %v", err)
	}
	return marks.Marks
}

// checkState compares st with want, their encoded fields decoded: equal
// messages need not encode to equal bytes.
func checkState(t testing.TB, st, want *livetabv1.AccountState) {
	t.Helper()
	plain := func(s *livetabv1.AccountState) *livetabv1.AccountState {
		s = proto.CloneOf(s)
		s.Markable, s.Pending = nil, nil
		return s
	}
	if !proto.Equal(plain(st), plain(want)) {
		t.Errorf("state\n got %v\nwant %v", plain(st), plain(want))
	}
	got, wantItems := markableOf(t, st), markableOf(t, want)
	if len(got) != len(wantItems) {
		t.Errorf("state keeps %d markable items, want %d:\n got %v\nwant %v", len(got), len(wantItems), got, wantItems)
	} else {
		for i := range got {
			if !proto.Equal(got[i], wantItems[i]) {
				t.Errorf("markable item %d\n got %v\nwant %v", i, got[i], wantItems[i])
			}
		}
	}
	gotMarks, wantMarks := pendingOf(t, st), pendingOf(t, want)
	if len(gotMarks) != len(wantMarks) {
		t.Errorf("state keeps %d pending marks, want %d:\n got %v\nwant %v", len(gotMarks), len(wantMarks), gotMarks, wantMarks)
	} else {
		for i := range gotMarks {
			if !proto.Equal(gotMarks[i], wantMarks[i]) {
				t.Errorf("pending mark %d\n got %v\nwant %v", i, gotMarks[i], wantMarks[i])
			}
		}
	}
}

func TestApply(t *testing.T) {
	h1, e1, c1 := hit("h1"), event("e1", "app"), conversion("e1", "app")
	// An event of another session with the same id is not the converted one.
	e1other := event("e1", "other-app")
	firstOpen := event("f1", "app")
	firstOpen.Name = "first_open"
	purchase := event("p1", "app")
	purchase.Name = "purchase"
	cPurchase := conversion("p1", "app")
	// Another conversion (another id) naming the event c1 marked.
	c1again := conversion("e1", "app")
	c1again.Id = "cv-again"
	tests := []struct {
		name      string
		inputs    []*livetabv1.ViewInput
		wantLast  []*livetabv1.ViewItem // emitted by the last input
		wantState *livetabv1.AccountState
	}{
		{
			name:      "first hit",
			inputs:    []*livetabv1.ViewInput{inHit(h1)},
			wantLast:  []*livetabv1.ViewItem{hitItem(1, h1, counters(1, 0, 0))},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(1, 0, 0), Recent: recent(fpHit("h1"))},
		},
		{
			name:     "cursor and counters grow; an install is kept to be marked",
			inputs:   []*livetabv1.ViewInput{inHit(h1), inEvent(e1)},
			wantLast: []*livetabv1.ViewItem{eventItem(2, e1, counters(1, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(1, 1, 0), Recent: recent(fpHit("h1"), fpEvent("e1")),
				Markable: markable(t, eventItem(2, e1, counters(1, 1, 0), nil))},
		},
		{
			name:     "first_open is install-like",
			inputs:   []*livetabv1.ViewInput{inEvent(firstOpen)},
			wantLast: []*livetabv1.ViewItem{eventItem(1, firstOpen, counters(0, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 1, 0), Recent: recent(fpEvent("f1")),
				Markable: markable(t, eventItem(1, firstOpen, counters(0, 1, 0), nil))},
		},
		{
			name:      "other events are not kept",
			inputs:    []*livetabv1.ViewInput{inEvent(purchase)},
			wantLast:  []*livetabv1.ViewItem{eventItem(1, purchase, counters(0, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 1, 0), Recent: recent(fpEvent("p1"))},
		},
		{
			name:      "redelivered hit emits nothing",
			inputs:    []*livetabv1.ViewInput{inHit(h1), inHit(h1)},
			wantLast:  nil,
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(1, 0, 0), Recent: recent(fpHit("h1"))},
		},
		{
			name:      "redelivered other event emits nothing",
			inputs:    []*livetabv1.ViewInput{inEvent(purchase), inEvent(purchase)},
			wantLast:  nil,
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 1, 0), Recent: recent(fpEvent("p1"))},
		},
		{
			name:     "hit and event may share an id",
			inputs:   []*livetabv1.ViewInput{inHit(hit("x")), inEvent(event("x", "app"))},
			wantLast: []*livetabv1.ViewItem{eventItem(2, event("x", "app"), counters(1, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(1, 1, 0), Recent: recent(fpHit("x"), fpEvent("x")),
				Markable: markable(t, eventItem(2, event("x", "app"), counters(1, 1, 0), nil))},
		},
		{
			name:   "conversion after its event marks and re-emits it first, and drops it",
			inputs: []*livetabv1.ViewInput{inEvent(e1), inConv(c1)},
			wantLast: []*livetabv1.ViewItem{
				eventItem(1, e1, counters(0, 1, 0), mark),
				convItem(2, c1, counters(0, 1, 1)),
			},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpEvent("e1"), fpConv(c1))},
		},
		{
			name:     "conversion before its event waits",
			inputs:   []*livetabv1.ViewInput{inConv(c1)},
			wantLast: []*livetabv1.ViewItem{convItem(1, c1, counters(0, 0, 1))},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 0, 1), Recent: recent(fpConv(c1)),
				Pending: pending(t, c1)},
		},
		{
			name:      "event arriving after its conversion is emitted marked, not kept",
			inputs:    []*livetabv1.ViewInput{inConv(c1), inEvent(e1)},
			wantLast:  []*livetabv1.ViewItem{eventItem(2, e1, counters(0, 1, 1), mark)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpConv(c1), fpEvent("e1"))},
		},
		{
			name:     "redelivered conversion while pending",
			inputs:   []*livetabv1.ViewInput{inConv(c1), inConv(c1)},
			wantLast: nil,
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 0, 1), Recent: recent(fpConv(c1)),
				Pending: pending(t, c1)},
		},
		{
			name:      "redelivered conversion after marking",
			inputs:    []*livetabv1.ViewInput{inEvent(e1), inConv(c1), inConv(c1)},
			wantLast:  nil,
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpEvent("e1"), fpConv(c1))},
		},
		{
			name:      "redelivered event after marking",
			inputs:    []*livetabv1.ViewInput{inEvent(e1), inConv(c1), inEvent(e1)},
			wantLast:  nil,
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpEvent("e1"), fpConv(c1))},
		},
		{
			// A marked event is not marked again: the second conversion
			// finds no event to mark and waits like one that came first.
			name:      "another conversion of a marked event does not wait",
			inputs:    []*livetabv1.ViewInput{inEvent(e1), inConv(c1), inConv(c1again)},
			wantLast:  []*livetabv1.ViewItem{convItem(3, c1again, counters(0, 1, 2))},
			wantState: &livetabv1.AccountState{Seq: 3, Counters: counters(0, 1, 2), Recent: recent(fpEvent("e1"), fpConv(c1), fpConv(c1again))},
		},
		{
			name:     "event of another session with the converted id stays unmarked",
			inputs:   []*livetabv1.ViewInput{inConv(c1), inEvent(e1other)},
			wantLast: []*livetabv1.ViewItem{eventItem(2, e1other, counters(0, 1, 1), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpConv(c1), fpEvent("e1")),
				Markable: markable(t, eventItem(2, e1other, counters(0, 1, 1), nil)),
				Pending:  pending(t, c1)},
		},
		{
			// Conversions name install-like events only; one that does
			// not finds nothing to mark and waits until bounded out.
			name:      "conversion of a seen event that is not markable does not wait",
			inputs:    []*livetabv1.ViewInput{inEvent(purchase), inConv(cPurchase)},
			wantLast:  []*livetabv1.ViewItem{convItem(2, cPurchase, counters(0, 1, 1))},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpEvent("p1"), fpConv(cPurchase))},
		},
		{
			name:     "pending mark of another event is not applied",
			inputs:   []*livetabv1.ViewInput{inConv(cPurchase), inEvent(purchase)},
			wantLast: []*livetabv1.ViewItem{eventItem(2, purchase, counters(0, 1, 1), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1), Recent: recent(fpConv(cPurchase), fpEvent("p1")),
				Pending: pending(t, cPurchase)},
		},
		{
			name:      "empty input",
			inputs:    []*livetabv1.ViewInput{{}},
			wantLast:  nil,
			wantState: &livetabv1.AccountState{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &livetabv1.AccountState{}
			var last []*livetabv1.ViewItem
			for _, in := range tt.inputs {
				last = apply(t, st, in)
			}
			if len(last) != len(tt.wantLast) {
				t.Fatalf("emitted %d items, want %d:\n%v", len(last), len(tt.wantLast), last)
			}
			for i := range last {
				if !proto.Equal(last[i], tt.wantLast[i]) {
					t.Errorf("item %d\n got %v\nwant %v", i, last[i], tt.wantLast[i])
				}
			}
			checkState(t, st, tt.wantState)
		})
	}
}

func TestApplySharesNothingWithState(t *testing.T) {
	st := &livetabv1.AccountState{}
	e := event("e1", "app")
	record := marshal(t, inEvent(e))
	in, err := liveview.ReadInput(record)
	if err != nil {
		t.Fatal(err)
	}
	out := liveview.Apply(st, in, now)
	// Scribble over the record and the emitted item.
	clear(record)
	want := eventItem(1, e, counters(0, 1, 0), nil)
	if got := decodeItems(t, out); !proto.Equal(got[0], want) {
		t.Fatalf("emitted item changed with the record: %v", got[0])
	}
	clear(out[0].Data)
	checkState(t, st, &livetabv1.AccountState{Seq: 1, Counters: counters(0, 1, 0), Recent: recent(fpEvent("e1")),
		Markable: markable(t, want)})

	c := conversion("e2", "app2")
	record = marshal(t, inConv(c))
	if in, err = liveview.ReadInput(record); err != nil {
		t.Fatal(err)
	}
	liveview.Apply(st, in, now)
	clear(record)
	c.EventId = "changed"
	if got := pendingOf(t, st); len(got) != 1 || got[0].GetEventId() != "e2" {
		t.Fatalf("changing the input changed the pending mark: %v", got)
	}
}

func TestFingerprint(t *testing.T) {
	// Fingerprints are stored in the table and compared after restarts and
	// upgrades: they must never change. The values are FNV-1a 64 of the
	// kind's byte and the id, computed apart from the code under test.
	golden := []struct {
		kind livetabv1.Kind
		id   string
		want uint64
	}{
		{livetabv1.Kind_KIND_HIT, "h1", 0xd0f55818676cd027},
		{livetabv1.Kind_KIND_EVENT, "h1", 0xea4e471875998df2},
		{livetabv1.Kind_KIND_CONVERSION, "cv-app", 0xe7dcdd116598f10d},
		{livetabv1.Kind_KIND_EVENT, "", 0xaf63bf4c8601bb45},
	}
	for _, g := range golden {
		if got := liveview.Fingerprint(g.kind, g.id); got != g.want {
			t.Errorf("Fingerprint(%v, %q) = %#016x, want %#016x", g.kind, g.id, got, g.want)
		}
	}
}

func TestRecentKeepsNewest(t *testing.T) {
	st := &livetabv1.AccountState{}
	n := liveview.Window + 50
	id := func(i int) string { return fmt.Sprintf("h%03d", i) }
	for i := range n {
		apply(t, st, inHit(hit(id(i))))
	}
	if len(st.Recent) != liveview.Window {
		t.Fatalf("%d fingerprints, want %d", len(st.Recent), liveview.Window)
	}
	if cap(st.Recent) > 2*liveview.Window {
		t.Errorf("fingerprints' array grew to %d", cap(st.Recent))
	}
	if items := markableOf(t, st); st.Seq != uint64(n) || st.Counters.GetHits() != uint64(n) || len(items) != 0 {
		t.Errorf("seq %d hits %d items %d, want %d, %d, 0", st.Seq, st.Counters.GetHits(), len(items), n, n)
	}
	for i, fp := range st.Recent {
		if want := fpHit(id(n - liveview.Window + i)); fp != want {
			t.Fatalf("fingerprint %d is %#x, want %s's (oldest first)", i, fp, id(n-liveview.Window+i))
		}
	}
	// A hit that left the window is counted again: only the newest
	// Window items dedupe.
	if out := apply(t, st, inHit(hit(id(0)))); len(out) != 1 {
		t.Errorf("hit that left the window emitted %d items", len(out))
	}
	if out := apply(t, st, inHit(hit(id(n-1)))); len(out) != 0 {
		t.Errorf("hit in the window emitted %d items", len(out))
	}
}

func TestMarkableItemAgesOut(t *testing.T) {
	// feed applies an install at cursor 1, then hits up to cursor seq.
	feed := func(seq int) *livetabv1.AccountState {
		st := &livetabv1.AccountState{}
		apply(t, st, inEvent(event("e1", "app")))
		for i := 2; i <= seq; i++ {
			apply(t, st, inHit(hit(fmt.Sprintf("h%03d", i))))
		}
		return st
	}

	// Its newest Window cursors end at Window: the install is still kept,
	// and a conversion (cursor Window+1, the slot's next owner) marks it
	// before taking its slot.
	st := feed(liveview.Window)
	if items := markableOf(t, st); len(items) != 1 {
		t.Fatalf("install at cursor 1 of %d not kept: %v", st.Seq, items)
	}
	out := apply(t, st, inConv(conversion("e1", "app")))
	if len(out) != 2 || out[0].GetCursor() != 1 || !proto.Equal(out[0].GetConvertedWith(), mark) || out[1].GetCursor() != uint64(liveview.Window+1) {
		t.Fatalf("conversion at the window's edge emitted %v, want the marked install then itself", out)
	}
	if len(st.Markable) != 0 || len(st.Pending) != 0 {
		t.Errorf("after marking: items %v pending %v, want none", markableOf(t, st), pendingOf(t, st))
	}

	// One more item and the install has aged out: its conversion waits.
	st = feed(liveview.Window + 1)
	if len(st.Markable) != 0 {
		t.Fatalf("install at cursor 1 of %d still kept", st.Seq)
	}
	out = apply(t, st, inConv(conversion("e1", "app")))
	if len(out) != 1 || out[0].GetKind() != livetabv1.Kind_KIND_CONVERSION {
		t.Fatalf("conversion of an aged-out install emitted %v, want only itself", out)
	}
	if p := pendingOf(t, st); len(p) != 1 {
		t.Errorf("pending marks %v, want the conversion", p)
	}
}

// TestMarkableItemsAgeOutInOrder: installs among other items leave the
// state as their cursors leave the window, oldest first, and those still
// kept are marked.
func TestMarkableItemsAgeOutInOrder(t *testing.T) {
	st := &livetabv1.AccountState{}
	var installs []int // cursors
	for i := 1; i <= 3*liveview.Window; i++ {
		if i%7 == 0 {
			apply(t, st, inEvent(event(fmt.Sprintf("e%03d", i), fmt.Sprintf("app%03d", i))))
			installs = append(installs, i)
		} else {
			apply(t, st, inHit(hit(fmt.Sprintf("h%03d", i))))
		}
		var want []uint64
		for _, c := range installs {
			if i-c < liveview.Window {
				want = append(want, uint64(c))
			}
		}
		var got []uint64
		for _, it := range markableOf(t, st) {
			got = append(got, it.GetCursor())
		}
		if !slices.Equal(got, want) {
			t.Fatalf("after cursor %d the state keeps installs %v, want %v", i, got, want)
		}
	}
	// The middle one of those kept is marked, and leaves.
	kept := markableOf(t, st)
	mid := kept[len(kept)/2]
	out := apply(t, st, inConv(conversion(mid.GetEvent().GetId(), mid.GetSession())))
	want := proto.CloneOf(mid)
	want.ConvertedWith, want.EmittedUs = mark, now
	if len(out) != 2 || !proto.Equal(out[0], want) {
		t.Fatalf("conversion of the install at cursor %d emitted %v, want it marked first", mid.GetCursor(), out)
	}
	if got := markableOf(t, st); len(got) != len(kept)-1 || slices.ContainsFunc(got, func(it *livetabv1.ViewItem) bool { return it.GetCursor() == mid.GetCursor() }) {
		t.Errorf("after marking cursor %d the state keeps %d items, want %d without it", mid.GetCursor(), len(got), len(kept)-1)
	}
}

func TestPendingMarksAreBounded(t *testing.T) {
	st := &livetabv1.AccountState{}
	for i := range liveview.MaxPendingMarks + 5 {
		apply(t, st, inConv(conversion(fmt.Sprintf("e%03d", i), fmt.Sprintf("app%03d", i))))
	}
	marks := pendingOf(t, st)
	if len(marks) != liveview.MaxPendingMarks {
		t.Fatalf("%d pending marks, want %d", len(marks), liveview.MaxPendingMarks)
	}
	for i, m := range marks {
		if want := fmt.Sprintf("e%03d", i+5); m.GetEventId() != want {
			t.Fatalf("pending mark %d for %s, want %s (oldest first)", i, m.GetEventId(), want)
		}
	}
	// The newest still applies, and one in the middle; an evicted one
	// does not.
	for _, i := range []int{liveview.MaxPendingMarks + 4, 50} {
		n := fmt.Sprintf("%03d", i)
		if out := apply(t, st, inEvent(event("e"+n, "app"+n))); !proto.Equal(out[0].GetConvertedWith(), mark) {
			t.Errorf("event of pending mark %d marked %v", i, out[0].GetConvertedWith())
		}
	}
	if out := apply(t, st, inEvent(event("e000", "app000"))); out[0].GetConvertedWith() != nil {
		t.Error("event of an evicted mark marked")
	}
	if got := pendingOf(t, st); len(got) != liveview.MaxPendingMarks-2 {
		t.Errorf("%d pending marks after applying two, want %d", len(got), liveview.MaxPendingMarks-2)
	}
	// Room for two more, then the oldest go again.
	for i := range 3 {
		apply(t, st, inConv(conversion(fmt.Sprintf("f%03d", i), fmt.Sprintf("app-f%03d", i))))
	}
	marks = pendingOf(t, st)
	if len(marks) != liveview.MaxPendingMarks || marks[0].GetEventId() != "e006" || marks[len(marks)-1].GetEventId() != "f002" {
		t.Errorf("%d pending marks from %s to %s, want %d from e006 to f002", len(marks), marks[0].GetEventId(), marks[len(marks)-1].GetEventId(), liveview.MaxPendingMarks)
	}
}
