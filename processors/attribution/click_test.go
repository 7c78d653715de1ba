package attribution_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func us(d time.Duration) int64 { return t0.Add(d).UnixMicro() }

const day = 24 * time.Hour

func hit(id string, at time.Duration) *livetabv1.Hit {
	return &livetabv1.Hit{
		Id: id, Account: "acme", Session: "web-" + id, ClickId: "click1", ReceivedUs: us(at),
		Link: "spring", Campaign: "launch", DeepLink: "/promo", Destination: "https://example.com",
	}
}

func event(id, session string, at time.Duration) *livetabv1.Event {
	return &livetabv1.Event{
		Id: id, Account: "acme", Session: session, Name: "install", ClickId: "click1",
		TimeUs: us(at - time.Second), ReceivedUs: us(at),
	}
}

// want is the conversion of hit h1 (received at 0) and event e of app
// session app received at at.
func want(e *livetabv1.Event, h *livetabv1.Hit) *livetabv1.Conversion {
	return &livetabv1.Conversion{
		Id: "cv-" + e.Session, Account: "acme", HitSession: h.Session, AppSession: e.Session,
		HitId: h.Id, EventId: e.Id, ClickId: "click1",
		TimeUs: max(h.ReceivedUs, e.ReceivedUs), Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID,
		HitTimeUs: h.ReceivedUs, EventTimeUs: e.TimeUs, WindowUs: (7 * day).Microseconds(),
		Link: "spring", Campaign: "launch", DeepLink: "/promo", ReceivedUs: e.ReceivedUs,
	}
}

func TestInstallLike(t *testing.T) {
	for name, want := range map[string]bool{"install": true, "open": true, "purchase": false, "": false, "reinstall": false} {
		if got := attribution.InstallLike(name); got != want {
			t.Errorf("InstallLike(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestConvert(t *testing.T) {
	h := hit("h1", 0)
	tests := []struct {
		name string
		ev   *livetabv1.Event
		ok   bool
	}{
		{"event after hit", event("e1", "app", time.Hour), true},
		{"event before hit", event("e1", "app", -time.Hour), true},
		{"exactly the window after", event("e1", "app", 7*day), true},
		{"exactly the window before", event("e1", "app", -7*day), true},
		{"past the window", event("e1", "app", 7*day+time.Microsecond), false},
		{"before the window", event("e1", "app", -7*day-time.Microsecond), false},
		{"other account", func() *livetabv1.Event { e := event("e1", "app", time.Hour); e.Account = "evil"; return e }(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := attribution.Convert(h, tt.ev)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if ok && !proto.Equal(c, want(tt.ev, h)) {
				t.Errorf("conversion\n got %v\nwant %v", c, want(tt.ev, h))
			}
		})
	}
}

func TestClickStateTransitions(t *testing.T) {
	h1, h2 := hit("h1", 0), hit("h2", time.Minute)
	e1 := event("e1", "app1", time.Hour)
	e1again := event("e1", "app1", time.Hour)
	e1open := event("e1b", "app1", 2*time.Hour)
	e1open.Name = "open"
	e2 := event("e2", "app2", 2*time.Hour)
	late := event("e3", "app3", 8*day)

	type step struct {
		hit *livetabv1.Hit
		ev  *livetabv1.Event
	}
	tests := []struct {
		name        string
		steps       []step
		wantChanged []bool
		wantConv    []*livetabv1.Conversion // all conversions, in order
		wantState   *livetabv1.ClickState
	}{
		{
			name:        "hit then event",
			steps:       []step{{hit: h1}, {ev: e1}},
			wantChanged: []bool{true, true},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "event then hit",
			steps:       []step{{ev: e1}, {hit: h1}},
			wantChanged: []bool{true, true},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "event redelivered before the hit waits once",
			steps:       []step{{ev: e1}, {ev: e1again}},
			wantChanged: []bool{true, false},
			wantState:   &livetabv1.ClickState{Pending: []*livetabv1.Event{e1}},
		},
		{
			name:        "redeliveries after converting",
			steps:       []step{{hit: h1}, {ev: e1}, {ev: e1again}, {hit: h1}},
			wantChanged: []bool{true, true, false, false},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "redeliveries before converting",
			steps:       []step{{ev: e1}, {ev: e1again}, {hit: h1}, {ev: e1again}, {hit: h1}},
			wantChanged: []bool{true, false, true, false, false},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "second event of a converted app session",
			steps:       []step{{hit: h1}, {ev: e1}, {ev: e1open}},
			wantChanged: []bool{true, true, false},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "two events of one app session before the hit",
			steps:       []step{{ev: e1}, {ev: e1open}, {hit: h1}},
			wantChanged: []bool{true, true, true},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "the first hit is kept",
			steps:       []step{{hit: h1}, {hit: h2}, {ev: e1}},
			wantChanged: []bool{true, false, true},
			wantConv:    []*livetabv1.Conversion{want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app1"}},
		},
		{
			name:        "two app sessions each convert",
			steps:       []step{{ev: e2}, {hit: h1}, {ev: e1}},
			wantChanged: []bool{true, true, true},
			wantConv:    []*livetabv1.Conversion{want(e2, h1), want(e1, h1)},
			wantState:   &livetabv1.ClickState{Hit: h1, ConvertedSessions: []string{"app2", "app1"}},
		},
		{
			name:        "event out of the window after the hit",
			steps:       []step{{hit: h1}, {ev: late}},
			wantChanged: []bool{true, false},
			wantState:   &livetabv1.ClickState{Hit: h1},
		},
		{
			name:        "pending event out of the window is dropped",
			steps:       []step{{ev: late}, {hit: h1}},
			wantChanged: []bool{true, true},
			wantState:   &livetabv1.ClickState{Hit: h1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &livetabv1.ClickState{}
			var convs []*livetabv1.Conversion
			for i, s := range tt.steps {
				var changed bool
				if s.hit != nil {
					var out []*livetabv1.Conversion
					changed, out = attribution.OnHit(st, s.hit)
					convs = append(convs, out...)
				} else {
					var c *livetabv1.Conversion
					changed, c = attribution.OnEvent(st, s.ev)
					if c != nil {
						convs = append(convs, c)
					}
				}
				if changed != tt.wantChanged[i] {
					t.Errorf("step %d: changed = %v, want %v", i, changed, tt.wantChanged[i])
				}
			}
			if !slices.EqualFunc(convs, tt.wantConv, func(a, b *livetabv1.Conversion) bool { return proto.Equal(a, b) }) {
				t.Errorf("conversions\n got %v\nwant %v", convs, tt.wantConv)
			}
			if !proto.Equal(st, tt.wantState) {
				t.Errorf("state\n got %v\nwant %v", st, tt.wantState)
			}
		})
	}
}

func TestPendingIsBounded(t *testing.T) {
	st := &livetabv1.ClickState{}
	for i := range attribution.MaxPending + 2 {
		attribution.OnEvent(st, event(fmt.Sprintf("e%02d", i), fmt.Sprintf("app%02d", i), time.Duration(i)*time.Minute))
	}
	if len(st.Pending) != attribution.MaxPending {
		t.Fatalf("%d pending, want %d", len(st.Pending), attribution.MaxPending)
	}
	if first := st.Pending[0].GetId(); first != "e02" {
		t.Errorf("oldest pending %s, want e02 (the two oldest dropped)", first)
	}
	_, out := attribution.OnHit(st, hit("h1", 0))
	if len(out) != attribution.MaxPending {
		t.Errorf("hit converted %d pending events, want %d", len(out), attribution.MaxPending)
	}
}
