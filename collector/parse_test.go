package collector

import (
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestUserAgent(t *testing.T) {
	const (
		iphone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
		ipad    = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1"
		ipod    = "Mozilla/5.0 (iPod touch; CPU iPhone OS 12_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1 Mobile/15E148 Safari/604.1"
		pixel   = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240305.019) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36"
		reduced = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
		samsung = "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
		mac     = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15"
		windows = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0"
		linux   = "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0"
	)
	ios, android, web := livetabv1.Platform_PLATFORM_IOS, livetabv1.Platform_PLATFORM_ANDROID, livetabv1.Platform_PLATFORM_WEB
	tests := []struct {
		name string
		ua   string
		want userAgent
	}{
		{"iphone safari", iphone, userAgent{ios, "iOS", "17.4.1", "iPhone", "Safari"}},
		{"ipad chrome", ipad, userAgent{ios, "iOS", "16.6", "iPad", "Chrome"}},
		{"ipod", ipod, userAgent{ios, "iOS", "12.5", "iPod", "Safari"}},
		{"pixel chrome", pixel, userAgent{android, "Android", "14", "Pixel 8", "Chrome"}},
		{"reduced android ua", reduced, userAgent{android, "Android", "10", "", "Chrome"}},
		{"samsung internet", samsung, userAgent{android, "Android", "13", "SM-S911B", "Samsung Internet"}},
		{"mac safari", mac, userAgent{web, "macOS", "10.15.7", "", "Safari"}},
		{"windows edge", windows, userAgent{web, "Windows", "10.0", "", "Edge"}},
		{"linux firefox", linux, userAgent{web, "Linux", "", "", "Firefox"}},
		{"curl", "curl/8.5.0", userAgent{Platform: web}},
		{"empty", "", userAgent{Platform: web}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (heuristicUA{}).parse(tt.ua); got != tt.want {
				t.Errorf("parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDestinationAndClickID(t *testing.T) {
	link := &livetabv1.Link{Destination: "https://example.com/web", Ios: "https://ios.example.com/app?ref=lt&x=a%20b", Android: "https://play.example.com/store?id=com.example#top"}
	noApps := &livetabv1.Link{Destination: "https://example.com/only"}
	tests := []struct {
		name     string
		link     *livetabv1.Link
		platform livetabv1.Platform
		want     string
	}{
		{"ios keeps query as written", link, livetabv1.Platform_PLATFORM_IOS, "https://ios.example.com/app?ref=lt&x=a%20b&click_id=c1"},
		{"android keeps fragment", link, livetabv1.Platform_PLATFORM_ANDROID, "https://play.example.com/store?id=com.example&click_id=c1#top"},
		{"web", link, livetabv1.Platform_PLATFORM_WEB, "https://example.com/web?click_id=c1"},
		{"ios falls back", noApps, livetabv1.Platform_PLATFORM_IOS, "https://example.com/only?click_id=c1"},
		{"android falls back", noApps, livetabv1.Platform_PLATFORM_ANDROID, "https://example.com/only?click_id=c1"},
		{"existing click_id replaced", &livetabv1.Link{Destination: "https://example.com/?click_id=old&a=1"}, livetabv1.Platform_PLATFORM_WEB, "https://example.com/?a=1&click_id=c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := withClickID(destination(tt.link, tt.platform), "c1")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestRequestInfoCleansInput(t *testing.T) {
	c := &Collector{ua: heuristicUA{}}
	q := make([]string, 0, MaxRequestParams+10)
	for i := range MaxRequestParams + 10 {
		q = append(q, "p"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+"="+string(rune('0'+i%10)))
	}
	r := httptest.NewRequest("GET", "/l/a/b?bad=%FF%FE&long="+strings.Repeat("v", 2000)+"&"+strings.Join(q, "&"), nil)
	r.Header.Set("User-Agent", "bot\xff")
	req, _ := c.requestInfo(r)
	if req.UserAgent != "bot\uFFFD" {
		t.Errorf("user agent %q: invalid UTF-8 must be replaced", req.UserAgent)
	}
	if got := req.Params["bad"]; got != "\uFFFD" {
		t.Errorf("param bad = %q", got)
	}
	if got := len(req.Params["long"]); got != maxParamValue {
		t.Errorf("long param has %d bytes, want %d", got, maxParamValue)
	}
	if len(req.Params) > MaxRequestParams {
		t.Errorf("%d params kept, want at most %d", len(req.Params), MaxRequestParams)
	}
	if req.Ip != "192.0.2.1" {
		t.Errorf("ip %q, want httptest's peer", req.Ip)
	}
	if got := clean("aé", 2); got != "a" {
		t.Errorf("clean must cut at a rune boundary, got %q", got)
	}
}

func TestSplitEvents(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    int
		wantErr string
	}{
		{name: "single", body: `{"id":"e1"}`, want: 1},
		{name: "array", body: ` [{"id":"e1"},{"id":"e2"}] `, want: 2},
		{name: "wrapped", body: `{"events":[{"id":"e1"},{"id":"e2"},{"id":"e3"}]}`, want: 3},
		{name: "array items are checked later", body: `[1, null]`, want: 2},
		{name: "empty", body: "  \n", wantErr: "empty body"},
		{name: "syntax error says where", body: "[{\"id\":\"e1\"},\n {\"id\" \"e2\"}]", wantErr: "malformed JSON at line 2, column 8"},
		{name: "truncated", body: `{"id":"e1"`, wantErr: "malformed JSON"},
		{name: "trailing garbage", body: `{"id":"e1"} x`, wantErr: "malformed JSON"},
		{name: "scalar", body: `"hello"`, wantErr: "body must be an event object"},
		{name: "wrapper with other fields", body: `{"events":[],"id":"x"}`, wantErr: "wrapper"},
		{name: "wrapper not an array", body: `{"events":{"id":"e1"}}`, wantErr: `"events" must be an array`},
		{name: "wrapper null", body: `{"events":null}`, wantErr: `"events" must be an array`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raws, err := splitEvents([]byte(tt.body))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(raws) != tt.want {
				t.Fatalf("%d events, want %d", len(raws), tt.want)
			}
		})
	}
}

func TestParseEvent(t *testing.T) {
	received := time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)
	valid := `"id":"e1","account":"acme","session":"s1","name":"install"`
	tests := []struct {
		name    string
		raw     string
		wantErr string
		check   func(t *testing.T, ev *livetabv1.Event)
	}{
		{name: "minimal: time defaults to received", raw: `{` + valid + `}`, check: func(t *testing.T, ev *livetabv1.Event) {
			if ev.TimeUs != received.UnixMicro() || ev.ReceivedUs != received.UnixMicro() {
				t.Errorf("time %d received %d", ev.TimeUs, ev.ReceivedUs)
			}
			if ev.Platform != livetabv1.Platform_PLATFORM_UNSPECIFIED {
				t.Errorf("platform %v", ev.Platform)
			}
		}},
		{name: "full", raw: `{` + valid + `,"time":"2026-11-22T10:00:00.5+01:00","platform":"Android","app_version":"2.1.0","device_ids":["d1","d2"],"click_id":"c1","params":{"k":"v"}}`,
			check: func(t *testing.T, ev *livetabv1.Event) {
				want := time.Date(2026, 11, 22, 9, 0, 0, 500e6, time.UTC).UnixMicro()
				if ev.TimeUs != want || ev.Platform != livetabv1.Platform_PLATFORM_ANDROID || ev.AppVersion != "2.1.0" ||
					len(ev.DeviceIds) != 2 || ev.ClickId != "c1" || ev.Params["k"] != "v" || ev.Name != "install" || ev.Session != "s1" || ev.Account != "acme" || ev.Id != "e1" {
					t.Errorf("event %v", ev)
				}
			}},
		{name: "missing id", raw: `{"account":"acme","session":"s1","name":"open"}`, wantErr: "missing id"},
		{name: "missing account", raw: `{"id":"e1","session":"s1","name":"open"}`, wantErr: "missing account"},
		{name: "missing session", raw: `{"id":"e1","account":"acme","name":"open"}`, wantErr: "missing session"},
		{name: "missing name", raw: `{"id":"e1","account":"acme","session":"s1"}`, wantErr: "missing name"},
		{name: "unknown field", raw: `{` + valid + `,"colour":"red"}`, wantErr: `unknown field "colour"`},
		{name: "wrong type", raw: `{` + valid + `,"params":{"n":5}}`, wantErr: `field "params`},
		{name: "bad time", raw: `{` + valid + `,"time":"yesterday"}`, wantErr: "invalid time"},
		{name: "bad platform", raw: `{` + valid + `,"platform":"tv"}`, wantErr: "invalid platform"},
		{name: "bad account", raw: `{"id":"e1","account":"Acme/x","session":"s1","name":"open"}`, wantErr: "invalid account"},
		{name: "long id", raw: `{"id":"` + strings.Repeat("x", maxEventField+1) + `","account":"acme","session":"s1","name":"open"}`, wantErr: "id longer than"},
		{name: "not an object", raw: `null`, wantErr: "must be a JSON object"},
		{name: "too many device ids", raw: `{` + valid + `,"device_ids":["1","2","3","4","5","6","7","8","9","10","11"]}`, wantErr: "device_ids"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := parseEvent(json.RawMessage(tt.raw), received)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, ev)
		})
	}
}

func TestLinkInputValidate(t *testing.T) {
	tests := []struct {
		name    string
		in      linkInput
		wantErr string
	}{
		{name: "minimal", in: linkInput{Destination: "https://example.com/"}},
		{name: "full", in: linkInput{Destination: "http://example.com/a?b=c", IOS: "https://ios.example.com/", Android: "https://play.example.com/x",
			DeepLink: "myapp://product/42", Campaign: "spring", Tags: map[string]string{"k": "v"}}},
		{name: "in-app path deep link", in: linkInput{Destination: "https://example.com/", DeepLink: "/product/42"}},
		{name: "missing destination", in: linkInput{IOS: "https://ios.example.com/"}, wantErr: "destination is required"},
		{name: "relative destination", in: linkInput{Destination: "/spring"}, wantErr: "destination: must be an absolute http or https URL"},
		{name: "no host", in: linkInput{Destination: "https:///x"}, wantErr: "destination: must be an absolute"},
		{name: "javascript", in: linkInput{Destination: "javascript:alert(1)"}, wantErr: "destination: must be an absolute"},
		{name: "bad ios", in: linkInput{Destination: "https://example.com/", IOS: "itms-apps://x"}, wantErr: "ios: must be an absolute"},
		{name: "bad android", in: linkInput{Destination: "https://example.com/", Android: "market://details?id=x"}, wantErr: "android: must be an absolute"},
		{name: "space", in: linkInput{Destination: "https://example.com/a b"}, wantErr: "spaces"},
		{name: "deep link with space", in: linkInput{Destination: "https://example.com/", DeepLink: "myapp://a b"}, wantErr: "deep_link"},
		{name: "long campaign", in: linkInput{Destination: "https://example.com/", Campaign: strings.Repeat("c", maxCampaign+1)}, wantErr: "campaign"},
		{name: "empty tag name", in: linkInput{Destination: "https://example.com/", Tags: map[string]string{"": "v"}}, wantErr: "tag names"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.in.validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestWellFormedID(t *testing.T) {
	id, err := newID()
	if err != nil {
		t.Fatal(err)
	}
	for s, want := range map[string]bool{
		id:                                      true,
		strings.ToUpper(id):                     false,
		"{" + id + "}":                          false,
		"urn:uuid:" + id:                        false,
		"0195a3c4-0000-7000-8000-00000000000g":  false,
		"":                                      false,
		"not-a-uuid-at-all-but-36-chars-long!!": false,
		"01234567-89ab-cdef-0123-456789abcdef":  true,
	} {
		if got := wellFormedID(s); got != want {
			t.Errorf("wellFormedID(%q) = %v, want %v", s, got, want)
		}
	}
}
