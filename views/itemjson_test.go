package views

import (
	"bytes"
	"encoding/json"
	"math"
	"strings"
	"testing"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// referenceItemJSON is what appendItemJSON must reproduce byte for byte.
func referenceItemJSON(t testing.TB, it *livetabv1.ViewItem) []byte {
	t.Helper()
	b, err := json.Marshal(encodeItem(it))
	if err != nil {
		t.Fatalf("reference encoding: %v", err)
	}
	return b
}

// checkItemJSON compares appendItemJSON, appended to a non-empty buffer,
// with the reference encoding.
func checkItemJSON(t testing.TB, it *livetabv1.ViewItem) {
	t.Helper()
	want := referenceItemJSON(t, it)
	const prefix = "prefix:"
	got := appendItemJSON([]byte(prefix), it)
	if !bytes.HasPrefix(got, []byte(prefix)) {
		t.Fatalf("the buffer's contents were not kept: %q", got)
	}
	if got = got[len(prefix):]; !bytes.Equal(got, want) {
		t.Fatalf("appendItemJSON differs from json.Marshal(encodeItem(it))\ngot  %q\nwant %q", got, want)
	}
}

// nastyStrings are strings encoding/json escapes, replaces or keeps in
// every way it can.
var nastyStrings = []string{
	`quote " and backslash \ and slash /`,
	`<script>alert("x")</script> & more`,
	"controls \x00\x01\x07\b\t\n\v\f\r\x1b\x1f and DEL \x7f",
	"line\u2028separator and paragraph\u2029separator, and \u2027\u202a next to them",
	"invalid \xff\xfe utf-8, truncated \xe2\x80, lone continuation \x80, surrogate \xed\xa0\x80, overlong \xc0\xaf",
	"non-ASCII: déjà vu, 日本語, emoji 🎉, µs, \ufffd itself, BOM \ufeff",
	"\xf4\x90\x80\x80 beyond U+10FFFF and a final \xc3",
	"",
	" ",
}

// itemCase is an item of the differential table test.
type itemCase struct {
	name string
	item *livetabv1.ViewItem
}

func TestAppendItemJSON(t *testing.T) {
	const us = int64(1_750_000_000_123_456)
	full := func(s string) *livetabv1.Request {
		return &livetabv1.Request{Ip: s, UserAgent: s, Referrer: s, AcceptLanguage: s, Os: s,
			Params: map[string]string{s: s, "z": s, "a": "1", "A": "2", "a_b": "3", "ab": "4", "": "empty key", "é": "5", "<&>": "6"}}
	}
	nastyHit := func(s string) *livetabv1.Hit {
		return &livetabv1.Hit{Id: s, Account: s, Link: s, Campaign: s, ClickId: s, Session: s, ReceivedUs: us, Request: full(s),
			Destination: s, Platform: livetabv1.Platform_PLATFORM_IOS, DeviceId: s, DeepLink: s}
	}
	nastyEvent := func(s string) *livetabv1.Event {
		return &livetabv1.Event{Id: s, Account: s, Session: s, Name: s, TimeUs: us, ReceivedUs: us + 1,
			Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: s, DeviceIds: []string{s, "", "d2"}, ClickId: s,
			Params: full(s).Params, Request: full(s)}
	}
	nastyConversion := func(s string) *livetabv1.Conversion {
		return &livetabv1.Conversion{Id: s, Account: s, HitSession: s, AppSession: s, HitId: s, EventId: s, ClickId: s,
			TimeUs: us, Method: livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID, HitTimeUs: us - 1, EventTimeUs: us + 1,
			WindowUs: 7 * 24 * 3600 * 1_000_000, Candidates: -3, Link: s, Campaign: s, DeepLink: s, ReceivedUs: us + 500}
	}

	tests := []itemCase{
		{"empty item", &livetabv1.ViewItem{}},
		{"cursor only", &livetabv1.ViewItem{Cursor: math.MaxUint64}},
		{"top level fields", &livetabv1.ViewItem{Cursor: 1, Account: "demo", Kind: livetabv1.Kind_KIND_HIT, Session: "s", ReceivedUs: us, EmittedUs: us}},
		{"zero counters are printed", &livetabv1.ViewItem{Cursor: 1, Counters: &livetabv1.Counters{}}},
		{"counters", &livetabv1.ViewItem{Cursor: 1, Counters: &livetabv1.Counters{Hits: 1, Events: math.MaxUint64, Conversions: 42}}},
		{"unknown kind, no payload", &livetabv1.ViewItem{Cursor: 1, Kind: livetabv1.Kind(99)}},
		{"kind from a hit", &livetabv1.ViewItem{Cursor: 1, Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{}}}},
		{"kind from an event", &livetabv1.ViewItem{Cursor: 1, Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{}}}},
		{"kind from a conversion", &livetabv1.ViewItem{Cursor: 1, Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{}}}},
		{"kind disagreeing with the payload", &livetabv1.ViewItem{Cursor: 1, Kind: livetabv1.Kind_KIND_CONVERSION,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Id: "h"}}}},
		{"nil hit in its oneof", &livetabv1.ViewItem{Cursor: 1, Payload: &livetabv1.ViewItem_Hit{}}},
		{"nil event in its oneof", &livetabv1.ViewItem{Cursor: 1, Payload: &livetabv1.ViewItem_Event{}}},
		{"nil conversion in its oneof", &livetabv1.ViewItem{Cursor: 1, Payload: &livetabv1.ViewItem_Conversion{}}},
		{"empty converted_with", &livetabv1.ViewItem{Cursor: 1, ConvertedWith: &livetabv1.ConvertedWith{}}},
		{"converted_with", &livetabv1.ViewItem{Cursor: 1, ConvertedWith: &livetabv1.ConvertedWith{Session: "web-1",
			Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, HitId: "h1", TimeUs: us}}},
		{"converted_with, unknown method", &livetabv1.ViewItem{Cursor: 1, ConvertedWith: &livetabv1.ConvertedWith{Method: livetabv1.MatchMethod(7), TimeUs: -1}}},
		{"hit, request without fields", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Id: "h", Request: &livetabv1.Request{Params: map[string]string{}}}}}},
		{"hit, web platform", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Platform: livetabv1.Platform_PLATFORM_WEB}}}},
		{"hit, other platform", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Platform: livetabv1.Platform_PLATFORM_OTHER}}}},
		{"hit, unknown platform", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Platform: livetabv1.Platform(42)}}}},
		{"hit, only params", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Request: &livetabv1.Request{Params: map[string]string{"b": "2", "a": "1", "c": ""}}}}}},
		{"hit, more params than the stack room", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Request: &livetabv1.Request{Params: manyParams(40)}}}}},
		{"event, empty device ids and params", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{Id: "e", DeviceIds: []string{}, Params: map[string]string{}}}}},
		{"event, one empty device id", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{DeviceIds: []string{""}}}}},
		{"event, several device ids", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{DeviceIds: []string{"idfa-1", "gaid-2", "d\"3"}}}}},
		{"event, request with only a referrer (not shown)", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{Request: &livetabv1.Request{Referrer: "r"}}}}},
		{"conversion, durations below a second", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{WindowUs: 750, HitTimeUs: us, ReceivedUs: us + 1}}}},
		{"conversion, install before hit", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{HitTimeUs: us, ReceivedUs: us - 2_500_000, Candidates: 1}}}},
		{"conversion, overflowing durations", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{WindowUs: math.MinInt64,
				HitTimeUs: math.MinInt64, ReceivedUs: math.MaxInt64, Candidates: math.MinInt32}}}},
		{"conversion, received without hit time", &livetabv1.ViewItem{Cursor: 1,
			Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{ReceivedUs: us, HitToInstallUs: 5}}}},
		{"times out of RFC 3339's range", &livetabv1.ViewItem{Cursor: 1, ReceivedUs: math.MaxInt64,
			ConvertedWith: &livetabv1.ConvertedWith{TimeUs: math.MinInt64},
			Payload:       &livetabv1.ViewItem_Event{Event: &livetabv1.Event{TimeUs: -62_135_596_800_000_001, ReceivedUs: 253_402_300_800_000_000}}}},
		{"times with every fraction", &livetabv1.ViewItem{Cursor: 1, ReceivedUs: 1,
			Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{TimeUs: 1_000_000, HitTimeUs: 1_100_000,
				EventTimeUs: -1, ReceivedUs: 1_234_560}}}},
	}
	for i, s := range nastyStrings {
		name := func(what string) string { return what + ", nasty string " + string(rune('a'+i)) }
		tests = append(tests,
			itemCase{name("hit"), &livetabv1.ViewItem{Cursor: uint64(i + 1), Account: s, Kind: livetabv1.Kind_KIND_HIT, Session: s, ReceivedUs: us,
				Counters: &livetabv1.Counters{Hits: 1}, ConvertedWith: &livetabv1.ConvertedWith{Session: s, HitId: s},
				Payload: &livetabv1.ViewItem_Hit{Hit: nastyHit(s)}}},
			itemCase{name("event"), &livetabv1.ViewItem{Cursor: uint64(i + 1), Account: s, Kind: livetabv1.Kind_KIND_EVENT, Session: s,
				ConvertedWith: &livetabv1.ConvertedWith{Session: s, Method: livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT, HitId: s, TimeUs: us},
				Payload:       &livetabv1.ViewItem_Event{Event: nastyEvent(s)}}},
			itemCase{name("conversion"), &livetabv1.ViewItem{Cursor: uint64(i + 1), Account: s, Session: s,
				Payload: &livetabv1.ViewItem_Conversion{Conversion: nastyConversion(s)}}},
		)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { checkItemJSON(t, tt.item) })
	}
}

