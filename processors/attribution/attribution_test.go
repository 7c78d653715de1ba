package attribution_test

import (
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/topics"
)

// graceEnd is the tick that ends the grace period of an install received
// at t0+at.
func graceEnd(at time.Duration) time.Duration { return at + cfg.Grace }

func expectOne(t *testing.T, r *run, w *livetabv1.Conversion) {
	t.Helper()
	got := r.conversions()
	if len(got) != 1 || !proto.Equal(got[w.AppSession], w) {
		t.Fatalf("conversions %v, want exactly\n%v", got, w)
	}
}

func expectNone(t *testing.T, r *run, when string) {
	t.Helper()
	if got := r.conversions(); len(got) != 0 {
		t.Fatalf("%s: conversions %v, want none", when, got)
	}
}

func TestClickIDDecidesOnArrival(t *testing.T) {
	h := hit("h1", 0, click("click1"))
	e := install("e1", "app", time.Hour, withClick("click1"))
	for name, steps := range map[string][]func(r *run){
		"hit first":     {func(r *run) { r.hit(h) }, func(r *run) { r.event(e) }},
		"install first": {func(r *run) { r.event(e) }, func(r *run) { r.hit(h) }},
	} {
		t.Run(name, func(t *testing.T) {
			r := start(t, attribution.Options{})
			steps[0](r)
			expectNone(t, r, "after the first")
			// No tick: a click id needs no grace period.
			steps[1](r)
			expectOne(t, r, want(byClick, h, e, 0))
			if st := r.app("app"); !st.GetDecided() || !proto.Equal(st.GetConversion(), want(byClick, h, e, 0)) {
				t.Errorf("app session state %v, want decided with the conversion", st)
			}
			r.tick(graceEnd(time.Hour))
			expectNone(t, r, "at the deadline of a decided session")
		})
	}
}

func TestDeviceAndFingerprintDecideAtTheDeadline(t *testing.T) {
	cases := []struct {
		name string
		h    *livetabv1.Hit
		e    *livetabv1.Event
		w    *livetabv1.Conversion
	}{
		func() (c struct {
			name string
			h    *livetabv1.Hit
			e    *livetabv1.Event
			w    *livetabv1.Conversion
		}) {
			c.name = "device id"
			c.h = hit("h1", -time.Hour, device("idfa-1"))
			c.e = install("e1", "app", 0, withDevices("idfv-9", "idfa-1"))
			c.w = want(byDevice, c.h, c.e, 0)
			return c
		}(),
		func() (c struct {
			name string
			h    *livetabv1.Hit
			e    *livetabv1.Event
			w    *livetabv1.Conversion
		}) {
			c.name = "fingerprint"
			c.h = hit("h1", -time.Minute, from(browserReq))
			c.e = install("e1", "app", 0, withReq(appReq))
			c.w = want(byFingerprint, c.h, c.e, 1)
			return c
		}(),
	}
	for _, c := range cases {
		for _, order := range []string{"hit first", "install first, hit late within grace"} {
			t.Run(c.name+"/"+order, func(t *testing.T) {
				r := start(t, attribution.Options{})
				if order == "hit first" {
					r.hit(c.h)
					r.event(c.e)
				} else {
					r.event(c.e)
					r.tick(graceEnd(0) - time.Second)
					r.hit(c.h)
				}
				expectNone(t, r, "before the deadline")
				r.tick(graceEnd(0) - time.Microsecond)
				expectNone(t, r, "1µs before the deadline")
				r.tick(graceEnd(0))
				expectOne(t, r, c.w)
			})
		}
	}
}

func TestHitAfterTheGracePeriodIsTooLate(t *testing.T) {
	r := start(t, attribution.Options{})
	e := install("e1", "app", 0, withDevices("idfa-1"), withReq(appReq), withClick("click1"))
	r.event(e)
	r.tick(graceEnd(0))
	expectNone(t, r, "organic at the deadline")
	if st := r.app("app"); !st.GetDecided() || st.GetConversion() != nil {
		t.Fatalf("app session %v, want decided organic", st)
	}
	// Every kind of late hit, even a click id: decided is decided.
	r.hit(hit("h1", -time.Hour, device("idfa-1")), hit("h2", -time.Minute, from(browserReq)), hit("h3", -time.Second, click("click1")))
	r.tick(graceEnd(time.Hour))
	expectNone(t, r, "after late hits")
}

