package attribution_test

import (
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
)

func candidate(m livetabv1.MatchMethod, h *livetabv1.Hit, e *livetabv1.Event, n int32) *livetabv1.Candidate {
	return &livetabv1.Candidate{Method: m, Hit: h, Event: e, Candidates: n, WindowUs: cfg.Window(m).Microseconds()}
}

func TestOnRegister(t *testing.T) {
	grace := cfg.Grace.Microseconds()
	e1 := install("e1", "app", time.Minute)
	e0 := install("e0", "app", 0, named("first_open"))
	st := &livetabv1.AppSessionState{}
	if changed, due := attribution.OnRegister(cfg, st, e1); !changed || due != e1.ReceivedUs+grace {
		t.Fatalf("first install: changed %v due %d, want its deadline", changed, due)
	}
	if changed, due := attribution.OnRegister(cfg, st, install("e1", "app", time.Minute)); changed || due != e1.ReceivedUs+grace {
		t.Errorf("redelivered install: changed %v due %d, want the same deadline scheduled again", changed, due)
	}
	if changed, due := attribution.OnRegister(cfg, st, e0); !changed || due != e0.ReceivedUs+grace || st.Install.Id != "e0" {
		t.Errorf("earlier install: changed %v due %d install %s, want it to move the deadline", changed, due, st.Install.Id)
	}
	if changed, due := attribution.OnRegister(cfg, st, install("e2", "app", time.Hour)); changed || due != 0 {
		t.Errorf("later install: changed %v due %d, want nothing", changed, due)
	}
	decided := &livetabv1.AppSessionState{Decided: true}
	if changed, due := attribution.OnRegister(cfg, decided, e1); changed || due != 0 {
		t.Errorf("decided session: changed %v due %d, want nothing", changed, due)
	}
}

func TestAppSessionDecisions(t *testing.T) {
	e := install("e1", "app", time.Hour, withClick("c"), withDevices("d"), withReq(appReq))
	deadline := e.ReceivedUs + cfg.Grace.Microseconds()
	hc := hit("hc", 0, click("c"))
	hd := hit("hd", 10*time.Minute, device("d"))
	hdNewer := hit("hd2", 20*time.Minute, device("d"))
	hf := hit("hf", 30*time.Minute, from(browserReq))
	hfOlder := hit("hf0", 5*time.Minute, from(browserReq))

	type step struct {
		c      *livetabv1.Candidate
		expire int64
	}
	tests := []struct {
		name     string
		steps    []step
		want     *livetabv1.Conversion // the conversion emitted by any step
		decided  bool
		wantStep int // the step that emits it
	}{
		{
			name:  "click id decides at once",
			steps: []step{{c: candidate(byClick, hc, e, 0)}, {expire: deadline}},
			want:  want(byClick, hc, e, 0), decided: true, wantStep: 0,
		},
		{
			name:  "click id beats a device id known before",
			steps: []step{{c: candidate(byDevice, hd, e, 0)}, {c: candidate(byClick, hc, e, 0)}},
			want:  want(byClick, hc, e, 0), decided: true, wantStep: 1,
		},
		{
			name:  "device id beats a more recent fingerprint at the deadline",
			steps: []step{{c: candidate(byFingerprint, hf, e, 2)}, {c: candidate(byDevice, hd, e, 0)}, {expire: deadline}},
			want:  want(byDevice, hd, e, 0), decided: true, wantStep: 2,
		},
		{
			name: "the most recent device hit, whatever the order",
			steps: []step{{c: candidate(byDevice, hdNewer, e, 0)}, {c: candidate(byDevice, hd, e, 0)},
				{expire: deadline}},
			want: want(byDevice, hdNewer, e, 0), decided: true, wantStep: 2,
		},
		{
			name: "fingerprint keeps the best hit and the largest count",
			steps: []step{{c: candidate(byFingerprint, hf, e, 1)}, {c: candidate(byFingerprint, hfOlder, e, 2)},
				{expire: deadline}},
			want: want(byFingerprint, hf, e, 2), decided: true, wantStep: 2,
		},
		{
			name:  "nothing before the deadline",
			steps: []step{{c: candidate(byDevice, hd, e, 0)}, {expire: deadline - 1}},
		},
		{
			name:    "no candidate: organic",
			steps:   []step{{expire: deadline}},
			decided: true,
		},
		{
			name:    "decided sessions ignore later candidates",
			steps:   []step{{expire: deadline}, {c: candidate(byClick, hc, e, 0)}},
			decided: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := &livetabv1.AppSessionState{}
			attribution.OnRegister(cfg, st, e)
			var got *livetabv1.Conversion
			for i, s := range tt.steps {
				var c *livetabv1.Conversion
				if s.c != nil {
					_, c = attribution.OnCandidate(st, s.c)
				} else {
					var due int64
					_, c, due = attribution.OnExpire(st, s.expire)
					if s.expire < deadline && due != deadline {
						t.Errorf("step %d: early expire asks for a timer at %d, want %d", i, due, deadline)
					}
				}
				if c != nil {
					if got != nil {
						t.Fatalf("step %d: a second conversion %v", i, c)
					}
					if i != tt.wantStep {
						t.Errorf("converted at step %d, want %d", i, tt.wantStep)
					}
					got = c
				}
			}
			if !proto.Equal(got, tt.want) {
				t.Errorf("conversion\n got %v\nwant %v", got, tt.want)
			}
			if st.Decided != tt.decided {
				t.Errorf("decided = %v, want %v", st.Decided, tt.decided)
			}
			if st.Decided && (len(st.Candidates) != 0 || st.Install != nil || !proto.Equal(st.Conversion, tt.want)) {
				t.Errorf("decided state keeps more than its decision: %v", st)
			}
		})
	}
}

