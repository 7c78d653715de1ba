package collector

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// checkSamePath fails unless parseEvents answers body as the thorough path
// does: the same request error, the same results, equal events.
func checkSamePath(t *testing.T, body []byte) {
	t.Helper()
	results, evs, err := parseEvents(mediaJSON, body, fuzzReceived)
	wantResults, wantEvs, wantErr := splitAndCheckEvents(mediaJSON, body, fuzzReceived)
	if fmt.Sprint(err) != fmt.Sprint(wantErr) {
		t.Fatalf("body %q: error %v, thorough path %v", body, err, wantErr)
	}
	if !reflect.DeepEqual(results, wantResults) {
		t.Fatalf("body %q:\n results %+v\nthorough %+v", body, results, wantResults)
	}
	if len(evs) != len(wantEvs) {
		t.Fatalf("body %q: %d events, thorough path %d", body, len(evs), len(wantEvs))
	}
	for i := range evs {
		if (evs[i] == nil) != (wantEvs[i] == nil) || evs[i] != nil && !proto.Equal(evs[i], wantEvs[i]) {
			t.Fatalf("body %q: event %d\n %v\nthorough path\n %v", body, i, evs[i], wantEvs[i])
		}
	}
	if _, ok := decodeJSONBatch(body); ok && !json.Valid(body) {
		t.Fatalf("body %q is no JSON, but the one-pass decoder took it", body)
	}
}

// batchSeeds are bodies at the edges of what the one-pass decoder takes.
var batchSeeds = []string{
	string(benchBatch(20)),
	` { "id" : "e1" , "account" : "acme" , "session" : "s1" , "name" : "open" } `,
	"\t[\n{\"id\":\"e1\",\"account\":\"acme\",\"session\":\"s1\",\"name\":\"open\"}\r\n]\n",
	`{"events":[{"id":"e1","account":"acme","session":"s1","name":"open"},{"id":"e2"}]}`,
	`{"events" : [ ] }`, `{"events":[],"events":[{"id":"e1"}]}`, `{"events":[{"id":"e1"}],"x":1}`, `{"events":{}}`,
	`{"id":"e1","events":[]}`, `{"Events":[]}`, `{}`, `[{}]`, `[]`, `[{},]`, `[{}`, `[{}]]`, `[{}] x`, `[{"id":"e1",}]`,
	`[{"id":"e1","account":"acme","session":"s1","name":"open","time":"2026-11-22T09:00:00.5+01:00","platform":"IOS",` +
		`"app_version":"1.0","device_ids":["a","b"],"click_id":"c","params":{"k":"v","k":"w","":"x"}}]`,
	`[{"id":"e1","account":"acme","session":"s1","name":"open","time":"yesterday"},{"id":"e2","platform":"tv"}]`,
	`[{"id":null,"account":null,"session":null,"name":null,"time":null,"platform":null,"app_version":null,"device_ids":null,"click_id":null,"params":null}]`,
	`[{"device_ids":[],"params":{}}]`, `[{"device_ids":[null]}]`, `[{"params":{"k":null}}]`, `[{"device_ids":["a",]}]`,
	`[{"params":{"k":"v",}}]`, `[{"id":"e1","id":"e2"}]`, `[{"ID":"e1"}]`, `[{"Id":"e1","account":"acme","session":"s","name":"n"}]`,
	`[{"id":"e1","colour":"red"}]`, `[{"id":7}]`, `[{"id":true}]`, `[{"device_ids":"a"}]`, `[{"params":[]}]`, `[{"params":{"n":5}}]`,
	`[{"id":"\u0065\ud83c\udf31\/\\\"\b\f\n\r\t\u00E9\u0000","account":"acme","session":"s\/1","name":"n"}]`,
	`[{"\u0069d":"e1","account":"acme","session":"s","name":"n"}]`, `{"\u0065vents":[{"id":"e1"}]}`,
	`[{"id":"\ud800"}]`, `[{"id":"\udc00"}]`, `[{"id":"\ud800\u0041"}]`, `[{"id":"\ud800\ud800"}]`, `[{"id":"\u12"}]`,
	`[{"id":"\x"}]`, `[{"id":"\u00zz"}]`, "[{\"id\":\"a\tb\"}]", "[{\"id\":\"\x7f\"}]", "[{\"id\":\"\xff\"}]", "[{\"id\":\"é\\n\xc3\"}]",
	"[{\"params\":{\"\xff\":\"v\"}}]", "\xef\xbb\xbf[{}]", `[{"id":"e1"}] `, `nul`, `null`, `[null]`, `[{"id":nul}]`, `[{"id":nullx}]`,
	`[` + strings.Repeat(`{"id":"e"},`, MaxEventsPerRequest) + `{"id":"e"}]`,
	`[` + strings.Repeat(`{"id":"e"},`, MaxEventsPerRequest-1) + `{"id":"e"}]`,
	`[{"id":"` + strings.Repeat("x", MaxEventIDLen+10) + `"}]`,
	// More device ids than the first backing array of the lists holds.
	`[` + strings.Repeat(`{"id":"e","account":"acme","session":"s","name":"n","device_ids":["a","b","c","d","e","f","g"]},`, 9) +
		`{"id":"e","device_ids":["a",` + strings.Repeat(`"x",`, 40) + `"z"]}]`,
}

