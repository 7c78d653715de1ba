// Package e2e drives the whole livetab system as its users do: over real
// HTTP and a real WebSocket, against every part running in-process on the
// embedded broker.
package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/system"
)

var secret = []byte("e2e-secret")

// testLogger logs warnings to stderr, or more with LIVETAB_E2E_LOG=debug|info
// when a failure needs explaining.
func testLogger() *slog.Logger {
	level := slog.LevelWarn
	if v := os.Getenv("LIVETAB_E2E_LOG"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// livetab is one running system.Run.
type livetab struct {
	t    *testing.T
	info system.Info
	stop func()
}

// testOptions are the options every end-to-end test starts from: all
// parts, a free port, small topics, no demo traffic.
func testOptions(dataDir string) system.Options {
	opts := system.DefaultOptions()
	opts.Addr = "127.0.0.1:0"
	opts.DataDir = dataDir
	opts.Secret = secret
	opts.Demo = false
	opts.DemoRate = 5
	opts.Topics.Partitions = 4
	opts.Logger = testLogger()
	return opts
}

// start runs every part on dataDir and returns once it serves.
func start(t *testing.T, dataDir string, demo bool) *livetab {
	t.Helper()
	opts := testOptions(dataDir)
	opts.Demo = demo
	return run(t, opts)
}

// run runs system.Run with opts until the test ends or stop is called, and
// returns once it serves.
func run(t *testing.T, opts system.Options) *livetab {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan system.Info, 1)
	done := make(chan error, 1)
	go func() { done <- system.Run(ctx, opts, func(i system.Info) { ready <- i }) }()
	lt := &livetab{t: t}
	select {
	case lt.info = <-ready:
	case err := <-done:
		cancel()
		t.Fatalf("livetab %+v stopped before it was ready: %v", opts.Parts, err)
	case <-time.After(90 * time.Second):
		cancel()
		t.Fatalf("livetab %+v not ready within 90s", opts.Parts)
	}
	stopped := false
	lt.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("livetab %+v stopped with error: %v", opts.Parts, err)
			}
		case <-time.After(60 * time.Second):
			t.Errorf("livetab %+v did not stop within 60s", opts.Parts)
		}
	}
	t.Cleanup(lt.stop)
	return lt
}

func token(t *testing.T, account string, admin bool) string {
	t.Helper()
	tok, err := codecs.SignToken(secret, codecs.Claims{Account: account, Admin: admin, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// do sends an HTTP request and returns the response with its body read.
func (lt *livetab) do(method, path, tok string, body any) (*http.Response, []byte) {
	lt.t.Helper()
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			lt.t.Fatal(err)
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, lt.info.URL+path, r)
	if err != nil {
		lt.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	req.Header.Set("User-Agent", "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148")
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		lt.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		lt.t.Fatal(err)
	}
	return resp, b
}

// The WebSocket frames and items, as the README documents them.
type frame struct {
	Type     string            `json:"type"`
	Account  string            `json:"account"`
	Items    []item            `json:"items"`
	Item     *item             `json:"item"`
	Counters map[string]uint64 `json:"counters"`
	Error    string            `json:"error"`
	// Frames are a batch frame's item and update frames.
	Frames []frame `json:"frames"`
}

type item struct {
	Cursor  uint64 `json:"cursor"`
	Account string `json:"account"`
	Kind    string `json:"kind"`
	Session string `json:"session"`
	Hit     *struct {
		ID      string `json:"id"`
		ClickID string `json:"click_id"`
		Session string `json:"session"`
		Link    string `json:"link"`
	} `json:"hit"`
	Event *struct {
		ID      string `json:"id"`
		Name    string `json:"name"`
		Session string `json:"session"`
		ClickID string `json:"click_id"`
	} `json:"event"`
	Conversion *struct {
		HitSession string `json:"hit_session"`
		AppSession string `json:"app_session"`
		Method     string `json:"method"`
	} `json:"conversion"`
	ConvertedWith *struct {
		Session string `json:"session"`
		Method  string `json:"method"`
	} `json:"converted_with"`
}

type socket struct {
	t    *testing.T
	conn *websocket.Conn
	// pending are the frames of the last batch frame not read yet.
	pending []frame
}

func (lt *livetab) dial(ctx context.Context, account, tok string) (*socket, *http.Response, error) {
	u := "ws" + strings.TrimPrefix(lt.info.URL, "http") + "/v1/live?" + url.Values{"account": {account}}.Encode()
	conn, resp, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tok}}})
	if err != nil {
		return nil, resp, err
	}
	conn.SetReadLimit(1 << 20)
	s := &socket{t: lt.t, conn: conn}
	lt.t.Cleanup(func() { conn.CloseNow() })
	return s, resp, nil
}

