package liveview_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/liveview"
)

// model is the straightforward Apply: the account state and the items as
// messages, built from the decoded loop record (liveview's Apply as of
// commit 8303fc4, before it built items from the record's bytes). Apply
// must emit items that decode to exactly what the model emits, and keep a
// state that decodes to the model's.
type model struct {
	seq      uint64
	counters *livetabv1.Counters
	recent   []uint64
	items    []*livetabv1.ViewItem
	pending  []*livetabv1.Conversion
	// How often an item was marked when its conversion came, and when
	// it came after its conversion.
	remarked, markedOnArrival int
}

// modelItem is the item the straightforward construction builds for in.
func modelItem(in *livetabv1.ViewInput, cursor uint64, c *livetabv1.Counters, with *livetabv1.ConvertedWith, nowUs int64) *livetabv1.ViewItem {
	it := &livetabv1.ViewItem{Cursor: cursor, Counters: c, ConvertedWith: with, EmittedUs: nowUs}
	switch {
	case in.GetHit() != nil:
		h := in.GetHit()
		it.Account, it.Kind, it.Session, it.ReceivedUs = h.GetAccount(), livetabv1.Kind_KIND_HIT, h.GetSession(), h.GetReceivedUs()
		it.Payload = &livetabv1.ViewItem_Hit{Hit: h}
	case in.GetEvent() != nil:
		e := in.GetEvent()
		it.Account, it.Kind, it.Session, it.ReceivedUs = e.GetAccount(), livetabv1.Kind_KIND_EVENT, e.GetSession(), e.GetReceivedUs()
		it.Payload = &livetabv1.ViewItem_Event{Event: e}
	case in.GetConversion() != nil:
		cv := in.GetConversion()
		it.Account, it.Kind, it.Session, it.ReceivedUs = cv.GetAccount(), livetabv1.Kind_KIND_CONVERSION, cv.GetAppSession(), cv.GetReceivedUs()
		it.Payload = &livetabv1.ViewItem_Conversion{Conversion: cv}
	}
	return it
}

func modelID(in *livetabv1.ViewInput) (livetabv1.Kind, string) {
	switch {
	case in.GetHit() != nil:
		return livetabv1.Kind_KIND_HIT, in.GetHit().GetId()
	case in.GetEvent() != nil:
		return livetabv1.Kind_KIND_EVENT, in.GetEvent().GetId()
	case in.GetConversion() != nil:
		return livetabv1.Kind_KIND_CONVERSION, in.GetConversion().GetId()
	}
	return livetabv1.Kind_KIND_UNSPECIFIED, ""
}

func modelMarks(c *livetabv1.Conversion, e *livetabv1.Event) bool {
	return c.GetEventId() == e.GetId() && c.GetAppSession() == e.GetSession()
}