func manyParams(n int) map[string]string {
	m := make(map[string]string, n)
	for i := range n {
		m[strings.Repeat(string(rune('z'-i%26)), i/26+1)] = string(rune('0' + i%10))
	}
	return m
}

// TestAppendJSONString checks the escaping of every single byte and of
// the runes encoding/json treats specially, alone and between text.
func TestAppendJSONString(t *testing.T) {
	var inputs []string
	for b := range 256 {
		inputs = append(inputs, string([]byte{byte(b)}), "a"+string([]byte{byte(b)})+"z")
	}
	inputs = append(inputs, nastyStrings...)
	for _, s := range inputs {
		want, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s, want %s", s, got, want)
		}
	}
}

// TestItemFrame checks the frame newUpdate keeps: the prefix, the item's
// JSON as encoding/json writes it, the closing brace, and nothing spare,
// for items that fit the stack scratch and for one that outgrows it.
func TestItemFrame(t *testing.T) {
	big := mkHit("demo", 1, "web-1", "spring", "c", livetabv1.Platform_PLATFORM_WEB)
	big.GetHit().Request = &livetabv1.Request{UserAgent: strings.Repeat("Mozilla/5.0 <&> ", 300), Params: manyParams(30)}
	for _, it := range []*livetabv1.ViewItem{
		mkHit("demo", 1, "web-1", "spring", "c", livetabv1.Platform_PLATFORM_IOS),
		mkEvent("demo", 2, "app-1", "install", livetabv1.Platform_PLATFORM_ANDROID),
		mkConversion("demo", 3, "web-1", "app-1", "spring"),
		big,
	} {
		u := mustUpdate(t, it)
		want := wrapItem(itemPrefix, referenceItemJSON(t, it))
		if !bytes.Equal(u.frame, want) {
			t.Errorf("cursor %d: frame\n%s\nwant\n%s", it.GetCursor(), u.frame, want)
		}
		if cap(u.frame) != len(u.frame) {
			t.Errorf("cursor %d: frame of %d bytes holds %d", it.GetCursor(), len(u.frame), cap(u.frame))
		}
		if !bytes.Equal(u.json(), referenceItemJSON(t, it)) {
			t.Errorf("cursor %d: json() is %s", it.GetCursor(), u.json())
		}
	}
	if n := len(mustUpdate(t, big).frame); n <= 2048 {
		t.Fatalf("the big item's frame is %d bytes: it does not outgrow the scratch", n)
	}
}

