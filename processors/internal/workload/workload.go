// Package workload generates attribution workloads for the processors'
// tests, and computes the conversions a workload must produce with a
// straightforward function over all of it at once: no state, no bounds, no
// order. The tests deliver a workload in many orders (and through several
// processor instances) and compare what the processors emit with it.
package workload

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/topics"
)

// Workload is a set of hits and events.
type Workload struct {
	Hits   []*livetabv1.Hit
	Events []*livetabv1.Event
}

// Record is one input record: a hit or an event on its topic, keyed by
// its session as the collector keys them.
type Record struct {
	Topic goka.Stream
	Key   string
	Msg   proto.Message
}

// Generate builds a workload from seed, with every time at or after base:
// several accounts, visitors with one to three clicks (with click ids, some
// with device ids of re-engagement links), visitors behind shared IPs with
// the same phone model, their installs carrying a click id, device ids,
// the app's view of the same client or none of it, organic installs,
// installs of another account carrying a foreign click id, non-install
// events carrying click ids, installs exactly at and one microsecond past
// each window, and hits that tie on time for one install.
//
// Per match key, all records lie within the method's window plus the
// grace period of each other, and there are fewer than the bounds
// attribution.MaxHits and MaxInstalls: inside that envelope the processor
// must agree with Reference whatever the order.
func Generate(seed uint64, base time.Time) Workload {
	rng := rand.New(rand.NewPCG(seed, 0x1157ab))
	g := &gen{rng: rng, base: base.UnixMicro()}
	for _, account := range []string{"acme", "globex", "initech"} {
		g.account(account)
	}
	g.edges()
	g.ties()
	return g.w
}

type gen struct {
	rng  *rand.Rand
	base int64
	n    int
	w    Workload
}

func (g *gen) id(prefix string) string {
	g.n++
	return fmt.Sprintf("%s%04d", prefix, g.n)
}

// at is a time within the first six hours, on a coarse grid so that some
// hits tie.
func (g *gen) at(maxMinutes int) int64 {
	return g.base + int64(g.rng.IntN(maxMinutes))*time.Minute.Microseconds()
}

var phones = []struct{ os, version, appVersion, device string }{
	{"iOS", "17.4.1", "17_4", "iPhone"},
	{"iOS", "16.2", "16.2.0", "iPad"},
	{"Android", "14", "14.0", "Pixel 8"},
	{"Android", "13.1", "13.1.2", "SM-S918B"},
}

type visitor struct {
	session string
	device  string
	ip      string
	phone   int
	hits    []*livetabv1.Hit
}

func (g *gen) account(account string) {
	// Shared IPs: a few households or offices, each with one phone model.
	ips := []string{}
	for i := range 3 {
		ips = append(ips, fmt.Sprintf("198.51.%d.%d", len(account), i+1))
	}
	var visitors []*visitor
	for range 12 {
		v := &visitor{session: g.id("web-" + account + "-"), phone: g.rng.IntN(len(phones))}
		if g.rng.IntN(3) == 0 {
			// Behind a shared IP: same fingerprint as the others of the
			// household only if the phone matches.
			v.ip = ips[g.rng.IntN(len(ips))]
			v.phone = len(v.ip) % len(phones)
		} else {
			v.ip = fmt.Sprintf("203.0.%d.%d", g.rng.IntN(200), g.rng.IntN(250)+1)
		}
		if g.rng.IntN(2) == 0 {
			v.device = g.id("adid-")
		}
		for range 1 + g.rng.IntN(3) {
			h := &livetabv1.Hit{
				Id: g.id("hit-"), Account: account, Session: v.session, ReceivedUs: g.at(360),
				Link: "link-" + g.id(""), Campaign: "spring", DeepLink: "/promo",
				Request: &livetabv1.Request{Ip: v.ip, Os: phones[v.phone].os, OsVersion: phones[v.phone].version, Device: phones[v.phone].device},
			}
			if g.rng.IntN(10) < 7 {
				h.ClickId = g.id("click-")
			}
			if v.device != "" && g.rng.IntN(2) == 0 {
				h.DeviceId = v.device
			}
			v.hits = append(v.hits, h)
			g.w.Hits = append(g.w.Hits, h)
		}
		visitors = append(visitors, v)
	}
	// Installs by visitors, after one of their hits.
	for _, v := range visitors {
		if g.rng.IntN(3) == 0 {
			continue
		}
		h := v.hits[g.rng.IntN(len(v.hits))]
		e := g.install(account, h.ReceivedUs+int64(g.rng.IntN(120))*time.Minute.Microseconds())
		if h.ClickId != "" && g.rng.IntN(10) < 4 {
			e.ClickId = h.ClickId
		}
		if v.device != "" && g.rng.IntN(2) == 0 {
			e.DeviceIds = append(e.DeviceIds, g.id("idfv-"), v.device)
		}
		if g.rng.IntN(10) < 7 {
			p := phones[v.phone]
			e.Request = &livetabv1.Request{Ip: v.ip, Os: p.os, OsVersion: p.appVersion, Device: p.device}
		}
		g.events(e)
	}
	// Organic installs: nothing of any visitor.
	for range 4 {
		e := g.install(account, g.at(480))
		e.DeviceIds = []string{g.id("adid-")}
		e.Request = &livetabv1.Request{Ip: fmt.Sprintf("192.0.2.%d", g.rng.IntN(250)+1), Os: "iOS", OsVersion: "17.4"}
		g.events(e)
	}
	// Another account's click id and device id: never a match.
	if other := g.w.Hits[g.rng.IntN(len(g.w.Hits))]; other.Account != account {
		e := g.install(account, other.ReceivedUs+time.Minute.Microseconds())
		e.ClickId, e.DeviceIds = other.ClickId, []string{other.DeviceId}
		g.events(e)
	}
}