func (s *socket) read(ctx context.Context) frame {
	s.t.Helper()
	f, err := s.next(ctx)
	if err != nil {
		s.t.Fatalf("read frame: %v", err)
	}
	if f.Type == "error" {
		s.t.Fatalf("server sent an error frame: %s", f.Error)
	}
	return f
}

// next reads the next frame; a batch frame's frames come one by one.
func (s *socket) next(ctx context.Context) (frame, error) {
	if len(s.pending) == 0 {
		var f frame
		if err := wsjson.Read(ctx, s.conn, &f); err != nil {
			return frame{}, err
		}
		if f.Type != "batch" {
			return f, nil
		}
		if len(f.Frames) == 0 {
			return frame{}, fmt.Errorf("empty batch frame")
		}
		s.pending = f.Frames
	}
	f := s.pending[0]
	s.pending = s.pending[1:]
	return f, nil
}

// until reads frames until match returns true for a received item (from a
// snapshot, an item or an update frame) or ctx ends.
func (s *socket) until(ctx context.Context, what string, match func(item) bool) item {
	s.t.Helper()
	var seen []string
	for {
		f, err := s.next(ctx)
		if err != nil {
			s.t.Fatalf("waiting for %s: %v; frames seen meanwhile:\n%s", what, err, strings.Join(seen, "\n"))
		}
		if b, err := json.Marshal(f); err == nil {
			seen = append(seen, string(b))
		}
		items := f.Items
		if f.Item != nil {
			items = append(items, *f.Item)
		}
		for _, it := range items {
			if match(it) {
				return it
			}
		}
	}
}

// visit follows a short link like a browser would, without following the
// redirect, and returns the click id and the hit session cookie.
func (lt *livetab) visit(account, slug string) (clickID, session string) {
	lt.t.Helper()
	resp, body := lt.do("GET", "/l/"+account+"/"+slug+"?utm_source=e2e", "", nil)
	if resp.StatusCode != http.StatusFound {
		lt.t.Fatalf("GET /l/%s/%s = %d %s, want 302", account, slug, resp.StatusCode, body)
	}
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		lt.t.Fatal(err)
	}
	clickID = loc.Query().Get("click_id")
	if clickID == "" {
		lt.t.Fatalf("redirect %s carries no click_id", loc)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "lt_session" {
			session = c.Value
		}
	}
	if session == "" {
		lt.t.Fatal("hit set no lt_session cookie")
	}
	return clickID, session
}

func (lt *livetab) registerLink(account, slug string) {
	lt.t.Helper()
	resp, body := lt.do("PUT", "/v1/links/"+account+"/"+slug, token(lt.t, account, true),
		map[string]any{"destination": "https://example.com/" + slug, "campaign": "e2e"})
	if resp.StatusCode != http.StatusOK {
		lt.t.Fatalf("register link: %d %s", resp.StatusCode, body)
	}
}