func (m *model) apply(in *livetabv1.ViewInput, nowUs int64) []*livetabv1.ViewItem {
	kind, id := modelID(in)
	if kind == livetabv1.Kind_KIND_UNSPECIFIED {
		return nil
	}
	fp := liveview.Fingerprint(kind, id)
	if slices.Contains(m.recent, fp) {
		return nil
	}
	if m.counters == nil {
		m.counters = &livetabv1.Counters{}
	}
	switch kind {
	case livetabv1.Kind_KIND_HIT:
		m.counters.Hits++
	case livetabv1.Kind_KIND_EVENT:
		m.counters.Events++
	case livetabv1.Kind_KIND_CONVERSION:
		m.counters.Conversions++
	}
	m.seq++
	item := modelItem(in, m.seq, proto.CloneOf(m.counters), nil, nowUs)
	var out []*livetabv1.ViewItem
	markable := false
	switch kind {
	case livetabv1.Kind_KIND_EVENT:
		ev := in.GetEvent()
		if attribution.InstallLike(ev.GetName()) {
			if i := slices.IndexFunc(m.pending, func(c *livetabv1.Conversion) bool { return modelMarks(c, ev) }); i >= 0 {
				item.ConvertedWith = liveview.Mark(m.pending[i])
				m.pending = slices.Delete(m.pending, i, i+1)
				m.markedOnArrival++
			} else {
				markable = true
			}
		}
	case livetabv1.Kind_KIND_CONVERSION:
		c := in.GetConversion()
		if i := slices.IndexFunc(m.items, func(it *livetabv1.ViewItem) bool { return modelMarks(c, it.GetEvent()) }); i >= 0 {
			ev := m.items[i]
			m.items = slices.Delete(m.items, i, i+1)
			ev.ConvertedWith = liveview.Mark(c)
			ev.EmittedUs = nowUs
			out = append(out, ev)
			m.remarked++
		} else if !slices.Contains(m.recent, liveview.Fingerprint(livetabv1.Kind_KIND_EVENT, c.GetEventId())) {
			if !slices.ContainsFunc(m.pending, func(p *livetabv1.Conversion) bool { return p.GetId() == c.GetId() }) {
				m.pending = append(m.pending, &livetabv1.Conversion{Id: c.GetId(), AppSession: c.GetAppSession(), EventId: c.GetEventId(),
					HitSession: c.GetHitSession(), HitId: c.GetHitId(), Method: c.GetMethod(), TimeUs: c.GetTimeUs()})
				if extra := len(m.pending) - liveview.MaxPendingMarks; extra > 0 {
					m.pending = m.pending[extra:]
				}
			}
		}
	}
	m.recent = append(m.recent, fp)
	if extra := len(m.recent) - liveview.Window; extra > 0 {
		m.recent = m.recent[extra:]
	}
	m.items = slices.DeleteFunc(m.items, func(it *livetabv1.ViewItem) bool { return m.seq-it.GetCursor() >= liveview.Window })
	if markable {
		m.items = append(m.items, proto.CloneOf(item))
	}
	return append(out, item)
}

// state is the model's state as Apply encodes it.
func (m *model) state(t testing.TB) *livetabv1.AccountState {
	t.Helper()
	st := &livetabv1.AccountState{Seq: m.seq, Counters: m.counters, Recent: m.recent}
	if len(m.items) > 0 {
		st.Markable = markable(t, m.items...)
	}
	if len(m.pending) > 0 {
		st.Pending = marshal(t, &livetabv1.AccountState_PendingMarks{Marks: m.pending})
	}
	return st
}

// checkAgainstModel applies record (a loop record) to st and to m, and
// compares what they emit and, with withState, keep.
func checkAgainstModel(t *testing.T, st *livetabv1.AccountState, m *model, record []byte, nowUs int64, withState bool) {
	t.Helper()
	in, err := liveview.ReadInput(record)
	if err != nil {
		t.Fatalf("ReadInput: %v", err)
	}
	var vin livetabv1.ViewInput
	if err := proto.Unmarshal(record, &vin); err != nil {
		t.Fatalf("the record does not decode: %v", err)
	}
	got := decodeItems(t, liveview.Apply(st, in, nowUs))
	want := m.apply(&vin, nowUs)
	if len(got) != len(want) {
		t.Fatalf("emitted %d items, want %d:\n got %v\nwant %v", len(got), len(want), got, want)
	}
	for i := range got {
		if !proto.Equal(got[i], want[i]) {
			t.Fatalf("item %d\n got %v\nwant %v", i, got[i], want[i])
		}
	}
	if withState {
		checkState(t, st, m.state(t))
	}
	if t.Failed() {
		t.FailNow()
	}
}

// withUnknown is m's encoding followed by fields m's schema does not have.
func withUnknown(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b := marshal(t, m)
	b = protowire.AppendString(protowire.AppendTag(b, 99, protowire.BytesType), "future")
	b = protowire.AppendVarint(protowire.AppendTag(b, 100, protowire.VarintType), 7)
	return protowire.AppendFixed32(protowire.AppendTag(b, 101, protowire.Fixed32Type), 7)
}

// record is a loop record whose payload (field 1, 2 or 3 of ViewInput) is
// parts, one field each: a decoder merges them into one message.
func record(field protowire.Number, parts ...[]byte) []byte {
	var b []byte
	for _, p := range parts {
		b = protowire.AppendBytes(protowire.AppendTag(b, field, protowire.BytesType), p)
	}
	return b
}

// split cuts an encoded message in two at a field boundary.
func split(rng *rand.Rand, b []byte) (first, second []byte) {
	var bounds []int
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		off += n
		off += protowire.ConsumeFieldValue(num, typ, b[off:])
		bounds = append(bounds, off)
	}
	cut := bounds[rng.IntN(len(bounds))]
	return b[:cut], b[cut:]
}

