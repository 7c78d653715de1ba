package liveview_test

import (
	"fmt"
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

// pending is what the state keeps of waiting conversions: what a mark
// needs.
func pending(cs ...*livetabv1.Conversion) []*livetabv1.Conversion {
	out := make([]*livetabv1.Conversion, len(cs))
	for i, c := range cs {
		out[i] = &livetabv1.Conversion{Id: c.Id, AppSession: c.AppSession, EventId: c.EventId,
			HitSession: c.HitSession, HitId: c.HitId, Method: c.Method, TimeUs: c.TimeUs}
	}
	return out
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
				Items: []*livetabv1.ViewItem{eventItem(2, e1, counters(1, 1, 0), nil)}},
		},
		{
			name:     "first_open is install-like",
			inputs:   []*livetabv1.ViewInput{inEvent(firstOpen)},
			wantLast: []*livetabv1.ViewItem{eventItem(1, firstOpen, counters(0, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 1, 0), Recent: recent(fpEvent("f1")),
				Items: []*livetabv1.ViewItem{eventItem(1, firstOpen, counters(0, 1, 0), nil)}},
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
				Items: []*livetabv1.ViewItem{eventItem(2, event("x", "app"), counters(1, 1, 0), nil)}},
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
				PendingMarks: pending(c1)},
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
				PendingMarks: pending(c1)},
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
				Items:        []*livetabv1.ViewItem{eventItem(2, e1other, counters(0, 1, 1), nil)},
				PendingMarks: pending(c1)},
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
				PendingMarks: pending(cPurchase)},
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
				last = liveview.Apply(st, in, now)
			}
			if len(last) != len(tt.wantLast) {
				t.Fatalf("emitted %d items, want %d:\n%v", len(last), len(tt.wantLast), last)
			}
			for i := range last {
				if !proto.Equal(last[i], tt.wantLast[i]) {
					t.Errorf("item %d\n got %v\nwant %v", i, last[i], tt.wantLast[i])
				}
			}
			if !proto.Equal(st, tt.wantState) {
				t.Errorf("state\n got %v\nwant %v", st, tt.wantState)
			}
		})
	}
}

func TestApplySharesNothingWithState(t *testing.T) {
	st := &livetabv1.AccountState{}
	e := event("e1", "app")
	out := liveview.Apply(st, inEvent(e), now)
	out[0].Cursor = 99
	out[0].Counters.Events = 99
	e.Name = "changed"
	if it := st.Items[0]; it.Cursor != 1 || it.Counters.Events != 1 || it.GetEvent().GetName() != "install" {
		t.Fatalf("changing an emitted item or the input changed the state: %v", it)
	}
	c := conversion("e2", "app2")
	liveview.Apply(st, inConv(c), now)
	c.EventId = "changed"
	if got := st.PendingMarks[0].GetEventId(); got != "e2" {
		t.Fatalf("changing the input changed the pending mark: event id %q", got)
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
		liveview.Apply(st, inHit(hit(id(i))), now)
	}
	if len(st.Recent) != liveview.Window {
		t.Fatalf("%d fingerprints, want %d", len(st.Recent), liveview.Window)
	}
	if cap(st.Recent) > 2*liveview.Window {
		t.Errorf("fingerprints' array grew to %d", cap(st.Recent))
	}
	if st.Seq != uint64(n) || st.Counters.GetHits() != uint64(n) || len(st.Items) != 0 {
		t.Errorf("seq %d hits %d items %d, want %d, %d, 0", st.Seq, st.Counters.GetHits(), len(st.Items), n, n)
	}
	for i, fp := range st.Recent {
		if want := fpHit(id(n - liveview.Window + i)); fp != want {
			t.Fatalf("fingerprint %d is %#x, want %s's (oldest first)", i, fp, id(n-liveview.Window+i))
		}
	}
	// A hit that left the window is counted again: only the newest
	// Window items dedupe.
	if out := liveview.Apply(st, inHit(hit(id(0))), now); len(out) != 1 {
		t.Errorf("hit that left the window emitted %d items", len(out))
	}
	if out := liveview.Apply(st, inHit(hit(id(n-1))), now); len(out) != 0 {
		t.Errorf("hit in the window emitted %d items", len(out))
	}
}

func TestMarkableItemAgesOut(t *testing.T) {
	// feed applies an install at cursor 1, then hits up to cursor seq.
	feed := func(seq int) *livetabv1.AccountState {
		st := &livetabv1.AccountState{}
		liveview.Apply(st, inEvent(event("e1", "app")), now)
		for i := 2; i <= seq; i++ {
			liveview.Apply(st, inHit(hit(fmt.Sprintf("h%03d", i))), now)
		}
		return st
	}

	// Its newest Window cursors end at Window: the install is still kept,
	// and a conversion (cursor Window+1, the slot's next owner) marks it
	// before taking its slot.
	st := feed(liveview.Window)
	if len(st.Items) != 1 {
		t.Fatalf("install at cursor 1 of %d not kept: %v", st.Seq, st.Items)
	}
	out := liveview.Apply(st, inConv(conversion("e1", "app")), now)
	if len(out) != 2 || out[0].GetCursor() != 1 || !proto.Equal(out[0].GetConvertedWith(), mark) || out[1].GetCursor() != uint64(liveview.Window+1) {
		t.Fatalf("conversion at the window's edge emitted %v, want the marked install then itself", out)
	}
	if len(st.Items) != 0 || len(st.PendingMarks) != 0 {
		t.Errorf("after marking: items %v pending %v, want none", st.Items, st.PendingMarks)
	}

	// One more item and the install has aged out: its conversion waits.
	st = feed(liveview.Window + 1)
	if len(st.Items) != 0 {
		t.Fatalf("install at cursor 1 of %d still kept", st.Seq)
	}
	out = liveview.Apply(st, inConv(conversion("e1", "app")), now)
	if len(out) != 1 || out[0].GetKind() != livetabv1.Kind_KIND_CONVERSION {
		t.Fatalf("conversion of an aged-out install emitted %v, want only itself", out)
	}
	if len(st.PendingMarks) != 1 {
		t.Errorf("pending marks %v, want the conversion", st.PendingMarks)
	}
}

func TestPendingMarksAreBounded(t *testing.T) {
	st := &livetabv1.AccountState{}
	for i := range liveview.MaxPendingMarks + 5 {
		liveview.Apply(st, inConv(conversion(fmt.Sprintf("e%03d", i), fmt.Sprintf("app%03d", i))), now)
	}
	if len(st.PendingMarks) != liveview.MaxPendingMarks {
		t.Fatalf("%d pending marks, want %d", len(st.PendingMarks), liveview.MaxPendingMarks)
	}
	if first := st.PendingMarks[0].GetEventId(); first != "e005" {
		t.Errorf("oldest pending mark for %s, want e005", first)
	}
	// The newest still applies; an evicted one does not.
	last := fmt.Sprintf("%03d", liveview.MaxPendingMarks+4)
	if out := liveview.Apply(st, inEvent(event("e"+last, "app"+last)), now); out[0].GetConvertedWith() == nil {
		t.Error("event of a pending mark not marked")
	}
	if out := liveview.Apply(st, inEvent(event("e000", "app000")), now); out[0].GetConvertedWith() != nil {
		t.Error("event of an evicted mark marked")
	}
	if len(st.PendingMarks) != liveview.MaxPendingMarks-1 {
		t.Errorf("%d pending marks after applying one, want %d", len(st.PendingMarks), liveview.MaxPendingMarks-1)
	}
}
