package codecs_test

import (
	"fmt"
	"testing"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// Realistic messages, sized like what `livetab bench` sends: a mobile
// browser's request with a few query parameters, SDK events with a device
// id and two params, and the per-key states the processors keep at their
// bounds (a 100-item account ring, a long session timeline).

const benchNow = int64(1_790_000_000_000_000)

func benchRequest() *livetabv1.Request {
	return &livetabv1.Request{
		Ip:             "10.12.34.56",
		UserAgent:      "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		Referrer:       "https://news.example.com/article/42",
		AcceptLanguage: "en-US,en;q=0.9",
		Params:         map[string]string{"utm_source": "bench", "utm_medium": "cpc", "utm_campaign": "spring", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		Os:             "ios",
		OsVersion:      "17.4",
		Device:         "iphone",
		Browser:        "safari",
	}
}

func benchHit(i int) *livetabv1.Hit {
	return &livetabv1.Hit{
		Id: fmt.Sprintf("0192f0a4-7c1e-7b3a-9d2e-%012d", i), Account: "acct-0001", Link: "go", Campaign: "spring",
		ClickId: fmt.Sprintf("0192f0a4-7c1e-7b3a-9d2e-c%011d", i), Session: fmt.Sprintf("0192f0a4-7c1e-7b3a-9d2e-s%011d", i),
		ReceivedUs: benchNow + int64(i), Request: benchRequest(), Destination: "https://apps.example.com/app/id123?click_id=x",
		Platform: livetabv1.Platform_PLATFORM_IOS, DeepLink: "benchapp://promo/42",
	}
}

func benchEvent(i int) *livetabv1.Event {
	return &livetabv1.Event{
		Id: fmt.Sprintf("a1b2c3d4-s%d-%d", i/20, i%20), Account: "acct-0001", Session: fmt.Sprintf("a1b2c3d4-s%d", i/20), Name: "purchase",
		TimeUs: benchNow + int64(i), ReceivedUs: benchNow + int64(i) + 10, Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
		DeviceIds: []string{"d-0123456789abcdef01234567"}, ClickId: "",
		Params:  map[string]string{"screen": "home", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		Request: benchRequest(),
	}
}

func benchConversion() *livetabv1.Conversion {
	h, e := benchHit(1), benchEvent(1)
	return &livetabv1.Conversion{
		Id: "cv-" + e.Session, Account: h.Account, HitSession: h.Session, AppSession: e.Session, HitId: h.Id, EventId: e.Id,
		ClickId: h.ClickId, TimeUs: benchNow, Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, HitTimeUs: h.ReceivedUs,
		EventTimeUs: e.TimeUs, WindowUs: 7 * 24 * 3600 * 1e6, Link: h.Link, Campaign: h.Campaign, DeepLink: h.DeepLink,
		ReceivedUs: e.ReceivedUs, HitToInstallUs: 42_000_000,
	}
}

func benchViewItem(cursor int) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{
		Cursor: uint64(cursor), Account: "acct-0001", Kind: livetabv1.Kind_KIND_EVENT, Session: "a1b2c3d4-s1",
		ReceivedUs: benchNow, EmittedUs: benchNow + 3000, Counters: &livetabv1.Counters{Hits: 100, Events: 1000, Conversions: 10},
		Payload: &livetabv1.ViewItem_Event{Event: benchEvent(cursor)},
	}
}

// benchTimeline is a session's value as the sessions table stores it:
// its open chunk of entries, each kept encoded beside its id and time,
// and the count of chunks sealed before.
func benchTimeline(entries int) *livetabv1.Timeline {
	tl := &livetabv1.Timeline{Session: "a1b2c3d4-s1", Account: "acct-0001", Chunks: 3}
	for i := range entries {
		e := benchEvent(i)
		raw, _ := proto.Marshal(&livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: e}}) // a bench event always encodes
		tl.Stored = append(tl.Stored, &livetabv1.Timeline_Stored{Id: "e:" + e.Id, TimeUs: e.TimeUs, Entry: raw})
	}
	return tl
}

// benchAccountState is an account's liveview state in steady state:
// fingerprints of the newest 100 items and a few install items a
// conversion may still mark, kept encoded.
func benchAccountState(markable int) *livetabv1.AccountState {
	st := &livetabv1.AccountState{Seq: 1000, Counters: &livetabv1.Counters{Hits: 100, Events: 1000}}
	for i := range 100 {
		st.Recent = append(st.Recent, uint64(i)*0x9e3779b97f4a7c15)
	}
	items := &livetabv1.AccountState_MarkableItems{}
	for i := range markable {
		items.Items = append(items.Items, benchViewItem(1000-i))
	}
	st.Markable, _ = proto.Marshal(items) // bench items always encode
	return st
}

func benchMatchState(hits int) *livetabv1.AttributionState {
	ms := &livetabv1.MatchState{}
	for i := range hits {
		h := benchHit(i)
		raw, _ := proto.Marshal(h) // a bench hit is valid: it always encodes
		ms.Hits = append(ms.Hits, &livetabv1.MatchHit{Id: h.Id, ReceivedUs: h.ReceivedUs, Account: h.Account, Match: h.ClickId, Hit: raw})
	}
	ms.Installs = append(ms.Installs, benchEvent(0))
	return &livetabv1.AttributionState{State: &livetabv1.AttributionState_Match{Match: ms}}
}

// benchMessages are the messages on livetab's topics and in its tables.
func benchMessages() []struct {
	name  string
	codec goka.Codec
	value any
} {
	return []struct {
		name  string
		codec goka.Codec
		value any
	}{
		{"Hit", codecs.HitCodec{}, benchHit(1)},
		{"Event", codecs.EventCodec{}, benchEvent(1)},
		{"Conversion", codecs.ConversionCodec{}, benchConversion()},
		{"AttributionInput", codecs.AttributionInputCodec{}, &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Hit{Hit: benchHit(1)}}},
		{"ViewInput", codecs.ViewInputCodec{}, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Event{Event: benchEvent(1)}}},
		{"ViewItem", codecs.ViewItemCodec{}, benchViewItem(1)},
		{"Link", codecs.LinkCodec{}, &livetabv1.Link{Account: "acct-0001", Slug: "go", Destination: "https://example.com/landing", Ios: "https://apps.example.com/app/id123", Campaign: "spring"}},
		{"Timeline/open-8", codecs.TimelineCodec{}, benchTimeline(8)},
		{"AccountState/markable-5", codecs.AccountStateCodec{}, benchAccountState(5)},
		{"AttributionState/match-50", codecs.Proto[livetabv1.AttributionState, *livetabv1.AttributionState]{}, benchMatchState(50)},
	}
}

// BenchmarkEncode measures the goka codec's Encode of each message;
// SetBytes makes -benchmem's MB/s the encoded size per second.
func BenchmarkEncode(b *testing.B) {
	for _, m := range benchMessages() {
		b.Run(m.name, func(b *testing.B) {
			data, err := m.codec.Encode(m.value)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.codec.Encode(m.value); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkDecode measures the goka codec's Decode of each message.
func BenchmarkDecode(b *testing.B) {
	for _, m := range benchMessages() {
		b.Run(m.name, func(b *testing.B) {
			data, err := m.codec.Encode(m.value)
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := m.codec.Decode(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