// install is an install-like event of a new app session.
func (g *gen) install(account string, receivedUs int64) *livetabv1.Event {
	name := "install"
	if g.rng.IntN(4) == 0 {
		name = "first_open"
	}
	return &livetabv1.Event{
		Id: g.id("ev-"), Account: account, Session: g.id("app-" + account + "-"), Name: name,
		TimeUs: receivedUs - int64(g.rng.IntN(5000))*1000, ReceivedUs: receivedUs,
	}
}

// events adds install e and, now and then, later events of its session
// that must not convert.
func (g *gen) events(e *livetabv1.Event) {
	g.w.Events = append(g.w.Events, e)
	for _, name := range []string{"open", "purchase"} {
		if g.rng.IntN(3) == 0 {
			later := proto.CloneOf(e)
			later.Id, later.Name = g.id("ev-"), name
			later.ReceivedUs += time.Minute.Microseconds()
			later.TimeUs += time.Minute.Microseconds()
			g.w.Events = append(g.w.Events, later)
		}
	}
}

// edges adds, each on its own client, installs exactly at and one
// microsecond past each method's window.
func (g *gen) edges() {
	cfg := attribution.Config{}.WithDefaults()
	for i, over := range []int64{0, 1} {
		for _, m := range []livetabv1.MatchMethod{
			livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID,
			livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID,
			livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT,
		} {
			req := &livetabv1.Request{Ip: fmt.Sprintf("192.0.2.%d", 200+int(m)*2+i), Os: "Android", OsVersion: "15", Device: "Pixel 9"}
			h := &livetabv1.Hit{Id: g.id("hit-edge-"), Account: "acme", Session: g.id("web-edge-"), ReceivedUs: g.at(60), Request: req}
			e := g.install("acme", h.ReceivedUs+cfg.Window(m).Microseconds()+over)
			switch m {
			case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
				h.ClickId = g.id("click-edge-")
				e.ClickId = h.ClickId
			case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
				h.DeviceId = g.id("adid-edge-")
				e.DeviceIds = []string{h.DeviceId}
			case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
				e.Request = proto.CloneOf(req)
			}
			g.w.Hits = append(g.w.Hits, h)
			g.w.Events = append(g.w.Events, e)
		}
	}
}

// ties adds, each on its own client, two or three hits received at the
// same time that qualify for one install by the same method: the smaller
// hit id must win.
func (g *gen) ties() {
	for i, m := range []livetabv1.MatchMethod{
		livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID,
		livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT,
		livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID,
		livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT,
	} {
		req := &livetabv1.Request{Ip: fmt.Sprintf("192.0.2.%d", 220+i), Os: "iOS", OsVersion: "18.1", Device: "iPhone"}
		dev := g.id("adid-tie-")
		at := g.at(360)
		e := g.install("globex", at+int64(1+g.rng.IntN(60))*time.Minute.Microseconds())
		for range 2 + i%2 {
			h := &livetabv1.Hit{Id: g.id("hit-tie-"), Account: "globex", Session: g.id("web-tie-"), ReceivedUs: at,
				Link: "tie", Request: req}
			if m == livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID {
				h.DeviceId = dev
			}
			g.w.Hits = append(g.w.Hits, h)
		}
		if m == livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID {
			e.DeviceIds = []string{dev}
		} else {
			e.Request = proto.CloneOf(req)
		}
		g.w.Events = append(g.w.Events, e)
	}
}

// Records are the workload's records, each once, hits first.
func (w Workload) Records() []Record {
	var out []Record
	for _, h := range w.Hits {
		out = append(out, Record{Topic: topics.Hits, Key: h.GetAccount(), Msg: h})
	}
	for _, e := range w.Events {
		out = append(out, Record{Topic: topics.Events, Key: e.GetAccount(), Msg: e})
	}
	return out
}