func TestCascade(t *testing.T) {
	e := install("e1", "app", time.Hour, withClick("c1"), withDevices("d1"), withReq(appReq))
	clickHit := hit("hc", 0, click("c1"))
	deviceHit := hit("hd", 10*time.Minute, device("d1"))
	fpHit := hit("hf", 50*time.Minute, from(browserReq))

	t.Run("click id over more recent device and fingerprint hits", func(t *testing.T) {
		r := start(t, attribution.Options{})
		r.hit(fpHit, deviceHit)
		r.event(e)
		r.hit(clickHit)
		expectOne(t, r, want(byClick, clickHit, e, 0))
	})
	t.Run("device id over a more recent fingerprint hit", func(t *testing.T) {
		r := start(t, attribution.Options{})
		r.hit(fpHit)
		r.event(e)
		r.hit(deviceHit)
		r.tick(graceEnd(time.Hour))
		expectOne(t, r, want(byDevice, deviceHit, e, 0))
	})
	t.Run("a click id of another account falls through", func(t *testing.T) {
		r := start(t, attribution.Options{})
		r.hit(hit("evil", 0, click("c1"), hitAccount("evil")), fpHit)
		r.event(e)
		r.tick(graceEnd(time.Hour))
		expectOne(t, r, want(byFingerprint, fpHit, e, 1))
	})
}

func TestLastClickAndTies(t *testing.T) {
	e := install("e1", "app", time.Hour, withDevices("d1"), withReq(appReq))
	for name, tc := range map[string]struct {
		hits []*livetabv1.Hit
		w    *livetabv1.Conversion
	}{
		"most recent device hit": {
			hits: []*livetabv1.Hit{hit("b", 0, device("d1")), hit("a", time.Minute, device("d1")), hit("c", 2*time.Minute, device("d1"))},
			w:    want(byDevice, hit("c", 2*time.Minute, device("d1")), e, 0),
		},
		"same time: smaller id": {
			hits: []*livetabv1.Hit{hit("b", time.Minute, device("d1")), hit("a", time.Minute, device("d1")), hit("c", time.Minute, device("d1"))},
			w:    want(byDevice, hit("a", time.Minute, device("d1")), e, 0),
		},
		"fingerprint: most recent, counting all": {
			hits: []*livetabv1.Hit{hit("f1", 0, from(browserReq)), hit("f3", 30*time.Minute, from(browserReq)), hit("f2", 10*time.Minute, from(browserReq))},
			w:    want(byFingerprint, hit("f3", 30*time.Minute, from(browserReq)), e, 3),
		},
	} {
		for _, order := range []string{"forward", "backward", "install between"} {
			t.Run(name+"/"+order, func(t *testing.T) {
				r := start(t, attribution.Options{})
				hs := tc.hits
				switch order {
				case "forward":
					r.hit(hs...)
					r.event(e)
				case "backward":
					r.event(e)
					for i := len(hs) - 1; i >= 0; i-- {
						r.hit(hs[i])
					}
				default:
					r.hit(hs[1])
					r.event(e)
					r.hit(hs[2], hs[0])
				}
				r.tick(graceEnd(time.Hour))
				expectOne(t, r, tc.w)
			})
		}
	}
}

