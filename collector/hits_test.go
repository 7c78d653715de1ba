package collector_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/topics"
)

const (
	uaIPhone  = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
	uaAndroid = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Mobile Safari/537.36"
	uaDesktop = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 Safari/537.36"
)

var springLink = map[string]any{
	"destination": "https://example.com/spring?ref=lt",
	"ios":         "https://ios.example.com/app/spring",
	"android":     "https://play.example.com/store/apps/details?id=com.example.garden",
	"deep_link":   "garden://sale/spring",
	"campaign":    "spring-2026",
	"tags":        map[string]string{"channel": "social"},
}

// click follows a short link once and returns the answer and the one Hit
// it produced.
func (e *env) click(path string, header http.Header, client *http.Client) (*http.Response, *livetabv1.Hit) {
	e.t.Helper()
	before := e.endOffsets(string(topics.Hits))
	resp, body := e.do(request{method: "GET", path: path, header: header, client: client})
	if resp.StatusCode != http.StatusFound {
		e.t.Fatalf("GET %s = %d %s, want 302", path, resp.StatusCode, body)
	}
	msgs := e.since(string(topics.Hits), before)
	if len(msgs) != 1 {
		e.t.Fatalf("GET %s produced %d hits, want exactly 1", path, len(msgs))
	}
	hit, err := codecs.Typed[livetabv1.Hit](msgs[0].Value)
	if err != nil {
		e.t.Fatal(err)
	}
	if string(msgs[0].Key) != hit.Account {
		e.t.Errorf("hit keyed %q, want its account %q", msgs[0].Key, hit.Account)
	}
	return resp, hit
}

