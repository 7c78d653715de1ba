package collector

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// The fuzz tests run over their seed corpus (testdata/fuzz/FuzzXxx and the
// f.Add calls) with plain `go test`; `go test -fuzz FuzzJSONEvents` and so
// on explore further.

// fuzzReceived is when the fuzzed events arrive.
var fuzzReceived = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

var rejectCodes = []string{RejectMalformed, RejectMissingField, RejectTooLong, RejectTooManyParams,
	RejectTooManyDeviceIDs, RejectInvalidUTF8, RejectInvalidValue, RejectUnknownAccount}

// checkAccepted asserts what holds for every accepted event: it is within
// every limit, its strings are UTF-8, its time is sane, and it encodes.
func checkAccepted(t *testing.T, ev *livetabv1.Event) {
	t.Helper()
	for _, f := range []struct {
		name, val string
		min, max  int
	}{
		{"id", ev.Id, 1, MaxEventIDLen}, {"account", ev.Account, 1, MaxNameLen}, {"session", ev.Session, 1, MaxEventIDLen},
		{"name", ev.Name, 1, MaxEventNameLen}, {"click_id", ev.ClickId, 0, MaxEventIDLen}, {"app_version", ev.AppVersion, 0, MaxAppVersionLen},
	} {
		if len(f.val) < f.min || len(f.val) > f.max || !utf8.ValidString(f.val) {
			t.Fatalf("accepted event's %s %q breaks its limit [%d, %d] or is not UTF-8", f.name, f.val, f.min, f.max)
		}
	}
	if !namePattern.MatchString(ev.Account) {
		t.Fatalf("accepted account %q", ev.Account)
	}
	if _, ok := livetabv1.Platform_name[int32(ev.Platform)]; !ok {
		t.Fatalf("accepted platform %d", ev.Platform)
	}
	if len(ev.DeviceIds) > MaxDeviceIDs || len(ev.Params) > MaxEventParams {
		t.Fatalf("accepted %d device ids, %d params", len(ev.DeviceIds), len(ev.Params))
	}
	for _, d := range ev.DeviceIds {
		if d == "" || len(d) > MaxDeviceIDLen || !utf8.ValidString(d) {
			t.Fatalf("accepted device id %q", d)
		}
	}
	for k, v := range ev.Params {
		if k == "" || len(k) > MaxParamKeyLen || len(v) > MaxParamValueLen || !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Fatalf("accepted param %q=%q", k, v)
		}
	}
	if ev.ReceivedUs != fuzzReceived.UnixMicro() || ev.TimeUs < MinEventTimeUs || ev.TimeUs > ev.ReceivedUs+MaxClockSkew.Microseconds() {
		t.Fatalf("accepted times: time_us %d, received_us %d", ev.TimeUs, ev.ReceivedUs)
	}
	if ev.Request != nil || len(ev.ProtoReflect().GetUnknown()) != 0 {
		t.Fatalf("accepted event carries a request or unknown fields: %v", ev)
	}
	if _, err := proto.Marshal(ev); err != nil {
		t.Fatalf("accepted event does not encode: %v", err)
	}
}

// checkRejected asserts that a rejection can be acted on.
func checkRejected(t *testing.T, err *eventError, id string) {
	t.Helper()
	if !slices.Contains(rejectCodes, err.code) || err.code == RejectUnknownAccount {
		t.Fatalf("rejected with code %q", err.code)
	}
	if err.reason == "" || !utf8.ValidString(err.reason) {
		t.Fatalf("rejected with reason %q", err.reason)
	}
	if len(id) > MaxEventIDLen || !utf8.ValidString(id) {
		t.Fatalf("probed id %q", id)
	}
}