// TestMergeIsOrderIndependent feeds the same candidates of one method in
// every order: the kept candidate must not depend on it.
func TestMergeIsOrderIndependent(t *testing.T) {
	e1 := install("e1", "app", time.Hour, withReq(appReq))
	e2 := install("e2", "app", 2*time.Hour, withReq(appReq), named("first_open"))
	cs := []*livetabv1.Candidate{
		candidate(byFingerprint, hit("h1", 0, from(browserReq)), e1, 1),
		candidate(byFingerprint, hit("h2", time.Minute, from(browserReq)), e2, 2),
		candidate(byFingerprint, hit("h2", time.Minute, from(browserReq)), e1, 2),
		candidate(byFingerprint, hit("h0", time.Minute, from(browserReq)), e2, 3),
	}
	var first *livetabv1.AppSessionState
	perm := []int{0, 1, 2, 3}
	for range 24 {
		st := &livetabv1.AppSessionState{}
		for _, i := range perm {
			attribution.OnCandidate(st, cs[i])
		}
		if first == nil {
			first = st
			// h0 and h2 tie on time: h0 has the smaller id. The count is
			// the largest seen.
			if c := st.Candidates[0]; c.Hit.Id != "h0" || c.Event.Id != "e2" || c.Candidates != 3 {
				t.Errorf("kept %s for %s with %d candidates, want h0 for e2 with 3", c.Hit.Id, c.Event.Id, c.Candidates)
			}
		} else if !proto.Equal(st, first) {
			t.Errorf("order %v kept %v, another order %v", perm, st, first)
		}
		nextPermutation(perm)
	}
}

func nextPermutation(p []int) {
	i := len(p) - 2
	for i >= 0 && p[i] >= p[i+1] {
		i--
	}
	if i < 0 {
		for l, r := 0, len(p)-1; l < r; l, r = l+1, r-1 {
			p[l], p[r] = p[r], p[l]
		}
		return
	}
	j := len(p) - 1
	for p[j] <= p[i] {
		j--
	}
	p[i], p[j] = p[j], p[i]
	for l, r := i+1, len(p)-1; l < r; l, r = l+1, r-1 {
		p[l], p[r] = p[r], p[l]
	}
}

func TestConvert(t *testing.T) {
	h := hit("h1", 0, click("c1"), device("d"))
	e := install("e1", "app", 90*time.Second, withDevices("d"))
	got := attribution.Convert(candidate(byDevice, h, e, 0))
	wantC := &livetabv1.Conversion{
		Id: "cv-app", Account: "acme", HitSession: "web-h1", AppSession: "app", HitId: "h1", EventId: "e1", ClickId: "c1",
		TimeUs: us(90 * time.Second), Method: byDevice, HitTimeUs: us(0), EventTimeUs: us(89 * time.Second),
		WindowUs: (7 * day).Microseconds(), Link: "spring", Campaign: "launch", DeepLink: "/promo",
		ReceivedUs: us(90 * time.Second), HitToInstallUs: (90 * time.Second).Microseconds(),
	}
	if !proto.Equal(got, wantC) {
		t.Errorf("Convert\n got %v\nwant %v", got, wantC)
	}
}