func TestHit(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", springLink)

	// First click from an iPhone, through no proxy: a forwarded header
	// from the direct peer must be ignored.
	resp, hit := e.click("/l/acme/spring?utm_source=instagram&utm_campaign=spring&utm_source=ignored&device_id=hashed-idfa", http.Header{
		"User-Agent":      {uaIPhone},
		"Referer":         {"https://instagram.example.com/p/1"},
		"Accept-Language": {"de-DE,de;q=0.9"},
		"X-Forwarded-For": {"198.51.100.99"},
	}, nil)

	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	if got := loc.Scheme + "://" + loc.Host + loc.Path; got != "https://ios.example.com/app/spring" {
		t.Errorf("iPhone redirected to %s, want the iOS destination", got)
	}
	clickID := loc.Query().Get("click_id")
	if clickID == "" || clickID != hit.ClickId {
		t.Errorf("Location click_id %q, hit.click_id %q: must be equal and set", clickID, hit.ClickId)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	var cookie *http.Cookie
	for _, c := range resp.Cookies() {
		if c.Name == collector.SessionCookie {
			cookie = c
		}
	}
	if cookie == nil {
		t.Fatal("no lt_session cookie set")
	}
	if !cookie.HttpOnly || cookie.SameSite != http.SameSiteLaxMode || cookie.Path != "/" || cookie.MaxAge != 2*365*24*3600 {
		t.Errorf("cookie %+v: want HttpOnly, SameSite=Lax, Path=/, two-year Max-Age", cookie)
	}
	if cookie.Value != hit.Session {
		t.Errorf("cookie %q, hit.session %q", cookie.Value, hit.Session)
	}

	want := &livetabv1.Hit{
		Account:     "acme",
		Link:        "spring",
		Campaign:    "spring-2026",
		ClickId:     clickID,
		Session:     cookie.Value,
		ReceivedUs:  e.now.UnixMicro(),
		Destination: resp.Header.Get("Location"),
		Platform:    livetabv1.Platform_PLATFORM_IOS,
		DeviceId:    "hashed-idfa",
		DeepLink:    "garden://sale/spring",
	}
	if hit.Id == "" || hit.Id == hit.ClickId || hit.Id == hit.Session {
		t.Errorf("hit id %q must be set and its own", hit.Id)
	}
	got := &livetabv1.Hit{Account: hit.Account, Link: hit.Link, Campaign: hit.Campaign, ClickId: hit.ClickId, Session: hit.Session,
		ReceivedUs: hit.ReceivedUs, Destination: hit.Destination, Platform: hit.Platform, DeviceId: hit.DeviceId, DeepLink: hit.DeepLink}
	if got.String() != want.String() {
		t.Errorf("hit\n got %v\nwant %v", got, want)
	}
	req := hit.GetRequest()
	if req.GetIp() != "127.0.0.1" {
		t.Errorf("ip %q: want the peer, the forwarded header came from an untrusted peer", req.GetIp())
	}
	if req.GetUserAgent() != uaIPhone || req.GetReferrer() != "https://instagram.example.com/p/1" || req.GetAcceptLanguage() != "de-DE,de;q=0.9" {
		t.Errorf("request headers %v", req)
	}
	if p := req.GetParams(); len(p) != 3 || p["utm_source"] != "instagram" || p["utm_campaign"] != "spring" || p["device_id"] != "hashed-idfa" {
		t.Errorf("params %v: want every query parameter, first value", p)
	}
	if req.GetOs() != "iOS" || req.GetOsVersion() != "17.4" || req.GetDevice() != "iPhone" || req.GetBrowser() != "Safari" {
		t.Errorf("parsed user agent %v", req)
	}

	// Second click of the same browser (cookie jar) from Android: same
	// session, new hit and click ids, the Android destination.
	resp2, hit2 := e.click("/l/acme/spring", http.Header{"User-Agent": {uaAndroid}}, nil)
	if hit2.Session != hit.Session {
		t.Errorf("second click session %q, want the cookie's %q", hit2.Session, hit.Session)
	}
	if hit2.Id == hit.Id || hit2.ClickId == hit.ClickId {
		t.Error("second click must get new hit and click ids")
	}
	if !strings.HasPrefix(resp2.Header.Get("Location"), "https://play.example.com/store/apps/details?id=com.example.garden&click_id=") {
		t.Errorf("Android redirected to %s", resp2.Header.Get("Location"))
	}
	if hit2.Platform != livetabv1.Platform_PLATFORM_ANDROID || len(hit2.GetRequest().GetParams()) != 0 {
		t.Errorf("second hit %v", hit2)
	}

	// A desktop browser without cookies gets the fallback and a new
	// session; a forged cookie is replaced too.
	resp3, hit3 := e.click("/l/acme/spring", http.Header{"User-Agent": {uaDesktop}, "Cookie": {"lt_session=forged; other=1"}}, &http.Client{
		CheckRedirect: e.client.CheckRedirect,
	})
	if hit3.Session == hit.Session || hit3.Session == "forged" {
		t.Errorf("desktop session %q: want a new one", hit3.Session)
	}
	if hit3.Platform != livetabv1.Platform_PLATFORM_WEB || !strings.HasPrefix(resp3.Header.Get("Location"), "https://example.com/spring?ref=lt&click_id=") {
		t.Errorf("desktop: platform %v, Location %s", hit3.Platform, resp3.Header.Get("Location"))
	}
}

// TestHitGooglePlay checks that a click bound for Google Play carries its
// click id inside the install referrer, merged with the owner's, since the
// Play Store hands the app nothing else; the App Store link of the same
// link gets click_id.
func TestHitGooglePlay(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "play", map[string]any{
		"destination": "https://example.com/garden",
		"ios":         "https://apps.apple.com/app/id123?ct=spring",
		"android":     "https://play.google.com/store/apps/details?id=com.example.garden&referrer=utm_source%3Dnewsletter%26utm_medium%3Demail",
	})
	e.putLink("acme", "market", map[string]any{"destination": "https://example.com/garden", "android": "market://details?id=com.example.garden"})
	tests := []struct {
		path, ua   string
		wantPrefix string
		referrer   string // the owner's referrer parameters, kept
	}{
		{"/l/acme/play", uaAndroid, "https://play.google.com/store/apps/details?id=com.example.garden&referrer=", "utm_source=newsletter&utm_medium=email"},
		{"/l/acme/market", uaAndroid, "market://details?id=com.example.garden&referrer=", ""},
		{"/l/acme/play", uaIPhone, "https://apps.apple.com/app/id123?ct=spring&click_id=", ""},
	}
	for _, tt := range tests {
		resp, hit := e.click(tt.path, http.Header{"User-Agent": {tt.ua}}, nil)
		location := resp.Header.Get("Location")
		if !strings.HasPrefix(location, tt.wantPrefix) || hit.Destination != location {
			t.Errorf("%s from %s: Location %s (hit.destination %s), want %s…", tt.path, hit.GetRequest().GetOs(), location, hit.Destination, tt.wantPrefix)
			continue
		}
		loc, err := url.Parse(location)
		if err != nil {
			t.Fatal(err)
		}
		if tt.ua == uaIPhone {
			if loc.Query().Get("click_id") != hit.ClickId {
				t.Errorf("App Store Location %s, want click_id=%s", location, hit.ClickId)
			}
			continue
		}
		if loc.Query().Has("click_id") {
			t.Errorf("Google Play Location %s: the click id goes into the referrer only", location)
		}
		ref, err := url.ParseQuery(loc.Query().Get("referrer"))
		if err != nil {
			t.Fatalf("referrer of %s: %v", location, err)
		}
		if ref.Get("click_id") != hit.ClickId {
			t.Errorf("referrer %v, want click_id=%s", ref, hit.ClickId)
		}
		ref.Del("click_id")
		if got := ref.Encode(); got != mustSortQuery(t, tt.referrer) {
			t.Errorf("referrer without click_id %q, want the owner's %q", got, tt.referrer)
		}
	}
}