// Shuffled is every record in random order, with about one in five
// delivered a second time (at-least-once), also at a random place.
func (w Workload) Shuffled(rng *rand.Rand) []Record {
	recs := w.Records()
	for _, r := range recs {
		if rng.IntN(5) == 0 {
			recs = append(recs, r)
		}
	}
	rng.Shuffle(len(recs), func(i, j int) { recs[i], recs[j] = recs[j], recs[i] })
	return recs
}

// LastReceivedUs is the latest received time of the workload.
func (w Workload) LastReceivedUs() int64 {
	var t int64
	for _, h := range w.Hits {
		t = max(t, h.GetReceivedUs())
	}
	for _, e := range w.Events {
		t = max(t, e.GetReceivedUs())
	}
	return t
}

// Reference is the conversions w must produce under cfg, keyed by app
// session: for each app session's install-like event (the workload has
// one per session), the strongest method with a qualifying hit, and within
// it the most recent hit, ties by smaller id. It is written from the rules
// as stated, independently of the processor's incremental code (it only
// shares attribution.Fingerprint, the normalisation).
func Reference(cfg attribution.Config, w Workload) map[string]*livetabv1.Conversion {
	cfg = cfg.WithDefaults()
	out := map[string]*livetabv1.Conversion{}
	for _, e := range w.Events {
		if e.GetName() != "install" && e.GetName() != "first_open" {
			continue
		}
		if _, done := out[e.GetSession()]; done {
			continue
		}
		for _, m := range []livetabv1.MatchMethod{
			livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID,
			livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID,
			livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT,
		} {
			var qualifying []*livetabv1.Hit
			for _, h := range w.Hits {
				if refQualifies(cfg, m, h, e) {
					qualifying = append(qualifying, h)
				}
			}
			if len(qualifying) == 0 {
				continue
			}
			best := slices.MaxFunc(qualifying, func(a, b *livetabv1.Hit) int {
				if c := cmp.Compare(a.GetReceivedUs(), b.GetReceivedUs()); c != 0 {
					return c
				}
				return cmp.Compare(b.GetId(), a.GetId()) // the smaller id is the greater
			})
			c := &livetabv1.Conversion{
				Id: "cv-" + e.GetSession(), Account: e.GetAccount(), HitSession: best.GetSession(), AppSession: e.GetSession(),
				HitId: best.GetId(), EventId: e.GetId(), ClickId: best.GetClickId(),
				TimeUs: max(best.GetReceivedUs(), e.GetReceivedUs()), Method: m,
				HitTimeUs: best.GetReceivedUs(), EventTimeUs: e.GetTimeUs(), WindowUs: cfg.Window(m).Microseconds(),
				Link: best.GetLink(), Campaign: best.GetCampaign(), DeepLink: best.GetDeepLink(),
				ReceivedUs: e.GetReceivedUs(), HitToInstallUs: e.GetReceivedUs() - best.GetReceivedUs(),
			}
			if m == livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT {
				c.Candidates = int32(len(qualifying))
			}
			out[e.GetSession()] = c
			break
		}
	}
	return out
}

func refQualifies(cfg attribution.Config, m livetabv1.MatchMethod, h *livetabv1.Hit, e *livetabv1.Event) bool {
	if h.GetAccount() != e.GetAccount() {
		return false
	}
	gap := e.GetReceivedUs() - h.GetReceivedUs()
	window := cfg.Window(m).Microseconds()
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return h.GetClickId() != "" && h.GetClickId() == e.GetClickId() && gap >= -window && gap <= window
	case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
		return h.GetDeviceId() != "" && slices.Contains(e.GetDeviceIds(), h.GetDeviceId()) && gap >= 0 && gap <= window
	default:
		hf, hok := attribution.Fingerprint(h.GetRequest())
		ef, eok := attribution.Fingerprint(e.GetRequest())
		return hok && eok && hf == ef && gap >= 0 && gap <= window
	}
}

// Diff describes how got differs from want, or is empty.
func Diff(got, want map[string]*livetabv1.Conversion) string {
	var d []string
	for s, w := range want {
		if g, ok := got[s]; !ok {
			d = append(d, fmt.Sprintf("missing %s: %v", s, w))
		} else if !proto.Equal(g, w) {
			d = append(d, fmt.Sprintf("session %s:\n  got  %v\n  want %v", s, g, w))
		}
	}
	for s, g := range got {
		if _, ok := want[s]; !ok {
			d = append(d, fmt.Sprintf("unexpected %s: %v", s, g))
		}
	}
	slices.Sort(d)
	return strings.Join(d, "\n")
}
