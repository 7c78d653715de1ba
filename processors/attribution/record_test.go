package attribution

import (
	"slices"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestInstallLikeRecord(t *testing.T) {
	enc := func(e *livetabv1.Event) []byte {
		b, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	params := map[string]string{"screen": "home", "name": "install"}
	tests := []struct {
		name string
		raw  []byte
		want bool
	}{
		{"install", enc(&livetabv1.Event{Id: "e1", Account: "a", Session: "s", Name: "install", Params: params}), true},
		{"first_open", enc(&livetabv1.Event{Id: "e1", Name: "first_open"}), true},
		{"purchase with install in its params", enc(&livetabv1.Event{Id: "e1", Name: "purchase", Params: params}), false},
		{"no name", enc(&livetabv1.Event{Id: "e1"}), false},
		// Protobuf keeps the last occurrence of a scalar field.
		{"name repeated, last wins", append(enc(&livetabv1.Event{Name: "install"}), enc(&livetabv1.Event{Name: "open"})...), false},
		{"name repeated, last install", append(enc(&livetabv1.Event{Name: "open"}), enc(&livetabv1.Event{Name: "install"})...), true},
		{"truncated: left to the decoder", enc(&livetabv1.Event{Id: "e1", Name: "purchase"})[:5], true},
		{"garbage: left to the decoder", []byte{0xff, 0xff, 0xff}, true},
		{"empty record", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := installLikeRecord(tt.raw); got != tt.want {
				t.Errorf("installLikeRecord = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestHitInput checks the loop record built around a hit's bytes against
// the straightforward construction, and that inputHit reads back exactly
// the records that decode as a hit alone.
func TestHitInput(t *testing.T) {
	hit := &livetabv1.Hit{
		Id: "h1", Account: "a", ClickId: "c1", Session: "s", ReceivedUs: 42, DeviceId: "d",
		Request: &livetabv1.Request{Ip: "10.0.0.1", Os: "ios", OsVersion: "17.4", Params: map[string]string{"utm": "x"}},
	}
	for _, raw := range [][]byte{mustMarshal(t, hit), nil, mustMarshal(t, &livetabv1.Hit{Id: string(make([]byte, 300))})} {
		rec := hitInput(raw)
		got, want := &livetabv1.AttributionInput{}, &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Hit{Hit: &livetabv1.Hit{}}}
		if err := proto.Unmarshal(raw, want.GetHit()); err != nil {
			t.Fatal(err)
		}
		if err := proto.Unmarshal(rec, got); err != nil {
			t.Fatalf("hitInput does not decode: %v", err)
		}
		if !proto.Equal(got, want) {
			t.Errorf("hitInput decodes to %v, want %v", got, want)
		}
		if back, ok := inputHit(rec); !ok || string(back) != string(raw) {
			t.Errorf("inputHit = %q, %v; want the hit's bytes", back, ok)
		}
	}
	// Anything but one hit field is left to the full decode.
	others := map[string][]byte{
		"event":         mustMarshal(t, &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Event{Event: &livetabv1.Event{Id: "e"}}}),
		"hit then more": append(hitInput(mustMarshal(t, hit)), hitInput(mustMarshal(t, hit))...),
		"truncated":     hitInput(mustMarshal(t, hit))[:10],
		"empty":         nil,
	}
	for name, rec := range others {
		if _, ok := inputHit(rec); ok {
			t.Errorf("%s: inputHit read a hit alone", name)
		}
	}
}

// TestKeptHit checks what a match key keeps of a hit: the fields the
// rules compare, beside the hit's bytes, which decode to the hit.
func TestKeptHit(t *testing.T) {
	hit := &livetabv1.Hit{
		Id: "h1", Account: "a", ClickId: "c1", ReceivedUs: 42, DeviceId: "d",
		Request: &livetabv1.Request{Ip: "10.0.0.1", Os: "iOS", OsVersion: "17_4_1", Device: "iPhone"},
	}
	raw := mustMarshal(t, hit)
	for m, match := range map[livetabv1.MatchMethod]string{
		livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:    "c1",
		livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:   "d",
		livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT: "10.0.0.1|ios|17.4|iphone",
		livetabv1.MatchMethod_MATCH_METHOD_UNSPECIFIED: "",
	} {
		got := newMatchHit(m, hit, raw)
		want := &livetabv1.MatchHit{Id: "h1", ReceivedUs: 42, Account: "a", Match: match, Hit: raw}
		if !proto.Equal(got, want) {
			t.Errorf("%v: kept %v, want %v", m, got, want)
		}
		back := &livetabv1.Hit{}
		if err := proto.Unmarshal(got.GetHit(), back); err != nil || !proto.Equal(back, hit) {
			t.Errorf("%v: kept bytes decode to %v (%v), want the hit", m, back, err)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQualifiesKept checks that a kept hit qualifies exactly when the hit
// does (Qualifies), for every method and combination below.
func TestQualifiesKept(t *testing.T) {
	cfg := Config{}.WithDefaults()
	reqs := []*livetabv1.Request{nil, {Ip: "1.2.3.4", Os: "ios", OsVersion: "17.4"}, {Ip: "1.2.3.4", Os: "iOS", OsVersion: "17_4_2"}, {Ip: "1.2.3.5", Os: "ios"}}
	var hits []*livetabv1.Hit
	var events []*livetabv1.Event
	for _, acct := range []string{"", "a", "b"} {
		for _, id := range []string{"", "x", "y"} {
			for _, r := range reqs {
				for _, at := range []int64{0, 1e6, cfg.FingerprintWindow.Microseconds() + 2e6, cfg.ClickWindow.Microseconds() + 2e6} {
					hits = append(hits, &livetabv1.Hit{Id: "h", Account: acct, ClickId: id, DeviceId: id, Request: r, ReceivedUs: at})
					events = append(events, &livetabv1.Event{Id: "e", Account: acct, ClickId: id, DeviceIds: []string{"z", id}, Request: r, ReceivedUs: at})
				}
			}
		}
	}
	for m := range livetabv1.MatchMethod(4) {
		n := 0
		for _, h := range hits {
			kept := keptOf(newMatchHit(m, h, nil))
			for _, e := range events {
				want := Qualifies(cfg, m, h, e)
				if got := qualifies(cfg, m, kept, e, eventMatch(m, e)); got != want {
					t.Fatalf("%v: kept hit %v for %v qualifies %v, want %v", m, h, e, got, want)
				}
				if want {
					n++
				}
			}
		}
		if m != livetabv1.MatchMethod_MATCH_METHOD_UNSPECIFIED && n == 0 {
			t.Errorf("%v: no pair qualifies: the test compares nothing", m)
		}
	}
}

// TestHitEntries checks that a match key's hit entries read back as the
// hits they were written from, in order, and are encoded as MatchState's
// repeated field hits would be.
func TestHitEntries(t *testing.T) {
	hs := []*livetabv1.MatchHit{
		{Id: "h2", ReceivedUs: 2e6, Account: "a", Match: "c2", Hit: []byte{1, 2, 3}},
		{Id: "h1", ReceivedUs: -5, Account: "a"},
		{},
	}
	st := &livetabv1.MatchState{}
	var kept []keptHit
	for _, h := range hs {
		kept = append(kept, keptOf(h))
	}
	setKeptHits(st, kept)
	if got := matchHits(st); !slices.EqualFunc(got, hs, func(a, b *livetabv1.MatchHit) bool { return proto.Equal(a, b) }) {
		t.Errorf("entries read back as %v, want %v", got, hs)
	}
	var asHits livetabv1.MatchState
	if err := proto.Unmarshal(st.GetHitEntries(), &asHits); err != nil {
		t.Fatal(err)
	}
	if !slices.EqualFunc(asHits.GetHits(), hs, func(a, b *livetabv1.MatchHit) bool { return proto.Equal(a, b) }) {
		t.Errorf("entries decode as hits %v, want %v", asHits.GetHits(), hs)
	}
	if got := firstHitUs(st); got != 2e6 {
		t.Errorf("firstHitUs = %d, want 2e6", got)
	}

	// An entry proto.Marshal wrote, with a field this package does not
	// know and a field given twice, reads as protobuf decodes it.
	h := mustMarshal(t, &livetabv1.MatchHit{Id: "x", ReceivedUs: 7, Match: "m"})
	h = protowire.AppendTag(h, 99, protowire.VarintType)
	h = protowire.AppendVarint(h, 1)
	h = protowire.AppendTag(h, codecs.MatchHitID, protowire.BytesType)
	h = protowire.AppendString(h, "y")
	raw := protowire.AppendTag(nil, codecs.MatchStateHits, protowire.BytesType)
	raw = protowire.AppendBytes(raw, h)
	k, n := nextKeptHit(raw)
	if n != len(raw) || string(k.id) != "y" || k.receivedUs != 7 || string(k.match) != "m" {
		t.Errorf("entry read as id %q at %d match %q (%d of %d bytes)", k.id, k.receivedUs, k.match, n, len(raw))
	}

	// Entries that stop parsing end the list rather than failing.
	broken := &livetabv1.MatchState{HitEntries: append(slices.Clone(st.GetHitEntries()), 0x22, 0x10, 1)}
	if got := len(keptHits(broken)); got != len(hs) {
		t.Errorf("%d hits read from entries with a broken tail, want %d", got, len(hs))
	}
}

// TestLegacyHits checks that a key written with the repeated hits field is
// read as before and written as entries when it changes.
func TestLegacyHits(t *testing.T) {
	cfg := Config{}.WithDefaults()
	m := livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID
	old := &livetabv1.Hit{Id: "h1", Account: "a", DeviceId: "d", ReceivedUs: 1e6}
	st := &livetabv1.MatchState{Hits: []*livetabv1.MatchHit{newMatchHit(m, old, mustMarshal(t, old))}}
	if got := newest(st); got != 1e6 {
		t.Errorf("newest of a legacy key = %d, want 1e6", got)
	}
	e := &livetabv1.Event{Id: "e1", Account: "a", DeviceIds: []string{"d"}, ReceivedUs: 3e6}
	if c := Best(cfg, m, st, e); c.GetHit().GetId() != "h1" {
		t.Errorf("legacy key's candidate %v, want h1", c)
	}
	h2 := &livetabv1.Hit{Id: "h2", Account: "a", DeviceId: "d", ReceivedUs: 2e6}
	changed, out := OnMatchHit(cfg, m, st, h2)
	if !changed || len(st.GetHits()) != 0 || len(st.GetHitEntries()) == 0 {
		t.Fatalf("changed %v, state %v: want the hits moved to entries", changed, st)
	}
	if len(out) != 0 {
		t.Errorf("candidates %v for a key without installs", out)
	}
	var ids []string
	for _, h := range matchHits(st) {
		ids = append(ids, h.GetId())
	}
	if !slices.Equal(ids, []string{"h2", "h1"}) {
		t.Errorf("hits %v, want [h2 h1]", ids)
	}
}

// TestInstallPrunesHits checks that an install far newer than a key's hits
// drops them: the key keeps its method's window plus the grace period.
func TestInstallPrunesHits(t *testing.T) {
	cfg := Config{}.WithDefaults()
	m := livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID
	st := &livetabv1.MatchState{}
	OnMatchHit(cfg, m, st, &livetabv1.Hit{Id: "h1", Account: "a", DeviceId: "d", ReceivedUs: 1e6})
	OnMatchHit(cfg, m, st, &livetabv1.Hit{Id: "h2", Account: "a", DeviceId: "d", ReceivedUs: 2e6})
	late := 2e6 + (cfg.Window(m) + cfg.Grace).Microseconds() + 1
	changed, c := OnMatchInstall(cfg, m, st, &livetabv1.Event{Id: "e1", Account: "a", DeviceIds: []string{"d"}, ReceivedUs: late})
	if !changed || c != nil {
		t.Errorf("changed %v, candidate %v; want changed and none", changed, c)
	}
	if hs := matchHits(st); len(hs) != 0 || len(st.GetHitEntries()) != 0 {
		t.Errorf("hits %v kept after an install beyond their window", hs)
	}
}
