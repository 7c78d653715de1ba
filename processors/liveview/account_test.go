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

func TestApply(t *testing.T) {
	h1, e1, c1 := hit("h1"), event("e1", "app"), conversion("e1", "app")
	// An event of another session with the same id is not the converted one.
	e1other := event("e1", "other-app")
	tests := []struct {
		name      string
		inputs    []*livetabv1.ViewInput
		wantLast  []*livetabv1.ViewItem // emitted by the last input
		wantState *livetabv1.AccountState
	}{
		{
			name:     "first hit",
			inputs:   []*livetabv1.ViewInput{inHit(h1)},
			wantLast: []*livetabv1.ViewItem{hitItem(1, h1, counters(1, 0, 0))},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(1, 0, 0),
				Items: []*livetabv1.ViewItem{hitItem(1, h1, counters(1, 0, 0))}},
		},
		{
			name:     "cursor and counters grow",
			inputs:   []*livetabv1.ViewInput{inHit(h1), inEvent(e1)},
			wantLast: []*livetabv1.ViewItem{eventItem(2, e1, counters(1, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(1, 1, 0),
				Items: []*livetabv1.ViewItem{hitItem(1, h1, counters(1, 0, 0)), eventItem(2, e1, counters(1, 1, 0), nil)}},
		},
		{
			name:     "redelivered hit emits nothing",
			inputs:   []*livetabv1.ViewInput{inHit(h1), inHit(h1)},
			wantLast: nil,
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(1, 0, 0),
				Items: []*livetabv1.ViewItem{hitItem(1, h1, counters(1, 0, 0))}},
		},
		{
			name:     "hit and event may share an id",
			inputs:   []*livetabv1.ViewInput{inHit(hit("x")), inEvent(event("x", "app"))},
			wantLast: []*livetabv1.ViewItem{eventItem(2, event("x", "app"), counters(1, 1, 0), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(1, 1, 0),
				Items: []*livetabv1.ViewItem{hitItem(1, hit("x"), counters(1, 0, 0)), eventItem(2, event("x", "app"), counters(1, 1, 0), nil)}},
		},
		{
			name:   "conversion after its event marks and re-emits it first",
			inputs: []*livetabv1.ViewInput{inEvent(e1), inConv(c1)},
			wantLast: []*livetabv1.ViewItem{
				eventItem(1, e1, counters(0, 1, 0), mark),
				convItem(2, c1, counters(0, 1, 1)),
			},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1),
				Items: []*livetabv1.ViewItem{eventItem(1, e1, counters(0, 1, 0), mark), convItem(2, c1, counters(0, 1, 1))}},
		},
		{
			name:     "conversion before its event waits",
			inputs:   []*livetabv1.ViewInput{inConv(c1)},
			wantLast: []*livetabv1.ViewItem{convItem(1, c1, counters(0, 0, 1))},
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 0, 1),
				Items:        []*livetabv1.ViewItem{convItem(1, c1, counters(0, 0, 1))},
				PendingMarks: []*livetabv1.Conversion{c1}},
		},
		{
			name:     "event arriving after its conversion is emitted marked",
			inputs:   []*livetabv1.ViewInput{inConv(c1), inEvent(e1)},
			wantLast: []*livetabv1.ViewItem{eventItem(2, e1, counters(0, 1, 1), mark)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1),
				Items: []*livetabv1.ViewItem{convItem(1, c1, counters(0, 0, 1)), eventItem(2, e1, counters(0, 1, 1), mark)}},
		},
		{
			name:     "redelivered conversion while pending",
			inputs:   []*livetabv1.ViewInput{inConv(c1), inConv(c1)},
			wantLast: nil,
			wantState: &livetabv1.AccountState{Seq: 1, Counters: counters(0, 0, 1),
				Items:        []*livetabv1.ViewItem{convItem(1, c1, counters(0, 0, 1))},
				PendingMarks: []*livetabv1.Conversion{c1}},
		},
		{
			name:     "redelivered conversion after marking",
			inputs:   []*livetabv1.ViewInput{inEvent(e1), inConv(c1), inConv(c1)},
			wantLast: nil,
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1),
				Items: []*livetabv1.ViewItem{eventItem(1, e1, counters(0, 1, 0), mark), convItem(2, c1, counters(0, 1, 1))}},
		},
		{
			name:     "event of another session with the converted id stays unmarked",
			inputs:   []*livetabv1.ViewInput{inConv(c1), inEvent(e1other)},
			wantLast: []*livetabv1.ViewItem{eventItem(2, e1other, counters(0, 1, 1), nil)},
			wantState: &livetabv1.AccountState{Seq: 2, Counters: counters(0, 1, 1),
				Items:        []*livetabv1.ViewItem{convItem(1, c1, counters(0, 0, 1)), eventItem(2, e1other, counters(0, 1, 1), nil)},
				PendingMarks: []*livetabv1.Conversion{c1}},
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

func TestApplyReturnsCopies(t *testing.T) {
	st := &livetabv1.AccountState{}
	out := liveview.Apply(st, inEvent(event("e1", "app")), now)
	out[0].Cursor = 99
	if st.Items[0].Cursor != 1 {
		t.Fatal("changing an emitted item changed the state")
	}
}

func TestRingKeepsNewest(t *testing.T) {
	st := &livetabv1.AccountState{}
	n := liveview.MaxItems + 50
	for i := range n {
		liveview.Apply(st, inHit(hit(fmt.Sprintf("h%03d", i))), now)
	}
	if len(st.Items) != liveview.MaxItems {
		t.Fatalf("%d items, want %d", len(st.Items), liveview.MaxItems)
	}
	if st.Seq != uint64(n) || st.Counters.GetHits() != uint64(n) {
		t.Errorf("seq %d hits %d, want %d", st.Seq, st.Counters.GetHits(), n)
	}
	for i, it := range st.Items {
		if want := uint64(n - liveview.MaxItems + 1 + i); it.Cursor != want {
			t.Fatalf("item %d has cursor %d, want %d (oldest first)", i, it.Cursor, want)
		}
	}
	// A hit that left the ring is counted again: only stored items dedupe.
	if out := liveview.Apply(st, inHit(hit("h000")), now); len(out) != 1 {
		t.Errorf("hit that left the ring emitted %d items", len(out))
	}
	if out := liveview.Apply(st, inHit(hit(fmt.Sprintf("h%03d", n-1))), now); len(out) != 0 {
		t.Errorf("stored hit emitted %d items", len(out))
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
