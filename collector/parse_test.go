package collector

import (
	"fmt"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestUserAgent(t *testing.T) {
	const (
		iphone   = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
		ipad     = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/120.0 Mobile/15E148 Safari/604.1"
		ipod     = "Mozilla/5.0 (iPod touch; CPU iPhone OS 12_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/12.1 Mobile/15E148 Safari/604.1"
		insta    = "Mozilla/5.0 (iPhone; CPU iPhone OS 16_7 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 320.0.0.0"
		bareIOS  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148"
		pixel    = "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP1A.240305.019) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36"
		reduced  = "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"
		samsung  = "Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
		firefoxA = "Mozilla/5.0 (Android 14; Mobile; rv:124.0) Gecko/124.0 Firefox/124.0"
		mac      = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.3 Safari/605.1.15"
		windows  = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36 Edg/122.0.0.0"
		linux    = "Mozilla/5.0 (X11; Linux x86_64; rv:124.0) Gecko/20100101 Firefox/124.0"
		chromeOS = "Mozilla/5.0 (X11; CrOS x86_64 14541.0.0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"
		google   = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
	)
	ios, android, web, other := livetabv1.Platform_PLATFORM_IOS, livetabv1.Platform_PLATFORM_ANDROID, livetabv1.Platform_PLATFORM_WEB, livetabv1.Platform_PLATFORM_OTHER
	tests := []struct {
		name string
		ua   string
		want userAgent
	}{
		{"iphone safari", iphone, userAgent{ios, "iOS", "17.4.1", "iPhone", "Safari"}},
		{"ipad chrome", ipad, userAgent{ios, "iOS", "16.6", "iPad", "Chrome"}},
		{"ipod", ipod, userAgent{ios, "iOS", "12.5", "iPod", "Safari"}},
		{"instagram in-app browser", insta, userAgent{ios, "iOS", "16.7", "iPhone", "Instagram"}},
		{"ios without browser token", bareIOS, userAgent{ios, "iOS", "17.4", "iPhone", "Mobile App"}},
		{"pixel chrome", pixel, userAgent{android, "Android", "14", "Pixel 8", "Chrome"}},
		{"reduced android ua", reduced, userAgent{android, "Android", "10", "", "Chrome"}},
		{"samsung internet", samsung, userAgent{android, "Android", "13", "SM-S911B", "Samsung Internet"}},
		{"firefox android", firefoxA, userAgent{android, "Android", "14", "", "Firefox"}},
		{"mac safari", mac, userAgent{web, "macOS", "10.15.7", "", "Safari"}},
		{"windows edge", windows, userAgent{web, "Windows", "10", "", "Edge"}},
		{"linux firefox", linux, userAgent{web, "Linux", "", "", "Firefox"}},
		{"chromeos", chromeOS, userAgent{web, "ChromeOS", "14541.0.0", "", "Chrome"}},
		{"crawler", google, userAgent{Platform: other, Browser: "Googlebot"}},
		{"curl", "curl/8.5.0", userAgent{Platform: other, Browser: "curl"}},
		{"empty", "", userAgent{Platform: other}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (mssolaUA{}).parse(tt.ua); got != tt.want {
				t.Errorf("parse = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestDestination(t *testing.T) {
	link := &livetabv1.Link{Destination: "https://example.com/web", Ios: "https://ios.example.com/app", Android: "market://details?id=com.example"}
	noApps := &livetabv1.Link{Destination: "https://example.com/only"}
	for _, tt := range []struct {
		link     *livetabv1.Link
		platform livetabv1.Platform
		want     string
	}{
		{link, livetabv1.Platform_PLATFORM_IOS, "https://ios.example.com/app"},
		{link, livetabv1.Platform_PLATFORM_ANDROID, "market://details?id=com.example"},
		{link, livetabv1.Platform_PLATFORM_WEB, "https://example.com/web"},
		{link, livetabv1.Platform_PLATFORM_OTHER, "https://example.com/web"},
		{noApps, livetabv1.Platform_PLATFORM_IOS, "https://example.com/only"},
		{noApps, livetabv1.Platform_PLATFORM_ANDROID, "https://example.com/only"},
	} {
		if got := destination(tt.link, tt.platform); got != tt.want {
			t.Errorf("destination(%v) = %s, want %s", tt.platform, got, tt.want)
		}
	}
}

func TestClickLocation(t *testing.T) {
	tests := []struct {
		name, dest, want string
	}{
		{"no query", "https://example.com/web", "https://example.com/web?click_id=c1"},
		{"query kept as written", "https://ios.example.com/app?ref=lt&x=a%20b", "https://ios.example.com/app?ref=lt&x=a%20b&click_id=c1"},
		{"fragment kept", "https://example.com/store?id=com.example#top", "https://example.com/store?id=com.example&click_id=c1#top"},
		{"existing click_id replaced in place", "https://example.com/?click_id=old&a=1&click_id=older", "https://example.com/?click_id=c1&a=1"},
		{"empty query", "https://example.com/?", "https://example.com/?click_id=c1"},
		{"odd query kept", "https://example.com/?a=%zz;b&&c", "https://example.com/?a=%zz;b&&c&click_id=c1"},
		{"look-alike host is no play store", "https://play.google.com.example.com/x?id=a", "https://play.google.com.example.com/x?id=a&click_id=c1"},
		{"google play: referrer added", "https://play.google.com/store/apps/details?id=com.example",
			"https://play.google.com/store/apps/details?id=com.example&referrer=click_id%3Dc1"},
		{"google play: referrer merged", "https://play.google.com/store/apps/details?id=com.example&referrer=utm_source%3Dmail%26utm_medium%3Demail&hl=de",
			"https://play.google.com/store/apps/details?id=com.example&referrer=utm_source%3Dmail%26utm_medium%3Demail%26click_id%3Dc1&hl=de"},
		{"google play: referrer that is no query", "https://play.google.com/store/apps/details?id=com.example&referrer=spring-sale",
			"https://play.google.com/store/apps/details?id=com.example&referrer=spring-sale%26click_id%3Dc1"},
		{"google play: referrer's click_id replaced", "https://play.google.com/store/apps/details?id=x&referrer=click_id%3Dold%26utm_source%3Dads",
			"https://play.google.com/store/apps/details?id=x&referrer=click_id%3Dc1%26utm_source%3Dads"},
		{"google play: badly escaped referrer kept", "https://play.google.com/store/apps/details?id=x&referrer=a%zz",
			"https://play.google.com/store/apps/details?id=x&referrer=a%zz%26click_id%3Dc1"},
		{"google play: empty referrer", "https://play.google.com/store/apps/details?id=x&referrer=",
			"https://play.google.com/store/apps/details?id=x&referrer=click_id%3Dc1"},
		{"google play: no click_id param", "http://PLAY.google.com/store/apps/details?id=x&click_id=keep",
			"http://PLAY.google.com/store/apps/details?id=x&click_id=keep&referrer=click_id%3Dc1"},
		{"market uri", "market://details?id=com.example", "market://details?id=com.example&referrer=click_id%3Dc1"},
		{"market uri with referrer", "market://details?id=com.example&referrer=utm_source%3Dx",
			"market://details?id=com.example&referrer=utm_source%3Dx%26click_id%3Dc1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := clickLocation(tt.dest, "c1")
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("got  %s\nwant %s", got, tt.want)
			}
			if !strings.Contains(tt.dest, "%zz") && clickIDOf(t, got) != "c1" {
				t.Errorf("%s does not carry the click id where the app finds it", got)
			}
		})
	}
	if _, err := clickLocation("https://exa mple.com/%zz", "c1"); err == nil {
		t.Error("a destination that does not parse must be an error")
	}
}

// clickIDOf reads the click id from a redirect location the way the app
// gets it: from the install referrer for Google Play, else from click_id.
func clickIDOf(t *testing.T, location string) string {
	t.Helper()
	u, err := url.Parse(location)
	if err != nil {
		t.Fatalf("location %q: %v", location, err)
	}
	if isGooglePlay(u) {
		ref, err := url.ParseQuery(u.Query().Get(ReferrerParam))
		if err != nil {
			// An owner's referrer that is no query string: the click id is
			// the last parameter.
			_, last, _ := strings.Cut(u.Query().Get(ReferrerParam), "&"+ClickIDParam+"=")
			return last
		}
		return ref.Get(ClickIDParam)
	}
	return u.Query().Get(ClickIDParam)
}

func TestRequestInfoCleansInput(t *testing.T) {
	c := &Collector{ua: mssolaUA{}}
	q := make([]string, 0, MaxRequestParams+10)
	for i := range MaxRequestParams + 10 {
		q = append(q, "p"+strings.Repeat("x", i%3)+string(rune('a'+i%26))+"="+string(rune('0'+i%10)))
	}
	r := httptest.NewRequest("GET", "/l/a/b?bad=%FF%FE&a_semi=x;y&a_esc=%zz&a_twice=1&a_twice=2&=novalue&"+
		"long="+strings.Repeat("v", 2000)+"&"+strings.Repeat("k", 100)+"=longkey&"+strings.Join(q, "&"), nil)
	r.Header.Set("User-Agent", "bot\xff")
	r.Header.Set("Referer", strings.Repeat("r", MaxHeaderLen+1))
	req, _ := c.requestInfo(r)
	if req.UserAgent != "bot\uFFFD" {
		t.Errorf("user agent %q: invalid UTF-8 must be replaced", req.UserAgent)
	}
	if len(req.Referrer) != MaxHeaderLen {
		t.Errorf("referrer has %d bytes, want it cut to %d", len(req.Referrer), MaxHeaderLen)
	}
	for k, want := range map[string]string{"bad": "\uFFFD", "a_semi": "x;y", "a_esc": "%zz", "a_twice": "1"} {
		if got := req.Params[k]; got != want {
			t.Errorf("param %s = %q, want %q", k, got, want)
		}
	}
	if got := len(req.Params["long"]); got != MaxParamValueLen {
		t.Errorf("long param has %d bytes, want %d", got, MaxParamValueLen)
	}
	if got := req.Params[strings.Repeat("k", MaxParamKeyLen)]; got != "longkey" {
		t.Errorf("a long name must be cut to %d bytes, params %v", MaxParamKeyLen, req.Params)
	}
	if _, ok := req.Params[""]; ok {
		t.Error("a parameter without a name must be dropped")
	}
	if len(req.Params) != MaxRequestParams {
		t.Errorf("%d params kept, want %d", len(req.Params), MaxRequestParams)
	}
	for k, v := range req.Params {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			t.Errorf("param %q=%q is not UTF-8", k, v)
		}
	}
	if req.Ip != "192.0.2.1" {
		t.Errorf("ip %q, want httptest's peer", req.Ip)
	}
	if got := clean("aé", 2); got != "a" {
		t.Errorf("clean must cut at a rune boundary, got %q", got)
	}
}

func TestDeviceIDParam(t *testing.T) {
	for query, want := range map[string]string{
		"device_id=abc123":                                   "abc123",
		"x=1&device_id=a%2Bb&device_id=2":                    "a+b",
		"device_id=" + strings.Repeat("d", MaxDeviceIDLen):   strings.Repeat("d", MaxDeviceIDLen),
		"device_id=" + strings.Repeat("d", MaxDeviceIDLen+1): "",
		"device_id=%FF":                                      "",
		"other=device_id":                                    "",
	} {
		r := httptest.NewRequest("GET", "/l/a/b?"+query, nil)
		if got := deviceIDParam(r); got != want {
			t.Errorf("deviceIDParam(%q) = %q, want %q", query, got, want)
		}
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
		{name: "play store uri for android", in: linkInput{Destination: "https://example.com/", Android: "market://details?id=x&referrer=utm_source%3Dx"}},
		{name: "bad ios", in: linkInput{Destination: "https://example.com/", IOS: "itms-apps://x"}, wantErr: "ios: must be an absolute"},
		{name: "market uri for ios", in: linkInput{Destination: "https://example.com/", IOS: "market://details?id=x"}, wantErr: "ios: must be an absolute"},
		{name: "market uri as fallback", in: linkInput{Destination: "market://details?id=x"}, wantErr: "destination: must be an absolute"},
		{name: "bad android", in: linkInput{Destination: "https://example.com/", Android: "intent://x"}, wantErr: "android: must be an absolute http or https URL, or a market:// URI"},
		{name: "market uri without host", in: linkInput{Destination: "https://example.com/", Android: "market:details"}, wantErr: "android"},
		{name: "long url", in: linkInput{Destination: "https://example.com/" + strings.Repeat("p", MaxURLLen)}, wantErr: "destination: 2068 bytes, at most 2048"},
		{name: "space", in: linkInput{Destination: "https://example.com/a b"}, wantErr: "spaces"},
		{name: "deep link with space", in: linkInput{Destination: "https://example.com/", DeepLink: "myapp://a b"}, wantErr: "deep_link"},
		{name: "long campaign", in: linkInput{Destination: "https://example.com/", Campaign: strings.Repeat("c", MaxCampaignLen+1)}, wantErr: "campaign: 129 bytes"},
		{name: "empty tag name", in: linkInput{Destination: "https://example.com/", Tags: map[string]string{"": "v"}}, wantErr: "tags: names"},
		{name: "long tag value", in: linkInput{Destination: "https://example.com/", Tags: map[string]string{"k": strings.Repeat("v", MaxTagValueLen+1)}}, wantErr: `tags["k"]: 257 bytes`},
		{name: "too many tags", in: linkInput{Destination: "https://example.com/", Tags: manyTags(MaxTags + 1)}, wantErr: "tags: 33 entries"},
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

func manyTags(n int) map[string]string {
	tags := map[string]string{}
	for i := range n {
		tags[fmt.Sprintf("t%d", i)] = "v"
	}
	return tags
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