func mustSortQuery(t *testing.T, q string) string {
	t.Helper()
	v, err := url.ParseQuery(q)
	if err != nil {
		t.Fatal(err)
	}
	return v.Encode()
}

// TestHitOddInput checks that a click is never refused for its query or
// headers: they are cleaned and bounded in the hit, and the visitor is
// redirected.
func TestHitOddInput(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", springLink)
	var q []string
	for i := range collector.MaxRequestParams + 20 {
		q = append(q, fmt.Sprintf("p%03d=%d", i, i))
	}
	path := "/l/acme/spring?utm_source=%FFbad&utm_term=a;b&utm_content=%zz&long=" + strings.Repeat("v", 3*collector.MaxParamValueLen) +
		"&device_id=" + strings.Repeat("d", collector.MaxDeviceIDLen+1) + "&" + strings.Join(q, "&")
	_, hit := e.click(path, http.Header{
		"User-Agent":      {"Mozilla/5.0 (\xff; iPhone"},
		"Referer":         {strings.Repeat("r", 3*collector.MaxHeaderLen)},
		"Accept-Language": {"\xfe"},
	}, nil)
	req := hit.GetRequest()
	if len(req.GetParams()) != collector.MaxRequestParams {
		t.Errorf("%d params, want the first %d", len(req.GetParams()), collector.MaxRequestParams)
	}
	for k, want := range map[string]string{"utm_source": "\uFFFDbad", "utm_term": "a;b", "utm_content": "%zz"} {
		if got := req.GetParams()[k]; got != want {
			t.Errorf("param %s = %q, want %q", k, got, want)
		}
	}
	if len(req.GetParams()["long"]) != collector.MaxParamValueLen || len(req.GetReferrer()) != collector.MaxHeaderLen {
		t.Errorf("long value %d bytes, referrer %d: want them cut", len(req.GetParams()["long"]), len(req.GetReferrer()))
	}
	if hit.DeviceId != "" {
		t.Errorf("device id %q: one longer than %d bytes is no id", hit.DeviceId, collector.MaxDeviceIDLen)
	}
	if req.GetAcceptLanguage() != "\uFFFD" {
		t.Errorf("accept-language %q", req.GetAcceptLanguage())
	}
}

func TestHitUnknownLink(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", springLink)
	before := e.endOffsets(string(topics.Hits))
	for _, path := range []string{"/l/acme/autumn", "/l/other/spring", "/l/acme/NOT_A_SLUG", "/l/acme", "/l/acme/spring/extra"} {
		resp, body := e.do(request{method: "GET", path: path})
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s = %d %s, want 404", path, resp.StatusCode, body)
			continue
		}
		errorReason(t, body)
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("GET %s set a cookie", path)
		}
	}
	resp, body := e.do(request{method: "POST", path: "/l/acme/spring"})
	if resp.StatusCode != http.StatusMethodNotAllowed || !strings.Contains(resp.Header.Get("Allow"), "GET") {
		t.Errorf("POST /l/acme/spring = %d (Allow %q), want 405 with Allow", resp.StatusCode, resp.Header.Get("Allow"))
	}
	errorReason(t, body)
	// A HEAD probe shows the destination but is no click.
	resp, _ = e.do(request{method: "HEAD", path: "/l/acme/spring"})
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "https://example.com/spring?ref=lt" {
		t.Errorf("HEAD = %d %s, want 302 to the destination", resp.StatusCode, resp.Header.Get("Location"))
	}
	e.nothingSince(string(topics.Hits), before, "unknown links")
}