// FuzzItemJSON builds items of every shape from fuzzed strings and
// numbers and compares appendItemJSON with encoding/json.
func FuzzItemJSON(f *testing.F) {
	for i, s := range nastyStrings {
		f.Add(uint64(i), uint8(i), uint8(i*37), s, "k", "v", int64(1_750_000_000_123_456), int64(-i), int32(i))
	}
	f.Add(uint64(math.MaxUint64), uint8(255), uint8(255), "\u2028", "<", "\xff", int64(math.MinInt64), int64(math.MaxInt64), int32(math.MinInt32))
	f.Fuzz(func(t *testing.T, cursor uint64, shape, enums uint8, a, b, c string, t1, t2 int64, n int32) {
		checkItemJSON(t, fuzzItem(cursor, shape, enums, a, b, c, t1, t2, n))
	})
}

// fuzzItem spreads its inputs over an item: shape picks the payload and
// which optional parts are present, enums the kind, platform and method
// (out-of-range values included), and the strings and numbers fill the
// fields, so that each field is seen empty, set and nasty.
func fuzzItem(cursor uint64, shape, enums uint8, a, b, c string, t1, t2 int64, n int32) *livetabv1.ViewItem {
	kind := livetabv1.Kind(enums % 5)
	platform := livetabv1.Platform(enums / 5 % 6)
	method := livetabv1.MatchMethod(enums / 30 % 5)
	it := &livetabv1.ViewItem{Cursor: cursor, Account: a, Kind: kind, Session: b, ReceivedUs: t1, EmittedUs: t2}
	if shape&0x04 != 0 {
		it.Counters = &livetabv1.Counters{Hits: cursor, Events: uint64(t1), Conversions: uint64(n)}
	}
	if shape&0x08 != 0 {
		it.ConvertedWith = &livetabv1.ConvertedWith{Session: c, Method: method, HitId: a, TimeUs: t2}
	}
	var req *livetabv1.Request
	if shape&0x10 != 0 {
		req = &livetabv1.Request{Ip: a, UserAgent: b, Referrer: c, AcceptLanguage: a + b}
	}
	var params map[string]string
	if shape&0x20 != 0 {
		// Up to four keys (fewer when they coincide), among them the
		// empty string when a fuzzed string is empty.
		params = map[string]string{a: b, b: c, c: a, a + c: ""}
	}
	if req != nil && shape&0x40 != 0 {
		req.Params = params
	}
	switch shape & 0x03 {
	case 1:
		it.Payload = &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Id: a, Account: b, Link: c, Campaign: a, ClickId: b, Session: c,
			ReceivedUs: t2, Request: req, Destination: a, Platform: platform, DeviceId: b, DeepLink: c}}
	case 2:
		var ids []string
		if shape&0x80 != 0 {
			ids = []string{a, b, c}
		}
		it.Payload = &livetabv1.ViewItem_Event{Event: &livetabv1.Event{Id: c, Account: a, Session: a, Name: b, TimeUs: t1,
			ReceivedUs: t2, Platform: platform, AppVersion: c, DeviceIds: ids, ClickId: a, Params: params, Request: req}}
	case 3:
		it.Payload = &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{Id: a, HitSession: b, AppSession: c,
			HitId: a, EventId: b, ClickId: c, TimeUs: t1, Method: method, HitTimeUs: t2, EventTimeUs: t1 ^ t2,
			WindowUs: int64(n) * int64(shape), Candidates: n, Link: a, Campaign: b, DeepLink: c, ReceivedUs: t1}}
	}
	return it
}

// BenchmarkItemJSON compares the item frame as newUpdate built it with
// encoding/json (reflect: encodeItem, json.Marshal, wrapItem) with the
// appender (append: itemFrame), for the hit of BenchmarkItemFrame.
func BenchmarkItemJSON(b *testing.B) {
	it := mkHit("demo", 1, "web-1", "spring", "spring-sale", livetabv1.Platform_PLATFORM_IOS)
	it.GetHit().Request = &livetabv1.Request{Ip: "192.0.2.1", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
		Referrer: "https://news.example/", AcceptLanguage: "en-GB,en;q=0.9", Params: map[string]string{"utm_source": "news"}}
	b.Run("reflect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			j, err := json.Marshal(encodeItem(it))
			if err != nil {
				b.Fatal(err)
			}
			_ = wrapItem(itemPrefix, j)
		}
	})
	b.Run("append", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = itemFrame(it)
		}
	})
}