// readCorpus reads the inputs of a fuzz target's corpus of one []byte.
func readCorpus(t testing.TB, target string) [][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "fuzz", target, "*"))
	if err != nil {
		t.Fatal(err)
	}
	var inputs [][]byte
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "[]byte(") {
			t.Fatalf("%s: not a corpus file of one []byte", f)
		}
		s, err := strconv.Unquote(strings.TrimSuffix(strings.TrimPrefix(lines[1], "[]byte("), ")"))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		inputs = append(inputs, []byte(s))
	}
	return inputs
}

// FuzzJSONBatch holds the one-pass JSON decoder to the thorough path: for
// any body, the answer is the same.
func FuzzJSONBatch(f *testing.F) {
	for _, s := range batchSeeds {
		f.Add([]byte(s))
	}
	for _, b := range readCorpus(f, "FuzzJSONEvents") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		checkSamePath(t, body)
	})
}

func TestJSONBatchTakesWhatSDKsSend(t *testing.T) {
	for _, body := range []string{
		string(benchBatch(20)),
		`{"id":"e1","account":"acme","session":"s1","name":"install","click_id":"c"}`,
		`{"events":[{"id":"e1","account":"acme","session":"s1","name":"open","params":{"url":"https:\/\/example.com\/x"}}]}`,
		`[{"id":"e1","account":"acme","session":"s1","name":"open","params":{"emoji":"\ud83c\udf31","é":"café"}}]`,
	} {
		ins, ok := decodeJSONBatch([]byte(body))
		if !ok || len(ins) == 0 {
			t.Errorf("body %q takes the thorough path", body)
		}
		checkSamePath(t, []byte(body))
	}
}

func TestValidName(t *testing.T) {
	names := []string{"", "a", "0", "-", "_", "a-", "a_", "-a", "_a", "A", "aB", "a b", "a/b", "a.b", "é", "a\n", "\na", "a\x00",
		strings.Repeat("a", MaxNameLen), strings.Repeat("a", MaxNameLen+1), "acme", "spring-sale_2026", "0-0"}
	for c := range 256 {
		names = append(names, string(rune(c)), "a"+string([]byte{byte(c)}))
	}
	for _, s := range names {
		if got, want := validName(s), namePattern.MatchString(s); got != want {
			t.Errorf("validName(%q) = %v, namePattern says %v", s, got, want)
		}
	}
}

// countingParser counts the user agents it parses.
type countingParser struct {
	mu    sync.Mutex
	calls map[string]int
}

func (p *countingParser) parse(s string) userAgent {
	p.mu.Lock()
	p.calls[s]++
	p.mu.Unlock()
	return userAgent{Platform: livetabv1.Platform_PLATFORM_WEB, Browser: s}
}

func TestUACache(t *testing.T) {
	p := &countingParser{calls: map[string]int{}}
	c := newUACache(p, 4)
	for range 3 {
		for _, s := range []string{"a", "b", "c"} {
			if got := c.parse(s); got.Browser != s {
				t.Fatalf("parse(%q) = %+v", s, got)
			}
		}
	}
	for _, s := range []string{"a", "b", "c"} {
		if p.calls[s] != 1 {
			t.Errorf("%q parsed %d times, want once", s, p.calls[s])
		}
	}
	// Many user agents: the cache stays bounded and still answers right.
	for i := range 100 {
		s := strconv.Itoa(i)
		if got := c.parse(s); got.Browser != s {
			t.Fatalf("parse(%q) = %+v", s, got)
		}
		if n := c.cache.len(); n > 8 {
			t.Fatalf("cache holds %d entries, at most 8", n)
		}
	}
	// A user agent in use stays however many others pass by.
	for i := range 100 {
		c.parse("hot")
		c.parse("cold" + strconv.Itoa(i))
	}
	if p.calls["hot"] != 1 {
		t.Errorf("a user agent used all along was parsed %d times, want once", p.calls["hot"])
	}

	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 200 {
				s := strconv.Itoa((g + i) % 10)
				if got := c.parse(s); got.Browser != s {
					t.Errorf("parse(%q) = %+v", s, got)
					return
				}
			}
		})
	}
	wg.Wait()
}