func TestTrustedProxy(t *testing.T) {
	e := startEnv(t, envOptions{opts: func(o *collector.Options) {
		o.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	}})
	e.putLink("acme", "spring", springLink)
	resp, hit := e.click("/l/acme/spring", http.Header{
		"X-Forwarded-For":   {"1.2.3.4, 198.51.100.7, 127.0.0.2"},
		"X-Forwarded-Proto": {"https"},
	}, nil)
	if got := hit.GetRequest().GetIp(); got != "198.51.100.7" {
		t.Errorf("ip %q, want the first untrusted hop from the right", got)
	}
	for _, c := range resp.Cookies() {
		if c.Name == collector.SessionCookie && !c.Secure {
			t.Error("session cookie must be Secure when a trusted proxy terminated HTTPS")
		}
	}

	before := e.endOffsets(string(topics.Events))
	resp, body := e.do(request{method: "POST", path: "/v1/events", body: map[string]any{"id": "e1", "account": "acme", "session": "s1", "name": "open"},
		header: http.Header{"Forwarded": {`for="[2001:db8::7]:1234";proto=https`}}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("event: %d %s", resp.StatusCode, body)
	}
	msgs := e.since(string(topics.Events), before)
	if len(msgs) != 1 {
		t.Fatalf("%d events", len(msgs))
	}
	rec := readEventRecord(t, msgs[0])
	if len(rec.events) != 1 {
		t.Fatalf("%d events in the record", len(rec.events))
	}
	if got := rec.events[0].GetRequest().GetIp(); got != "2001:db8::7" {
		t.Errorf("event ip %q, want Forwarded's for=", got)
	}
}

func TestProducerFailure(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", springLink)
	collector.FailProducer(e.c, sarama.ErrOutOfBrokers)
	// A new server, so that its handlers start after the swap.
	mux := http.NewServeMux()
	e.c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL

	hitsBefore, linksBefore := e.endOffsets(string(topics.Hits)), e.endOffsets(string(topics.Links))
	for _, r := range []request{
		{method: "GET", path: "/l/acme/spring"},
		{method: "POST", path: "/v1/events", body: `[{"id":"e1","account":"acme","session":"s1","name":"open"}]`},
		{method: "PUT", path: "/v1/links/acme/autumn", token: e.token("acme", true), body: map[string]any{"destination": "https://example.com/"}},
		{method: "DELETE", path: "/v1/links/acme/spring", token: e.token("acme", true)},
	} {
		resp, body := e.do(r)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "1" {
			t.Errorf("%s %s with Kafka down = %d (Retry-After %q), want 503 with Retry-After: 1", r.method, r.path, resp.StatusCode, resp.Header.Get("Retry-After"))
		}
		errorReason(t, body)
		if resp.Header.Get("Set-Cookie") != "" {
			t.Errorf("%s %s set a cookie although nothing was recorded", r.method, r.path)
		}
	}
	e.nothingSince(string(topics.Hits), hitsBefore, "failed producer")
	e.nothingSince(string(topics.Links), linksBefore, "failed producer")
}

// TestRequestAfterClose checks that a straggling request after Close is
// answered 503 rather than crashing on the closed producer.
func TestRequestAfterClose(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", springLink)
	if err := e.c.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range []request{
		{method: "GET", path: "/l/acme/spring"},
		{method: "POST", path: "/v1/events", body: event("late", "s", "open")},
	} {
		resp, body := e.do(r)
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Errorf("%s %s after Close: %d %s, want 503", r.method, r.path, resp.StatusCode, body)
		}
	}
}