func TestWindowEdges(t *testing.T) {
	const us1 = time.Microsecond
	tests := []struct {
		name string
		h    *livetabv1.Hit
		e    *livetabv1.Event
		w    *livetabv1.Conversion // nil: organic
	}{
		{name: "click id: exactly the window", h: hit("h", 0, click("c")), e: install("e", "app", 7*day, withClick("c"))},
		{name: "click id: 1µs over", h: hit("h", 0, click("c")), e: install("e", "app", 7*day+us1, withClick("c"))},
		{name: "device id: exactly the window", h: hit("h", 0, device("d")), e: install("e", "app", 7*day, withDevices("d"))},
		{name: "device id: 1µs over", h: hit("h", 0, device("d")), e: install("e", "app", 7*day+us1, withDevices("d"))},
		{name: "fingerprint: exactly the window", h: hit("h", 0, from(browserReq)), e: install("e", "app", day, withReq(appReq))},
		{name: "fingerprint: 1µs over", h: hit("h", 0, from(browserReq)), e: install("e", "app", day+us1, withReq(appReq))},
	}
	tests[0].w = want(byClick, tests[0].h, tests[0].e, 0)
	tests[2].w = want(byDevice, tests[2].h, tests[2].e, 0)
	tests[4].w = want(byFingerprint, tests[4].h, tests[4].e, 1)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := start(t, attribution.Options{})
			r.event(tc.e)
			r.hit(tc.h)
			// The timers fire at the first tick at or after the deadline's
			// second.
			r.tickUs(tc.e.ReceivedUs + (cfg.Grace + time.Second).Microseconds())
			got := r.conversions()
			if tc.w == nil {
				if len(got) != 0 {
					t.Errorf("conversions %v, want organic", got)
				}
				if !r.app("app").GetDecided() {
					t.Error("app session not decided")
				}
				return
			}
			if len(got) != 1 || !proto.Equal(got["app"], tc.w) {
				t.Errorf("conversions %v, want %v", got, tc.w)
			}
		})
	}
}

func TestConfiguredWindowsAndGrace(t *testing.T) {
	r := start(t, attribution.Options{Config: attribution.Config{DeviceWindow: time.Hour, Grace: time.Minute}})
	e := install("e1", "app", 2*time.Hour, withDevices("d1"))
	old := hit("old", 0, device("d1"))
	inWindow := hit("in", time.Hour+time.Second, device("d1"))
	r.hit(old)
	r.event(e)
	r.tick(2*time.Hour + 30*time.Second)
	r.hit(inWindow)
	expectNone(t, r, "within the configured grace")
	r.tick(2*time.Hour + time.Minute)
	got := r.conversions()
	w := want(byDevice, inWindow, e, 0)
	w.WindowUs = time.Hour.Microseconds()
	if len(got) != 1 || !proto.Equal(got["app"], w) {
		t.Errorf("conversions %v, want %v", got, w)
	}
}

func TestRedelivery(t *testing.T) {
	h := hit("h1", 0, device("d1"), click("c9"))
	e := install("e1", "app", time.Minute, withDevices("d1"), withReq(appReq))
	fpHit := hit("h2", 30*time.Second, from(browserReq))
	r := start(t, attribution.Options{})
	writes := r.tt.NewQueueTracker(string(table))

	r.hit(h, fpHit)
	r.event(e)
	firstWrites := len(gokatest.Drain(writes))
	// Redeliveries before the decision change no state.
	r.hit(h, fpHit)
	r.event(e)
	for _, m := range gokatest.Drain(writes) {
		t.Errorf("redelivery before the decision wrote key %q", m.Key)
	}
	if firstWrites == 0 {
		t.Fatal("the first delivery wrote nothing")
	}
	r.tick(graceEnd(time.Minute))
	expectOne(t, r, want(byDevice, h, e, 0))
	gokatest.Drain(writes)
	// And after it neither a conversion nor a write of the session.
	r.hit(h, fpHit)
	r.event(e)
	r.tick(graceEnd(time.Hour))
	expectNone(t, r, "after redeliveries")
	for _, m := range gokatest.Drain(writes) {
		if m.Key == attribution.AppKey("app") {
			t.Errorf("redelivery after the decision wrote the app session")
		}
	}
}