func TestEventsAnswerLikeJSONMarshal(t *testing.T) {
	vals := []string{"", "e1", StatusAccepted, StatusRejected, RejectTooLong, `params["utm"]: 1025 bytes`, "<script>&", "a\u2028b\u2029",
		"\x00\x1f\x7f", "tab\there\nnew", "\xff\xfe", "é🌱", `back\slash`, "0195a3c4-1111-7000-8000-000000000001"}
	rng := rand.New(rand.NewPCG(3, 4))
	pick := func() string { return vals[rng.IntN(len(vals))] }
	answers := []eventsAnswer{{}, {Results: []eventResult{}}, {Error: "no valid event"}}
	for range 500 {
		a := eventsAnswer{}
		if rng.IntN(3) == 0 {
			a.Error = pick()
		}
		for range rng.IntN(5) {
			a.Results = append(a.Results, eventResult{ID: pick(), Status: pick(), Code: pick(), Reason: pick(), Warning: pick()})
		}
		answers = append(answers, a)
	}
	for _, a := range answers {
		want, err := json.Marshal(a)
		if err != nil {
			t.Fatal(err)
		}
		if got := appendEventsAnswer(nil, a); string(got) != string(want) {
			t.Fatalf("answer %+v\n got %s\nwant %s", a, got, want)
		}
	}
}

// FuzzRedirectTemplate holds the redirect cache to clickLocation: for any
// destination and click id, the location is the same.
func FuzzRedirectTemplate(f *testing.F) {
	for _, dest := range []string{
		"https://example.com/web", "https://ios.example.com/app?ref=lt&x=a%20b", "https://example.com/store?id=com.example#top",
		"https://example.com/?click_id=old&a=1&click_id=older", "https://example.com/?", "https://example.com/?a=%zz;b&&c",
		"https://play.google.com/store/apps/details?id=com.example&referrer=utm_source%3Dmail%26utm_medium%3Demail&hl=de",
		"https://play.google.com/store/apps/details?id=com.example&referrer=spring-sale",
		"https://play.google.com/store/apps/details?id=x&referrer=click_id%3Dold%26utm_source%3Dads",
		"https://play.google.com/store/apps/details?id=x&referrer=a%zz", "https://play.google.com/store/apps/details?id=x&referrer=",
		"http://PLAY.google.com/store/apps/details?id=x&click_id=keep", "market://details?id=com.example&referrer=utm_source%3Dx",
		"https://example.com/" + templateIDA + "?x=" + templateIDB, "https://example.com/?click_id=" + templateIDA,
		"https://exa mple.com/%zz", "javascript:alert(1)", "https://example.com/#" + templateIDA, "",
	} {
		f.Add(dest, "0195a3c4-1111-7000-8000-000000000001")
		f.Add(dest, "c1")
	}
	c := newRedirectCache()
	f.Fuzz(func(t *testing.T, dest, clickID string) {
		want, wantErr := clickLocation(dest, clickID)
		for range 2 { // the second time from the cache
			got, err := c.location(dest, clickID)
			if got != want || (err == nil) != (wantErr == nil) {
				t.Fatalf("location(%q, %q) = %q, %v; clickLocation says %q, %v", dest, clickID, got, err, want, wantErr)
			}
		}
	})
}

func TestRedirectTemplateTaken(t *testing.T) {
	c := newRedirectCache()
	for _, dest := range []string{"https://example.com/landing", "https://apps.example.com/app/id123",
		"https://play.google.com/store/apps/details?id=com.example.app", "market://details?id=com.example&referrer=utm_source%3Dx"} {
		id, err := newID()
		if err != nil {
			t.Fatal(err)
		}
		if !mintedShape(id) {
			t.Fatalf("minted id %q is not of the minted shape", id)
		}
		got, err := c.location(dest, id)
		want, wantErr := clickLocation(dest, id)
		if got != want || err != nil || wantErr != nil {
			t.Fatalf("location(%q) = %q, %v; want %q, %v", dest, got, err, want, wantErr)
		}
		if tpl, ok := c.cache.get(dest); !ok || !tpl.ok {
			t.Errorf("destination %q has no template", dest)
		}
	}
}