// eventAsJSON is ev as an SDK would send it in JSON.
func eventAsJSON(t *testing.T, ev *livetabv1.Event) []byte {
	t.Helper()
	in := eventJSON{ID: ev.Id, Account: ev.Account, Session: ev.Session, Name: ev.Name, AppVersion: ev.AppVersion,
		DeviceIDs: ev.DeviceIds, ClickID: ev.ClickId, Params: ev.Params}
	if ev.TimeUs != 0 {
		in.Time = time.UnixMicro(ev.TimeUs).UTC().Format(time.RFC3339Nano)
	}
	if ev.Platform != livetabv1.Platform_PLATFORM_UNSPECIFIED {
		in.Platform = strings.ToLower(strings.TrimPrefix(ev.Platform.String(), "PLATFORM_"))
	}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// reparse checks that an accepted event, sent again the way an SDK would
// (as JSON and as protobuf), is accepted again unchanged: both decoders
// apply the same rules, and checking is idempotent.
func reparse(t *testing.T, ev *livetabv1.Event) {
	t.Helper()
	sent := proto.Clone(ev).(*livetabv1.Event)
	sent.ReceivedUs = 0
	data, err := proto.Marshal(&livetabv1.EventBatch{Events: []*livetabv1.Event{sent}})
	if err != nil {
		t.Fatal(err)
	}
	raws, err := splitBody(mediaProtobuf, data)
	if err != nil || len(raws) != 1 {
		t.Fatalf("re-encoded batch: %d events, %v", len(raws), err)
	}
	jsonRaws, err := splitBody(mediaJSON, eventAsJSON(t, sent))
	if err != nil || len(jsonRaws) != 1 {
		t.Fatalf("re-encoded JSON: %d events, %v", len(jsonRaws), err)
	}
	for _, raw := range []rawEvent{raws[0], jsonRaws[0]} {
		again, rerr := raw.decode()
		if rerr == nil {
			_, rerr = checkEvent(again, fuzzReceived)
		}
		if rerr != nil {
			t.Fatalf("accepted event %v, sent again (proto %v): rejected: %v", ev, raw.proto, rerr)
		}
		if !proto.Equal(again, ev) {
			t.Fatalf("accepted event sent again (proto %v) changed:\n %v\n %v", raw.proto, ev, again)
		}
	}
}

func checkBody(t *testing.T, mt string, body []byte) {
	raws, err := splitBody(mt, body)
	if err != nil {
		if msg := err.Error(); msg == "" || !utf8.ValidString(msg) {
			t.Fatalf("body refused with reason %q", msg)
		}
		return
	}
	for _, raw := range raws {
		ev, rerr := raw.decode()
		if rerr == nil {
			_, rerr = checkEvent(ev, fuzzReceived)
		}
		if rerr != nil {
			checkRejected(t, rerr, raw.id())
			continue
		}
		checkAccepted(t, ev)
		reparse(t, ev)
	}
}

func FuzzJSONEvents(f *testing.F) {
	for _, s := range []string{
		`{"id":"e1","account":"acme","session":"s1","name":"install"}`,
		`[{"id":"e1","account":"acme","session":"s1","name":"open","time":"2026-11-22T09:00:00.123456Z","platform":"IOS","app_version":"1.0",` +
			`"device_ids":["a","b"],"click_id":"c","params":{"k":"v","utm_source":"x"}},{"id":2}]`,
		`{"events":[{"id":"e1","account":"acme","session":"s1","name":"open","time":"9999-01-01T00:00:00Z"}]}`,
		`{"id":"\ud83c\udf31","account":"a","session":"\u00e9","name":"x\ud800"}`,
		"{\"id\":\"e1\",\"account\":\"acme\",\"session\":\"s1\",\"name\":\"\xff\"}",
		`{"id":"e1","account":"acme","session":"s1","name":"n","params":{"":"v"},"device_ids":[""]}`,
		`{"id":"e1","account":"Acme","session":"s1","name":"n","platform":"tv","time":"yesterday"}`,
		`[1,null,"x",[],{}]`, `{"events":null}`, `{"events":[],"x":1}`, `{`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBody(t, mediaJSON, body)
	})
}

