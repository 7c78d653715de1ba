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

func TestQualifies(t *testing.T) {
	const us1 = time.Microsecond
	otherReq := &livetabv1.Request{Ip: "203.0.113.8", Os: "iOS", OsVersion: "17.4", Device: "iPhone"}
	newerOS := &livetabv1.Request{Ip: "203.0.113.7", Os: "iOS", OsVersion: "17.5", Device: "iPhone"}
	tests := []struct {
		name string
		m    livetabv1.MatchMethod
		h    *livetabv1.Hit
		e    *livetabv1.Event
		want bool
	}{
		{"click: install after hit", byClick, hit("h", 0, click("c")), install("e", "a", time.Hour, withClick("c")), true},
		{"click: install before hit", byClick, hit("h", 0, click("c")), install("e", "a", -time.Hour, withClick("c")), true},
		{"click: exactly the window after", byClick, hit("h", 0, click("c")), install("e", "a", 7*day, withClick("c")), true},
		{"click: exactly the window before", byClick, hit("h", 0, click("c")), install("e", "a", -7*day, withClick("c")), true},
		{"click: 1µs past the window", byClick, hit("h", 0, click("c")), install("e", "a", 7*day+us1, withClick("c")), false},
		{"click: 1µs before the window", byClick, hit("h", 0, click("c")), install("e", "a", -7*day-us1, withClick("c")), false},
		{"click: other click id", byClick, hit("h", 0, click("c")), install("e", "a", time.Hour, withClick("d")), false},
		{"click: neither has one", byClick, hit("h", 0), install("e", "a", time.Hour), false},
		{"click: other account", byClick, hit("h", 0, click("c"), hitAccount("evil")), install("e", "a", time.Hour, withClick("c")), false},

		{"device: one of the install's ids", byDevice, hit("h", 0, device("d2")), install("e", "a", time.Hour, withDevices("d1", "d2")), true},
		{"device: same time", byDevice, hit("h", 0, device("d")), install("e", "a", 0, withDevices("d")), true},
		{"device: exactly the window", byDevice, hit("h", 0, device("d")), install("e", "a", 7*day, withDevices("d")), true},
		{"device: 1µs past the window", byDevice, hit("h", 0, device("d")), install("e", "a", 7*day+us1, withDevices("d")), false},
		{"device: hit after the install", byDevice, hit("h", 0, device("d")), install("e", "a", -us1, withDevices("d")), false},
		{"device: other id", byDevice, hit("h", 0, device("d")), install("e", "a", time.Hour, withDevices("x")), false},
		{"device: other account", byDevice, hit("h", 0, device("d"), hitAccount("evil")), install("e", "a", time.Hour, withDevices("d")), false},
		{"device: hit without one", byDevice, hit("h", 0), install("e", "a", time.Hour, withDevices("")), false},

		{"fingerprint: normalised user agents", byFingerprint, hit("h", 0, from(browserReq)), install("e", "a", time.Hour, withReq(appReq)), true},
		{"fingerprint: exactly the window", byFingerprint, hit("h", 0, from(browserReq)), install("e", "a", day, withReq(appReq)), true},
		{"fingerprint: 1µs past the window", byFingerprint, hit("h", 0, from(browserReq)), install("e", "a", day+us1, withReq(appReq)), false},
		{"fingerprint: hit after the install", byFingerprint, hit("h", 0, from(browserReq)), install("e", "a", -us1, withReq(appReq)), false},
		{"fingerprint: other ip", byFingerprint, hit("h", 0, from(otherReq)), install("e", "a", time.Hour, withReq(appReq)), false},
		{"fingerprint: other minor version", byFingerprint, hit("h", 0, from(newerOS)), install("e", "a", time.Hour, withReq(appReq)), false},
		{"fingerprint: other account", byFingerprint, hit("h", 0, from(browserReq), hitAccount("evil")), install("e", "a", time.Hour, withReq(appReq)), false},
		{"fingerprint: no request", byFingerprint, hit("h", 0), install("e", "a", time.Hour), false},

		{"unknown method", 0, hit("h", 0, click("c")), install("e", "a", time.Hour, withClick("c")), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := attribution.Qualifies(cfg, tt.m, tt.h, tt.e); got != tt.want {
				t.Errorf("Qualifies = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestCompareHits(t *testing.T) {
	hs := []*livetabv1.Hit{hit("b", time.Minute), hit("z", 0), hit("a", 0), hit("c", time.Hour), hit("a2", time.Minute)}
	slices.SortFunc(hs, attribution.CompareHits)
	var ids []string
	for _, h := range hs {
		ids = append(ids, h.Id)
	}
	if want := []string{"c", "a2", "b", "a", "z"}; !slices.Equal(ids, want) {
		t.Errorf("preference order %v, want %v (most recent first, ties by smaller id)", ids, want)
	}
}

func hitIDs(st *livetabv1.MatchState) []string {
	var ids []string
	for _, h := range attribution.KeptHits(st) {
		ids = append(ids, h.GetId())
	}
	return ids
}

func TestMatchKeyState(t *testing.T) {
	fp := func(id string, at time.Duration) *livetabv1.Hit { return hit(id, at, from(browserReq)) }
	e := install("e1", "app1", time.Hour, withReq(appReq))
	type step struct {
		h *livetabv1.Hit
		e *livetabv1.Event
	}
	tests := []struct {
		name        string
		steps       []step
		wantChanged []bool
		// candidates sent by the last step: hit id and count each
		wantOut  []string
		wantHits []string
	}{
		{
			name:        "install then hits: each hit updates the candidate and count",
			steps:       []step{{e: e}, {h: fp("h1", 0)}, {h: fp("h2", time.Minute)}},
			wantChanged: []bool{true, true, true},
			wantOut:     []string{"h2/2"},
			wantHits:    []string{"h2", "h1"},
		},
		{
			name:        "hits then install",
			steps:       []step{{h: fp("h2", time.Minute)}, {h: fp("h1", 0)}, {e: e}},
			wantChanged: []bool{true, true, true},
			wantOut:     []string{"h2/2"},
			wantHits:    []string{"h2", "h1"},
		},
		{
			name:        "an older hit keeps the winner and counts",
			steps:       []step{{e: e}, {h: fp("h2", time.Minute)}, {h: fp("h1", 0)}},
			wantChanged: []bool{true, true, true},
			wantOut:     []string{"h2/2"},
			wantHits:    []string{"h2", "h1"},
		},
		{
			name:        "a hit after the install is kept but is no candidate",
			steps:       []step{{e: e}, {h: fp("late", 2*time.Hour)}},
			wantChanged: []bool{true, true},
			wantOut:     nil,
			wantHits:    []string{"late"},
		},
		{
			name:        "redelivered hit changes nothing but re-sends",
			steps:       []step{{e: e}, {h: fp("h1", 0)}, {h: fp("h1", 0)}},
			wantChanged: []bool{true, true, false},
			wantOut:     []string{"h1/1"},
			wantHits:    []string{"h1"},
		},
		{
			name:        "redelivered install changes nothing but re-sends",
			steps:       []step{{h: fp("h1", 0)}, {e: e}, {e: install("e1", "app1", time.Hour, withReq(appReq))}},
			wantChanged: []bool{true, true, false},
			wantOut:     []string{"h1/1"},
			wantHits:    []string{"h1"},
		},
		{
			name: "hits older than window plus grace of the newest go",
			steps: []step{{h: fp("old", day-cfg.Grace-time.Microsecond)}, {h: fp("edge", day-cfg.Grace)},
				{h: fp("new", 2*day)}},
			wantChanged: []bool{true, true, true},
			wantHits:    []string{"new", "edge"},
		},
		{
			name:        "a hit too old to keep changes nothing",
			steps:       []step{{h: fp("new", 2*day)}, {h: fp("old", 0)}},
			wantChanged: []bool{true, false},
			wantHits:    []string{"new"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &livetabv1.MatchState{}
			var out []*livetabv1.Candidate
			for i, s := range tt.steps {
				before := proto.Clone(st)
				var changed bool
				if s.h != nil {
					changed, out = attribution.OnMatchHit(cfg, byFingerprint, st, s.h)
				} else {
					var c *livetabv1.Candidate
					changed, c = attribution.OnMatchInstall(cfg, byFingerprint, st, s.e)
					out = nil
					if c != nil {
						out = append(out, c)
					}
				}
				if changed != tt.wantChanged[i] {
					t.Errorf("step %d: changed = %v, want %v", i, changed, tt.wantChanged[i])
				}
				if !changed && !proto.Equal(before, st) {
					t.Errorf("step %d: reported unchanged but the state changed", i)
				}
			}
			var got []string
			for _, c := range out {
				got = append(got, fmt.Sprintf("%s/%d", c.GetHit().GetId(), c.GetCandidates()))
				if c.GetMethod() != byFingerprint || c.GetWindowUs() != day.Microseconds() || c.GetEvent().GetId() != "e1" {
					t.Errorf("candidate %v: want method, window and event set", c)
				}
			}
			if !slices.Equal(got, tt.wantOut) {
				t.Errorf("candidates %v, want %v", got, tt.wantOut)
			}
			if ids := hitIDs(st); !slices.Equal(ids, tt.wantHits) {
				t.Errorf("kept hits %v, want %v", ids, tt.wantHits)
			}
		})
	}
}

func TestMatchKeyBounds(t *testing.T) {
	st := &livetabv1.MatchState{}
	for i := range attribution.MaxHits + 3 {
		attribution.OnMatchHit(cfg, byDevice, st, hit(fmt.Sprintf("h%03d", i), time.Duration(i)*time.Second, device("d")))
	}
	for i := range attribution.MaxInstalls + 2 {
		attribution.OnMatchInstall(cfg, byDevice, st, install(fmt.Sprintf("e%03d", i), fmt.Sprintf("app%d", i), time.Duration(i)*time.Second, withDevices("d")))
	}
	kept := attribution.KeptHits(st)
	if len(kept) != attribution.MaxHits || len(st.Installs) != attribution.MaxInstalls {
		t.Fatalf("%d hits, %d installs; want %d, %d", len(kept), len(st.Installs), attribution.MaxHits, attribution.MaxInstalls)
	}
	if newest, oldest := kept[0].Id, kept[len(kept)-1].Id; newest != fmt.Sprintf("h%03d", attribution.MaxHits+2) || oldest != "h003" {
		t.Errorf("kept hits %s..%s, want the newest", newest, oldest)
	}
	if oldest := st.Installs[len(st.Installs)-1].Id; oldest != "e002" {
		t.Errorf("oldest install kept %s, want e002", oldest)
	}
	// The fingerprint count stops at the bound.
	fp := &livetabv1.MatchState{}
	for j := range attribution.MaxHits + 5 {
		attribution.OnMatchHit(cfg, byFingerprint, fp, hit(fmt.Sprintf("f%03d", j), time.Duration(j)*time.Second, from(browserReq)))
	}
	_, c := attribution.OnMatchInstall(cfg, byFingerprint, fp, install("e", "app", time.Hour, withReq(appReq)))
	if c.GetCandidates() != attribution.MaxHits || c.GetHit().GetId() != fmt.Sprintf("f%03d", attribution.MaxHits+4) {
		t.Errorf("candidate %s of %d, want the newest of the bound %d", c.GetHit().GetId(), c.GetCandidates(), attribution.MaxHits)
	}
}

func TestMatchKeyCleanup(t *testing.T) {
	w := (cfg.DeviceWindow + cfg.Grace).Microseconds()
	st := &livetabv1.MatchState{}
	attribution.OnMatchHit(cfg, byDevice, st, hit("h1", 0, device("d")))
	attribution.ExtendCleanup(cfg, byDevice, st, 0)
	if st.CleanupUs != us(0)+w {
		t.Fatalf("clean-up at %d, want the newest record plus window and grace %d", st.CleanupUs, us(0)+w)
	}
	attribution.OnMatchHit(cfg, byDevice, st, hit("h2", time.Hour, device("d")))
	attribution.ExtendCleanup(cfg, byDevice, st, 0)
	if st.CleanupUs != us(time.Hour)+w {
		t.Errorf("clean-up moved to %d, want %d", st.CleanupUs, us(time.Hour)+w)
	}
	// An older record arriving late does not move it back.
	attribution.OnMatchHit(cfg, byDevice, st, hit("h0", -time.Hour, device("d")))
	attribution.ExtendCleanup(cfg, byDevice, st, 0)
	if st.CleanupUs != us(time.Hour)+w {
		t.Errorf("a late older hit moved the clean-up to %d, want %d", st.CleanupUs, us(time.Hour)+w)
	}
	for _, c := range []struct {
		name string
		now  int64
		want bool
	}{
		{"at the first hit's time", us(0) + w, false},
		{"just before", us(time.Hour) + w - 1, false},
		{"at the clean-up time", us(time.Hour) + w, true},
		{"after", us(time.Hour) + w + 1, true},
	} {
		if got := attribution.Expired(st, c.now); got != c.want {
			t.Errorf("%s: expired %v, want %v", c.name, got, c.want)
		}
	}
	// A record processed long after its time (a replay) counts from the
	// processing time.
	replay := &livetabv1.MatchState{}
	attribution.OnMatchHit(cfg, byDevice, replay, hit("h1", 0, device("d")))
	attribution.ExtendCleanup(cfg, byDevice, replay, us(30*day))
	if replay.CleanupUs != us(30*day)+w {
		t.Errorf("replayed record: clean-up at %d, want processing time plus window and grace %d", replay.CleanupUs, us(30*day)+w)
	}
	if attribution.Expired(&livetabv1.MatchState{}, us(100*day)) {
		t.Error("a key without clean-up time expired")
	}
}