// oldParseHop is parseHop as it was, which always tried netip.ParseAddr
// first.
func oldParseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}

func FuzzParseHop(f *testing.F) {
	for _, s := range []string{"192.0.2.1", "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]:4711", "[2001:db8::1]", "2001:db8::1]",
		"[192.0.2.1", "::ffff:192.0.2.1", "[::ffff:192.0.2.1]:80", "fe80::1%eth0", "[fe80::1%eth0]:80", "1.2.3.4%x:80", "a:b", ":80",
		"1::", "::", "unknown", "_hidden", " 10.0.0.1 ", "10.0.0.1:", "10.0.0.1:99999", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := parseHop(s), oldParseHop(s); got != want {
			t.Fatalf("parseHop(%q) = %v, was %v", s, got, want)
		}
	})
}

// TestJSONBatchRandom holds the one-pass decoder to the thorough path on
// bodies put together from the pieces SDKs and broken clients send.
func TestJSONBatchRandom(t *testing.T) {
	known := []string{"id", "account", "session", "name", "time", "platform", "app_version", "device_ids", "click_id", "params"}
	odd := []string{`"ID"`, `"Params"`, `"colour"`, `"events"`, `"\u0069d"`, `""`, `"received_us"`, `"id"`}
	strs := []string{`"e1"`, `"acme"`, `"ACME"`, `""`, `"2026-11-22T10:00:00Z"`, `"2026-11-22T10:00:00.5+01:00"`, `"9999-01-01T00:00:00Z"`,
		`"yesterday"`, `"ios"`, `"Android"`, `"tv"`, `"a\/b"`, `"caf\u00e9"`, `"\ud83c\udf31"`, "\"é\"", `"s1"`, `null`,
		`"` + strings.Repeat("x", 129) + `"`}
	lists := []string{`[]`, `["a","b"]`, `[""]`, `["d-0123"]`, `null`, `["` + strings.Repeat("d", 129) + `"]`}
	maps := []string{`{}`, `{"k":"v"}`, `{"k":"v","k":"w"}`, `{"":"v"}`, `{"utm":"\u003c","screen":"home"}`, `null`}
	broken := []string{`"\ud800"`, "\"\xff\"", `7`, `true`, `["a",null]`, `{"k":1}`, `{"k":null}`, `[1]`}
	ws := []string{"", "", "", " ", "\n\t "}
	rng := rand.New(rand.NewPCG(5, 6))
	pick := func(list []string) string { return list[rng.IntN(len(list))] }
	event := func() string {
		var b strings.Builder
		b.WriteString("{" + pick(ws))
		first := true
		write := func(k, v string) {
			if !first {
				b.WriteString("," + pick(ws))
			}
			first = false
			b.WriteString(k + pick(ws) + ":" + pick(ws) + v + pick(ws))
		}
		for _, i := range rng.Perm(len(known)) {
			k := known[i]
			if i >= 4 && rng.IntN(2) == 0 || i < 4 && rng.IntN(8) == 0 {
				continue
			}
			v := pick(strs)
			switch {
			case rng.IntN(30) == 0:
				v = pick(broken)
			case k == "device_ids":
				v = pick(lists)
			case k == "params":
				v = pick(maps)
			case i < 4 && rng.IntN(3) != 0:
				v = map[string]string{"id": `"e1"`, "account": `"acme"`, "session": `"s1"`, "name": `"open"`}[k]
			}
			write(`"`+k+`"`, v)
		}
		if rng.IntN(30) == 0 {
			write(pick(odd), pick(strs))
		}
		b.WriteString("}")
		return b.String()
	}
	fast := 0
	for range 4000 {
		var events []string
		for range 1 + rng.IntN(5) {
			events = append(events, event())
		}
		list := "[" + pick(ws) + strings.Join(events, ","+pick(ws)) + pick(ws) + "]"
		var body string
		switch rng.IntN(4) {
		case 0:
			body = events[0]
		case 1:
			body = `{"events":` + pick(ws) + list + "}"
		default:
			body = pick(ws) + list + pick(ws)
		}
		if rng.IntN(20) == 0 && len(body) > 2 {
			i := rng.IntN(len(body))
			body = body[:i] + body[i+1:] // a byte lost
		}
		if _, ok := decodeJSONBatch([]byte(body)); ok {
			fast++
		}
		checkSamePath(t, []byte(body))
	}
	if fast < 2000 {
		t.Errorf("only %d of 4000 bodies took the one-pass path: the test does not exercise it", fast)
	}
	t.Logf("%d of 4000 bodies took the one-pass path", fast)
}