func FuzzProtoEvents(f *testing.F) {
	full := &livetabv1.Event{Id: "e1", Account: "acme", Session: "s1", Name: "purchase", TimeUs: fuzzReceived.Add(-time.Hour).UnixMicro(),
		Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: "2.0", DeviceIds: []string{"d"}, ClickId: "c", Params: map[string]string{"sku": "x"}}
	for _, b := range []*livetabv1.EventBatch{
		{Events: []*livetabv1.Event{full}},
		{Events: []*livetabv1.Event{{Id: "e1", Account: "acme", Session: "s1", Name: "open"}, {Id: "e2"}, {}}},
		{Events: []*livetabv1.Event{{Id: "e1", Account: "acme", Session: "s1", Name: "open", TimeUs: -1, Platform: 9, ReceivedUs: 5}}},
		{Events: []*livetabv1.Event{{Id: "e1", Account: "acme", Session: "s1", Name: "open", Request: &livetabv1.Request{Ip: "x"}}}},
		{},
	} {
		data, err := proto.Marshal(b)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	event, err := proto.Marshal(full)
	if err != nil {
		f.Fatal(err)
	}
	badUTF8 := protowire.AppendString(protowire.AppendTag(event, 4, protowire.BytesType), "\xff")
	f.Add(protowire.AppendBytes(protowire.AppendTag(nil, 1, protowire.BytesType), badUTF8))
	f.Add(event) // a bare Event is not a batch
	f.Add([]byte{0x0a, 0x05, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		checkBody(t, mediaProtobuf, body)
	})
}

// FuzzLinkPath checks the short link's path (what the router hands the
// hit handler and which names it accepts) and the redirect it builds for
// any destination a link may have.
func FuzzLinkPath(f *testing.F) {
	for _, s := range []struct{ path, dest, clickID string }{
		{"acme/spring", "https://example.com/spring?ref=lt", "0195a3c4-1111-7000-8000-000000000001"},
		{"acme/spring?utm_source=x", "https://ios.example.com/app?ref=lt&x=a%20b#frag", "c1"},
		{"a/b", "https://play.google.com/store/apps/details?id=com.example&referrer=utm_source%3Dx%26click_id%3Dold", "c1"},
		{"a/b", "market://details?id=com.example&referrer=spring-sale", "c&1=2"},
		{"acme%2Fx/spring", "https://example.com/?click_id=old&click%5Fid=older&a=1", "c1"},
		{"Acme/spring", "http://PLAY.google.com/x?referrer=a%zz", "c1"},
		{"acme/-x", "https://example.com/?", "c1"},
		{"acme/spring/extra", "javascript:alert(1)", "c1"},
		{"acme/../spring", "https://play.google.com.evil.example/x", "c1"},
	} {
		f.Add(s.path, s.dest, s.clickID)
	}
	mux := http.NewServeMux()
	var account, slug string
	var ok bool
	mux.HandleFunc("GET /l/{account}/{slug}", func(w http.ResponseWriter, r *http.Request) {
		account, slug, ok = shortLinkNames(r)
	})
	f.Fuzz(func(t *testing.T, path, dest, clickID string) {
		// The path, as the router hands it to the hit handler.
		if u, err := url.ParseRequestURI("/l/" + path); err == nil {
			account, slug, ok = "", "", false
			mux.ServeHTTP(httptest.NewRecorder(), &http.Request{Method: "GET", URL: u, Header: http.Header{}, Host: "x"})
			if ok {
				key := topics.LinkKey(account, slug)
				a, s, _ := strings.Cut(key, topics.KeySeparator)
				if a != account || s != slug || len(account) > MaxNameLen || len(slug) > MaxNameLen || !namePattern.MatchString(account) || !namePattern.MatchString(slug) {
					t.Fatalf("path %q accepted as %q / %q", path, account, slug)
				}
			}
		}

		// The redirect, for a destination that a link may have.
		if clickID == "" || (checkWebURL(dest) != nil && checkAndroidURL(dest) != nil) {
			return
		}
		loc, err := clickLocation(dest, clickID)
		if err != nil {
			t.Fatalf("destination %q was accepted for a link, but clickLocation fails: %v", dest, err)
		}
		if strings.ContainsFunc(loc, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			t.Fatalf("Location %q has control characters", loc)
		}
		du, _ := url.Parse(dest)
		lu, err := url.Parse(loc)
		if err != nil {
			t.Fatalf("Location %q does not parse: %v", loc, err)
		}
		if lu.Scheme != du.Scheme || lu.Host != du.Host || lu.EscapedPath() != du.EscapedPath() || lu.Fragment != du.Fragment {
			t.Fatalf("Location %q is not at destination %q", loc, dest)
		}
		// The click id is where the app finds it, and every other
		// parameter of the destination is kept as written.
		param := ClickIDParam
		if isGooglePlay(du) {
			param = ReferrerParam
			ownerRef, _ := rawParam(du.RawQuery, ReferrerParam)
			if _, err := url.QueryUnescape(ownerRef); err == nil {
				ref, _ := queryValue(lu.RawQuery, ReferrerParam)
				if got, _ := queryValue(ref, ClickIDParam); got != clickID {
					t.Fatalf("Location %q: referrer %q carries click id %q, want %q", loc, ref, got, clickID)
				}
			}
		} else if got, _ := queryValue(lu.RawQuery, ClickIDParam); got != clickID {
			t.Fatalf("Location %q carries click id %q, want %q", loc, got, clickID)
		}
		others := func(rawQuery string) []string {
			var segs []string
			for seg := range strings.SplitSeq(rawQuery, "&") {
				if k, _, _ := strings.Cut(seg, "="); unescapeLoose(k) != param && seg != "" {
					segs = append(segs, seg)
				}
			}
			return segs
		}
		if !slices.Equal(others(du.RawQuery), others(lu.RawQuery)) {
			t.Fatalf("Location %q changed the destination's parameters %q", loc, du.RawQuery)
		}
	})
}

// FuzzUserAgent checks that any User-Agent header parses (a click must
// never fail for its headers) into names that fit a Request.
func FuzzUserAgent(f *testing.F) {
	for _, ua := range []string{
		"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		"Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240305.019) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36",
		"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0",
		"Opera/9.80 (Android; Opera Mini/7.5.33361/31.1448; U; en) Presto/2.8.119 Version/11.1010",
		"Dalvik/2.1.0 (Linux; U; Android 13; SM-S911B Build/TP1A)",
		"Mozilla/5.0 (compatible; MSIE 10.0; Windows NT 6.2; Trident/6.0)",
		"Mozilla/5.0 (", "Mozilla/5.0 ()", "(;;;)", "a/b c/d e/f", "curl/8.5.0", "",
	} {
		f.Add(ua)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ua := (mssolaUA{}).parse(clean(s, MaxHeaderLen))
		if _, ok := livetabv1.Platform_name[int32(ua.Platform)]; !ok || ua.Platform == livetabv1.Platform_PLATFORM_UNSPECIFIED {
			t.Fatalf("platform %v", ua.Platform)
		}
		for _, v := range []string{ua.OS, ua.OSVersion, ua.Device, ua.Browser} {
			if len(v) > maxUAPart || !utf8.ValidString(v) {
				t.Fatalf("parsed %+v: a name is too long or not UTF-8", ua)
			}
		}
	})
}