// TestItemBytes: the items Apply encodes from the record's bytes decode to
// exactly the items the straightforward construction builds from the
// decoded record, and the state decodes to its state.
func TestItemBytes(t *testing.T) {
	fullHit := &livetabv1.Hit{Id: "h1", Account: "acme", Link: "go", Campaign: "spring", ClickId: "click-1", Session: "web-1",
		ReceivedUs: now, Destination: "https://example.com", Platform: livetabv1.Platform_PLATFORM_IOS, DeviceId: "adid", DeepLink: "app://x",
		Request: &livetabv1.Request{Ip: "10.0.0.1", UserAgent: "Mozilla/5.0", Params: map[string]string{"utm_source": "mail", "é": "ü"}, Os: "ios"}}
	install := &livetabv1.Event{Id: "e1", Account: "acme", Session: "app-1", Name: "install", TimeUs: now - 5, ReceivedUs: now,
		Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: "1.2", DeviceIds: []string{"d1", "d2"}, ClickId: "click-1",
		Params: map[string]string{"screen": "home"}, Request: &livetabv1.Request{Ip: "10.0.0.2"}}
	purchase := proto.CloneOf(install)
	purchase.Id, purchase.Name = "p1", "purchase"
	conv := &livetabv1.Conversion{Id: "cv-app-1", Account: "acme", HitSession: "web-1", AppSession: "app-1", HitId: "h1", EventId: "e1",
		ClickId: "click-1", TimeUs: now + 1, Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, HitTimeUs: now - 9, EventTimeUs: now - 5,
		WindowUs: 7e9, Candidates: 3, Link: "go", Campaign: "spring", DeepLink: "app://x", ReceivedUs: now + 2, HitToInstallUs: -4}
	// A mark whose fields are all zero but the session.
	bareConv := &livetabv1.Conversion{Id: "cv-bare", Account: "acme", AppSession: "app-2", EventId: "e2"}
	bareInstall := &livetabv1.Event{Id: "e2", Account: "acme", Session: "app-2", Name: "first_open"}
	// Nothing but what a view item needs; a negative time.
	minimal := &livetabv1.Hit{Id: "h2", Account: "acme", ReceivedUs: -1}

	type step struct {
		name   string
		record []byte
		nowUs  int64
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"hit", []step{{"hit", marshal(t, inHit(fullHit)), now}}},
		{"minimal hit at time zero", []step{{"hit", marshal(t, inHit(minimal)), 0}}},
		{"event, not markable", []step{{"purchase", marshal(t, inEvent(purchase)), now}}},
		{"install kept, then marked", []step{
			{"install", marshal(t, inEvent(install)), now},
			{"conversion", marshal(t, inConv(conv)), now + 10},
		}},
		{"conversion first, install marked on arrival", []step{
			{"conversion", marshal(t, inConv(conv)), now},
			{"install", marshal(t, inEvent(install)), now + 10},
		}},
		{"bare mark", []step{
			{"install", marshal(t, inEvent(bareInstall)), now},
			{"conversion", marshal(t, inConv(bareConv)), now + 10},
		}},
		{"bare mark pending", []step{
			{"conversion", marshal(t, inConv(bareConv)), now},
			{"install", marshal(t, inEvent(bareInstall)), now + 10},
		}},
		{"unknown fields in the payloads", []step{
			{"hit", record(1, withUnknown(t, fullHit)), now},
			{"install", record(2, withUnknown(t, install)), now + 1},
			{"conversion", record(3, withUnknown(t, conv)), now + 2},
		}},
		{"unknown fields in the record", []step{
			{"hit", protowire.AppendString(protowire.AppendTag(marshal(t, inHit(fullHit)), 50, protowire.BytesType), "x"), now},
		}},
		{"payload in two fields, merged", []step{
			{"hit", record(1, marshal(t, &livetabv1.Hit{Id: "h3", Account: "acme", Request: &livetabv1.Request{Ip: "1"}}),
				marshal(t, &livetabv1.Hit{Session: "web-3", Request: &livetabv1.Request{UserAgent: "ua"}})), now},
			{"install", record(2, marshal(t, &livetabv1.Event{Id: "e3", Account: "acme", Name: "purchase"}),
				marshal(t, &livetabv1.Event{Session: "app-3", Name: "install", Params: map[string]string{"a": "b"}})), now},
		}},
		{"later oneof field wins", []step{
			{"hit then event", append(marshal(t, inHit(fullHit)), marshal(t, inEvent(purchase))...), now},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st, m := &livetabv1.AccountState{}, &model{}
			for _, s := range tt.steps {
				t.Run(s.name, func(t *testing.T) { checkAgainstModel(t, st, m, s.record, s.nowUs, true) })
			}
		})
	}

	t.Run("large cursor and counters", func(t *testing.T) {
		st := &livetabv1.AccountState{Seq: 1 << 40, Counters: counters(1<<50, 1<<62, 300)}
		m := &model{seq: st.Seq, counters: proto.CloneOf(st.Counters)}
		checkAgainstModel(t, st, m, marshal(t, inEvent(install)), 1<<62, true)
		checkAgainstModel(t, st, m, marshal(t, inConv(conv)), 1<<62+1, true)
	})
}