func TestOneConversionPerAppSession(t *testing.T) {
	h1 := hit("h1", 0, click("c1"))
	h2 := hit("h2", time.Minute, click("c2"))
	installEv := install("e1", "app", time.Hour, withClick("c1"))
	firstOpen := install("e2", "app", time.Hour+time.Second, withClick("c2"), named("first_open"))
	r := start(t, attribution.Options{})
	r.hit(h1, h2)
	r.event(installEv, firstOpen)
	r.tick(graceEnd(2 * time.Hour))
	expectOne(t, r, want(byClick, h1, installEv, 0))

	// The other way round the first install-like event to find its hit
	// wins; still one.
	r2 := start(t, attribution.Options{})
	r2.event(installEv, firstOpen)
	r2.hit(h2, h1)
	r2.tick(graceEnd(2 * time.Hour))
	expectOne(t, r2, want(byClick, h2, firstOpen, 0))
}

func TestOnlyInstallLikeEventsConvert(t *testing.T) {
	r := start(t, attribution.Options{})
	loops := r.tt.NewQueueTracker(string(loop))
	r.hit(hit("h1", 0, click("c1"), device("d1"), from(browserReq)))
	gokatest.Drain(loops)
	for _, name := range []string{"open", "purchase", "signup"} {
		r.event(install("e-"+name, "app-"+name, time.Minute, named(name), withClick("c1"), withDevices("d1"), withReq(appReq)))
	}
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("non-install events looped %d records", len(l))
	}
	r.tick(graceEnd(time.Hour))
	expectNone(t, r, "for non-install events")
	fo := install("e-fo", "app-fo", time.Minute, named("first_open"), withClick("c1"))
	r.event(fo)
	expectOne(t, r, want(byClick, hit("h1", 0, click("c1"), device("d1"), from(browserReq)), fo, 0))
}

func TestIdleMatchKeysAreDeleted(t *testing.T) {
	var logs gokatest.Logs
	r := start(t, attribution.Options{Logger: logs.Logger()})
	loops := r.tt.NewQueueTracker(string(loop))
	h := hit("h1", 0, click("c1"), device("d1"), from(browserReq))
	e := install("e1", "app", time.Minute, withDevices("d1"), withReq(appReq))
	r.hit(h)
	keys := attribution.HitKeys(h)
	// The hit goes to its keys and nowhere else: no clean-up timers.
	var looped []string
	for _, m := range gokatest.Drain(loops) {
		looped = append(looped, m.Key)
	}
	if !slices.Equal(looped, keys) {
		t.Errorf("a hit looped to %q, want its match keys %q only", looped, keys)
	}
	r.event(e)
	r.tick(graceEnd(time.Minute))
	expectOne(t, r, want(byDevice, h, e, 0))
	has := func(k string) bool { return r.tt.TableValue(table, k) != nil }
	for _, k := range keys {
		if !has(k) {
			t.Fatalf("match key %s missing before its clean-up", k)
		}
	}
	r.sweep(t0.Add(time.Hour))
	for _, k := range keys {
		if !has(k) {
			t.Errorf("match key %s deleted by a sweep within its window", k)
		}
	}
	// A visit without a time is logged and deletes nothing.
	r.sweep("not a time")
	if _, ok := logs.Find("level=WARN", "clean-up visit without a time"); !ok {
		t.Errorf("no warning for a visit without a time; logs %v", logs.Lines())
	}
	if !has(keys[2]) {
		t.Error("a visit without a time deleted the fingerprint key")
	}
	// The fingerprint key goes a day (plus grace) after its newest record,
	// the others a week after theirs.
	r.sweep(t0.Add(time.Minute + day + cfg.Grace))
	if c, f := attribution.ClickKey("c1"), keys[2]; !has(c) || has(f) {
		t.Errorf("after a day: click key kept %v (want true), fingerprint key kept %v (want false)", has(c), has(f))
	}
	r.sweep(t0.Add(time.Minute + 7*day + cfg.Grace))
	for _, k := range keys {
		if has(k) {
			t.Errorf("match key %s kept after its window", k)
		}
	}
	if st := r.app("app"); !st.GetDecided() {
		t.Errorf("the decided app session must stay: %v", st)
	}
	// What is left are the decided session and the timer partition key.
	if got := r.tt.GetTableKeys(table); len(got) != 2 {
		t.Errorf("table keys %v, want the app session and the timer partition key", got)
	}
}

