package attribution_test

import (
	"context"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/topics"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func us(d time.Duration) int64 { return t0.Add(d).UnixMicro() }

const day = 24 * time.Hour

var cfg = attribution.Config{}.WithDefaults()

// The browser that clicked and the app that installed on the same phone:
// their user agents differ in case and patch level only.
var (
	browserReq = &livetabv1.Request{Ip: "203.0.113.7", Os: "iOS", OsVersion: "17.4.1", Device: "iPhone", Browser: "Safari"}
	appReq     = &livetabv1.Request{Ip: "203.0.113.7", Os: "ios", OsVersion: "17_4", Device: "iphone"}
)

// hit is a hit of account acme received at t0+at, in its own hit session,
// with no match key until options add some.
func hit(id string, at time.Duration, opts ...func(*livetabv1.Hit)) *livetabv1.Hit {
	h := &livetabv1.Hit{
		Id: id, Account: "acme", Session: "web-" + id, ReceivedUs: us(at),
		Link: "spring", Campaign: "launch", DeepLink: "/promo", Destination: "https://example.com",
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

func click(c string) func(*livetabv1.Hit)  { return func(h *livetabv1.Hit) { h.ClickId = c } }
func device(d string) func(*livetabv1.Hit) { return func(h *livetabv1.Hit) { h.DeviceId = d } }
func from(r *livetabv1.Request) func(*livetabv1.Hit) {
	return func(h *livetabv1.Hit) { h.Request = r }
}
func hitAccount(a string) func(*livetabv1.Hit) { return func(h *livetabv1.Hit) { h.Account = a } }

// install is an install of app session session received at t0+at.
func install(id, session string, at time.Duration, opts ...func(*livetabv1.Event)) *livetabv1.Event {
	e := &livetabv1.Event{
		Id: id, Account: "acme", Session: session, Name: "install",
		TimeUs: us(at - time.Second), ReceivedUs: us(at),
	}
	for _, o := range opts {
		o(e)
	}
	return e
}

func withClick(c string) func(*livetabv1.Event) { return func(e *livetabv1.Event) { e.ClickId = c } }
func withDevices(d ...string) func(*livetabv1.Event) {
	return func(e *livetabv1.Event) { e.DeviceIds = d }
}
func withReq(r *livetabv1.Request) func(*livetabv1.Event) {
	return func(e *livetabv1.Event) { e.Request = r }
}
func named(n string) func(*livetabv1.Event)     { return func(e *livetabv1.Event) { e.Name = n } }
func evAccount(a string) func(*livetabv1.Event) { return func(e *livetabv1.Event) { e.Account = a } }

const (
	byClick       = livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID
	byDevice      = livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID
	byFingerprint = livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT
)

// want is the conversion of e by h with method m; n is the candidate count
// (fingerprint only).
func want(m livetabv1.MatchMethod, h *livetabv1.Hit, e *livetabv1.Event, n int32) *livetabv1.Conversion {
	return &livetabv1.Conversion{
		Id: "cv-" + e.Session, Account: "acme", HitSession: h.Session, AppSession: e.Session,
		HitId: h.Id, EventId: e.Id, ClickId: h.ClickId,
		TimeUs: max(h.ReceivedUs, e.ReceivedUs), Method: m,
		HitTimeUs: h.ReceivedUs, EventTimeUs: e.TimeUs, WindowUs: cfg.Window(m).Microseconds(),
		Candidates: n, Link: "spring", Campaign: "launch", DeepLink: "/promo",
		ReceivedUs: e.ReceivedUs, HitToInstallUs: e.ReceivedUs - h.ReceivedUs,
	}
}

var (
	table = goka.GroupTable(attribution.Group)
	loop  = topics.GroupLoop(attribution.Group)
)

// run is the attribution graph on a goka tester.
type run struct {
	t   *testing.T
	tt  *tester.Tester
	p   *goka.Processor
	out *tester.QueueTracker
}

func start(t *testing.T, opts attribution.Options) *run {
	t.Helper()
	tt := tester.New(t)
	p := gokatest.RunProcessor(t, tt, attribution.NewGraph(opts))
	return &run{t: t, tt: tt, p: p, out: tt.NewQueueTracker(string(topics.Conversions))}
}

// sweep runs the clean-up visitor with meta, as processors.Processors
// does with the time.
func (r *run) sweep(meta any) {
	r.t.Helper()
	if err := r.p.VisitAll(context.Background(), attribution.CleanupVisitor, meta); err != nil {
		r.t.Fatalf("clean-up sweep: %v", err)
	}
}

func (r *run) hit(hs ...*livetabv1.Hit) {
	r.t.Helper()
	for _, h := range hs {
		gokatest.Consume(r.t, r.tt, topics.Hits, h.GetSession(), h)
	}
}

func (r *run) event(es ...*livetabv1.Event) {
	r.t.Helper()
	for _, e := range es {
		gokatest.Consume(r.t, r.tt, topics.Events, e.GetSession(), e)
	}
}

// tick writes the time t0+at to the clock topic, as the ticker does.
func (r *run) tick(at time.Duration) { r.tickUs(us(at)) }

func (r *run) tickUs(at int64) {
	r.t.Helper()
	for _, k := range attribution.TickKeys(1) {
		gokatest.Consume(r.t, r.tt, topics.Clock, k, &livetabv1.Tick{TimeUs: at})
	}
}

// conversions drains the conversions written since the last call, keyed
// by app session, failing on a second one for a session.
func (r *run) conversions() map[string]*livetabv1.Conversion {
	r.t.Helper()
	out := map[string]*livetabv1.Conversion{}
	for _, m := range gokatest.Drain(r.out) {
		c := gokatest.Decode(r.t, m, &livetabv1.Conversion{})
		if m.Key != c.GetAppSession() {
			r.t.Errorf("conversion %s keyed %q, want its app session", c.GetId(), m.Key)
		}
		if _, dup := out[m.Key]; dup {
			r.t.Errorf("second conversion for app session %s", m.Key)
		}
		out[m.Key] = c
	}
	return out
}

// app is the stored state of an app session.
func (r *run) app(session string) *livetabv1.AppSessionState {
	v, _ := r.tt.TableValue(table, attribution.AppKey(session)).(*livetabv1.AttributionState)
	return v.GetApp()
}