// TestApplyAgainstModel runs a long random stream of hits, events and
// conversions of one account (ids drawn from small sets, so that inputs are
// redelivered, conversions find their events or wait, and items age out)
// through Apply and the model, encoded in varied ways.
func TestApplyAgainstModel(t *testing.T) {
	rng := rand.New(rand.NewPCG(6, 8303))
	st, m := &livetabv1.AccountState{}, &model{}
	names := []string{"install", "first_open", "purchase", "open"}
	methods := []livetabv1.MatchMethod{livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID, livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT}
	nowUs := now
	// Long enough to fill the pending marks and age installs out; the
	// state is compared now and then (decoding it is most of the test's
	// time), and at the end.
	const steps = 3000
	for i := range steps {
		var (
			field   protowire.Number
			payload proto.Message
		)
		switch r := rng.IntN(100); {
		case r < 35:
			n := rng.IntN(300)
			field, payload = 1, &livetabv1.Hit{Id: fmt.Sprintf("h%03d", n), Account: "acme", Session: fmt.Sprintf("web-%d", n%40),
				ReceivedUs: nowUs - int64(rng.IntN(1000)), Campaign: "c"}
		case r < 75:
			n := rng.IntN(120)
			field, payload = 2, &livetabv1.Event{Id: fmt.Sprintf("e%03d", n), Account: "acme", Session: fmt.Sprintf("app-%d", n%30+rng.IntN(2)),
				Name: names[rng.IntN(len(names))], ReceivedUs: nowUs - int64(rng.IntN(1000)), Params: map[string]string{"k": fmt.Sprint(i)}}
		default:
			n := rng.IntN(120)
			field, payload = 3, &livetabv1.Conversion{Id: fmt.Sprintf("cv%03d", rng.IntN(200)), Account: "acme",
				HitSession: fmt.Sprintf("web-%d", rng.IntN(40)), AppSession: fmt.Sprintf("app-%d", n%30+rng.IntN(2)),
				HitId: fmt.Sprintf("h%03d", rng.IntN(300)), EventId: fmt.Sprintf("e%03d", n), Method: methods[rng.IntN(len(methods))],
				TimeUs: nowUs, ReceivedUs: nowUs - 3}
		}
		b := marshal(t, payload)
		if rng.IntN(4) == 0 {
			b = withUnknown(t, payload)
		}
		rec := record(field, b)
		if rng.IntN(4) == 0 {
			first, second := split(rng, b)
			rec = record(field, first, second)
		}
		nowUs += int64(rng.IntN(5000))
		checkAgainstModel(t, st, m, rec, nowUs, i%16 == 0 || i == steps-1)
	}
	if m.remarked == 0 || m.markedOnArrival == 0 || len(m.pending) != liveview.MaxPendingMarks || len(m.items) == 0 {
		t.Fatalf("the stream did not exercise every path: %d items marked when their conversion came, %d when they came after it, %d pending marks, %d markable items",
			m.remarked, m.markedOnArrival, len(m.pending), len(m.items))
	}
	t.Logf("%v; %d items marked when their conversion came, %d when they came after it", m.counters, m.remarked, m.markedOnArrival)
}