// TestCleanupTimersOfEarlierVersions: match keys used to schedule a clean-up
// timer each; an expire still pending from such a timer deletes the key
// when it is due and otherwise leaves it to the sweep, scheduling nothing.
func TestCleanupTimersOfEarlierVersions(t *testing.T) {
	r := start(t, attribution.Options{})
	loops := r.tt.NewQueueTracker(string(loop))
	r.hit(hit("h1", 0, click("c1")))
	gokatest.Drain(loops)
	key := attribution.ClickKey("c1")
	expire := func(at time.Duration) {
		gokatest.Consume(t, r.tt, loop, key, &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Timer{
			Timer: &livetabv1.Timer{Op: &livetabv1.Timer_ExpireUs{ExpireUs: us(at)}}}})
	}
	expire(day)
	if r.tt.TableValue(table, key) == nil {
		t.Fatal("an early expire deleted the click key")
	}
	// The tracker sees the expire itself; nothing else may follow it.
	if l := gokatest.Drain(loops); len(l) != 1 || l[0].Key != key {
		t.Errorf("loop records %v after an early expire, want only the expire; the sweep takes the key", l)
	}
	expire(7*day + cfg.Grace)
	if r.tt.TableValue(table, key) != nil {
		t.Error("a due expire kept the click key")
	}
}

func TestBadRecordsAreSkipped(t *testing.T) {
	var logs gokatest.Logs
	r := start(t, attribution.Options{Logger: logs.Logger()})
	garbage := []byte{0xff, 0xff}
	for _, topic := range []goka.Stream{topics.Hits, topics.Events, topics.Clock, loop} {
		r.tt.Consume(string(topic), "k", garbage)
		if _, ok := logs.Find("level=WARN", "does not decode", "topic="+string(topic), "offset="); !ok {
			t.Errorf("no warning for garbage on %s; logs %v", topic, logs.Lines())
		}
	}
	skips := []struct {
		topic goka.Stream
		key   string
		m     proto.Message
		log   string
	}{
		{topics.Hits, "s", hit("h0", 0, hitAccount(""), click("c1")), "hit without id, account or session"},
		{topics.Events, "s", install("e0", "", 0, withClick("c1")), "event without id, account or session"},
		{topics.Clock, "a:app", &livetabv1.Tick{TimeUs: 1}, "tick not keyed by a timer partition key"},
		{loop, "c:c1", &livetabv1.AttributionInput{}, "neither hit, event nor expire"},
		{loop, "a:app", &livetabv1.AttributionInput{}, "neither event, candidate nor expire"},
		{loop, "t:0", &livetabv1.AttributionInput{}, "without timer message"},
		{loop, "t:0", &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Timer{Timer: &livetabv1.Timer{Op: &livetabv1.Timer_FireUs{FireUs: 1}}}}, "timer message does not apply"},
		{loop, "x:1", &livetabv1.AttributionInput{}, "no known namespace"},
		{loop, "a:other", &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Event{Event: install("e1", "app", 0)}}, "install not keyed by its app session"},
		{loop, "a:app", &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Candidate{Candidate: &livetabv1.Candidate{Event: install("e1", "app", 0)}}}, "candidate without hit"},
	}
	for _, s := range skips {
		gokatest.Consume(t, r.tt, s.topic, s.key, s.m)
		if _, ok := logs.Find("level=WARN", s.log, "topic="+string(s.topic)); !ok {
			t.Errorf("no warning %q for %s on %s; logs %v", s.log, s.key, s.topic, logs.Lines())
		}
	}
	// Still running, and the skipped records left no conversion behind.
	h, e := hit("h1", 0, click("c1")), install("e1", "app", time.Hour, withClick("c1"))
	r.hit(h)
	r.event(e)
	expectOne(t, r, want(byClick, h, e, 0))
}