func (lt *livetab) postEvent(ev map[string]any) {
	lt.t.Helper()
	resp, body := lt.do("POST", "/v1/events", "", ev)
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"accepted"`) {
		lt.t.Fatalf("POST /v1/events = %d %s", resp.StatusCode, body)
	}
}

type timeline struct {
	Account       string `json:"account"`
	Session       string `json:"session"`
	PairedSession string `json:"paired_session"`
	Conversion    *struct {
		Method string `json:"method"`
	} `json:"conversion"`
	Entries []struct {
		Session string `json:"session"`
		Kind    string `json:"kind"`
		Hit     *struct {
			ID string `json:"id"`
		} `json:"hit"`
		Event *struct {
			ID string `json:"id"`
		} `json:"event"`
	} `json:"entries"`
}

// timeline polls the timeline API until the session shows its pairing:
// the sessions processor may still be applying the conversion.
func (lt *livetab) timeline(ctx context.Context, account, session string) timeline {
	lt.t.Helper()
	for {
		resp, body := lt.do("GET", "/v1/timeline?"+url.Values{"account": {account}, "session": {session}}.Encode(), token(lt.t, account, false), nil)
		if resp.StatusCode == http.StatusOK {
			var tl timeline
			if err := json.Unmarshal(body, &tl); err != nil {
				lt.t.Fatalf("timeline: %v: %s", err, body)
			}
			if tl.PairedSession != "" && len(tl.Entries) >= 2 {
				return tl
			}
		} else if resp.StatusCode != http.StatusNotFound {
			lt.t.Fatalf("timeline: %d %s", resp.StatusCode, body)
		}
		select {
		case <-ctx.Done():
			lt.t.Fatalf("timeline of %s not paired before the deadline: last answer %d %s", session, resp.StatusCode, body)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func TestClickInstallConvertAndRestart(t *testing.T) {
	dir := t.TempDir()
	lt := start(t, dir, false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	lt.registerLink("acme", "spring")
	ws, _, err := lt.dial(ctx, "acme", token(t, "acme", false))
	if err != nil {
		t.Fatal(err)
	}
	if f := ws.read(ctx); f.Type != "snapshot" || len(f.Items) != 0 {
		t.Fatalf("first frame of a new account = %+v, want an empty snapshot", f)
	}

	clickID, hitSession := lt.visit("acme", "spring")
	appSession := fmt.Sprintf("app-%d", time.Now().UnixNano())
	lt.postEvent(map[string]any{"id": "ev-install-1", "account": "acme", "session": appSession, "name": "install", "click_id": clickID, "platform": "ios"})

	ws.until(ctx, "the hit", func(it item) bool { return it.Kind == "hit" && it.Hit != nil && it.Hit.ClickID == clickID })
	ws.until(ctx, "the install converted with the hit's session", func(it item) bool {
		return it.Kind == "event" && it.Event != nil && it.Event.ID == "ev-install-1" &&
			it.ConvertedWith != nil && it.ConvertedWith.Session == hitSession && it.ConvertedWith.Method == "click_id"
	})

	before := lt.timeline(ctx, "acme", appSession)
	checkTimeline(t, before, appSession, hitSession)

	lt.stop()
	lt = start(t, dir, false)

	after := lt.timeline(ctx, "acme", appSession)
	checkTimeline(t, after, appSession, hitSession)
	if len(after.Entries) != len(before.Entries) {
		t.Errorf("timeline has %d entries after restart, %d before", len(after.Entries), len(before.Entries))
	}

	ws2, _, err := lt.dial(ctx, "acme", token(t, "acme", false))
	if err != nil {
		t.Fatal(err)
	}
	snap := ws2.read(ctx)
	if snap.Type != "snapshot" {
		t.Fatalf("first frame after restart is %q, want snapshot", snap.Type)
	}
	var sawHit, sawConverted, sawConversion bool
	for _, it := range snap.Items {
		switch {
		case it.Kind == "hit" && it.Hit != nil && it.Hit.ClickID == clickID:
			sawHit = true
		case it.Kind == "event" && it.ConvertedWith != nil && it.ConvertedWith.Session == hitSession:
			sawConverted = true
		case it.Kind == "conversion" && it.Conversion != nil && it.Conversion.AppSession == appSession:
			sawConversion = true
		}
	}
	if !sawHit || !sawConverted || !sawConversion {
		t.Errorf("snapshot after restart: hit %v, converted install %v, conversion %v; items %+v", sawHit, sawConverted, sawConversion, snap.Items)
	}
	if snap.Counters["hits"] < 1 || snap.Counters["events"] < 1 || snap.Counters["conversions"] < 1 {
		t.Errorf("counters after restart = %v, want every kind counted", snap.Counters)
	}
}

func checkTimeline(t *testing.T, tl timeline, appSession, hitSession string) {
	t.Helper()
	if tl.Session != appSession || tl.PairedSession != hitSession {
		t.Fatalf("timeline session %q paired %q, want %q paired %q", tl.Session, tl.PairedSession, appSession, hitSession)
	}
	if tl.Conversion == nil || tl.Conversion.Method != "click_id" {
		t.Errorf("timeline conversion = %+v, want method click_id", tl.Conversion)
	}
	sessions := map[string]string{}
	for _, e := range tl.Entries {
		sessions[e.Kind] = e.Session
	}
	if sessions["hit"] != hitSession || sessions["event"] != appSession {
		t.Errorf("timeline entries by kind → session = %v, want the hit from %s and the event from %s", sessions, hitSession, appSession)
	}
}

func TestTokenForAnotherAccountGetsNothing(t *testing.T) {
	lt := start(t, t.TempDir(), false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	lt.registerLink("acme", "spring")
	lt.registerLink("other", "promo")
	otherTok := token(t, "other", false)

	if _, resp, err := lt.dial(ctx, "acme", otherTok); err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("WebSocket for acme with other's token: err %v, response %v; want 403 before upgrade", err, resp)
	}
	if _, resp, err := lt.dial(ctx, "acme", ""); err == nil || resp == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("WebSocket without a token: err %v, response %v; want 401", err, resp)
	}

	acme, _, err := lt.dial(ctx, "acme", token(t, "acme", false))
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := lt.dial(ctx, "other", otherTok)
	if err != nil {
		t.Fatal(err)
	}
	acme.read(ctx)
	if f := other.read(ctx); len(f.Items) != 0 {
		t.Fatalf("other's snapshot has items before any traffic: %+v", f.Items)
	}

	clickID, _ := lt.visit("acme", "spring")
	appSession := fmt.Sprintf("app-%d", time.Now().UnixNano())
	lt.postEvent(map[string]any{"id": "ev-iso-1", "account": "acme", "session": appSession, "name": "install", "click_id": clickID})
	acme.until(ctx, "acme's conversion", func(it item) bool { return it.Kind == "conversion" })

	resp, body := lt.do("GET", "/v1/timeline?"+url.Values{"account": {"acme"}, "session": {appSession}}.Encode(), otherTok, nil)
	if resp.StatusCode != http.StatusForbidden || strings.Contains(string(body), "ev-iso-1") {
		t.Fatalf("timeline of acme with other's token = %d %s, want 403 without data", resp.StatusCode, body)
	}
	resp, body = lt.do("GET", "/v1/timeline?"+url.Values{"account": {"other"}, "session": {appSession}}.Encode(), otherTok, nil)
	if resp.StatusCode != http.StatusNotFound || strings.Contains(string(body), "ev-iso-1") {
		t.Fatalf("acme's session asked for as account other = %d %s, want 404 without data", resp.StatusCode, body)
	}

	// Everything of acme reached the hub before other's own hit was even
	// made, so if any of it leaked to other's socket it arrives first.
	otherClick, _ := lt.visit("other", "promo")
	got := other.until(ctx, "other's own hit", func(it item) bool {
		if it.Account != "other" {
			t.Fatalf("socket of account other received %s item of account %q", it.Kind, it.Account)
		}
		return it.Kind == "hit" && it.Hit != nil && it.Hit.ClickID == otherClick
	})
	if got.Account != "other" {
		t.Fatalf("item account %q", got.Account)
	}
}

func TestDemoTrafficShowsUp(t *testing.T) {
	lt := start(t, t.TempDir(), true)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ws, _, err := lt.dial(ctx, system.DemoAccount, token(t, system.DemoAccount, false))
	if err != nil {
		t.Fatal(err)
	}
	ws.until(ctx, "a demo hit", func(it item) bool { return it.Kind == "hit" && it.Account == system.DemoAccount })
	ws.until(ctx, "a demo event", func(it item) bool { return it.Kind == "event" && it.Account == system.DemoAccount })

	resp, body := lt.do("GET", "/?account=demo&token="+token(t, system.DemoAccount, false), "", nil)
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %s %.200s", resp.StatusCode, resp.Header.Get("Content-Type"), body)
	}
	if resp, _ := lt.do("GET", "/healthz", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz = %d", resp.StatusCode)
	}
	if resp, body := lt.do("GET", "/readyz", "", nil); resp.StatusCode != http.StatusOK {
		t.Fatalf("/readyz = %d %s", resp.StatusCode, body)
	}
	resp, body = lt.do("GET", "/metrics", "", nil)
	for _, want := range []string{`livetab_collector_http_requests_total{code="302",route="GET /l/{account}/{slug}"}`, "livetab_collector_events_accepted_total", "go_goroutines"} {
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
			t.Errorf("/metrics = %d, missing %s", resp.StatusCode, want)
		}
	}
}
