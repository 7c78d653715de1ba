package e2e

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/system"
)

// rowsJS lists the feed's rows as {cursor, kind, session}.
const rowsJS = `[...document.querySelectorAll("#feed li[data-cursor]")].map((li) => ({cursor: Number(li.dataset.cursor), kind: li.dataset.kind, session: li.dataset.session}))`

type pageRow struct {
	Cursor  uint64 `json:"cursor"`
	Kind    string `json:"kind"`
	Session string `json:"session"`
}

// rowCursors returns the cursors of the rows the page shows, failing the
// test if any cursor appears twice.
func rowCursors(tb *tab) []uint64 {
	tb.t.Helper()
	var cursors []uint64
	seen := map[uint64]bool{}
	for _, r := range eval[[]pageRow](tb, rowsJS) {
		if seen[r.Cursor] {
			tb.t.Errorf("cursor %d is shown twice\n%s", r.Cursor, tb.describe())
		}
		seen[r.Cursor] = true
		cursors = append(cursors, r.Cursor)
	}
	return cursors
}

// TestBrowserLiveTab drives the Live Tab page in headless Chromium against
// the whole system: a click and an install appear with the converted badge,
// the event's session opens its timeline with the paired hit, the session
// filter narrows the feed, and a server restart is ridden out with a
// reconnect that resumes from the last cursor and shows no row twice.
func TestBrowserLiveTab(t *testing.T) {
	tb := newTab(t, 1280, 900)

	// The port is pinned so that the restarted system listens where the
	// page reconnects to.
	opts := testOptions(t.TempDir())
	opts.Addr = freeAddr(t)
	lt := run(t, opts)
	lt.registerLink("acme", "spring")
	tok := token(t, "acme", false)

	sockets := make(chan string, 64)
	created := chromedp.Events(tb.ctx, network.WebSocketCreated)
	go func() {
		for ev, err := range created {
			if err != nil {
				return
			}
			select {
			case sockets <- ev.URL:
			default:
			}
		}
	}()

	tb.navigate(lt.info.URL + "/?" + url.Values{"account": {"acme"}, "token": {tok}}.Encode())
	tb.waitFor("the page to go live", 30*time.Second, `document.getElementById("state").dataset.state === "live"`)
	if got := eval[string](tb, `document.getElementById("account").innerText`); !strings.Contains(got, "acme") {
		t.Errorf("account shown as %q", got)
	}

	// Traffic: a visitor who does not install, then one who does.
	_, otherSession := lt.visit("acme", "spring")
	clickID, hitSession := lt.visit("acme", "spring")
	appSession := fmt.Sprintf("app-%d", time.Now().UnixNano())
	lt.postEvent(map[string]any{"id": "ev-browser-1", "account": "acme", "session": appSession, "name": "install",
		"click_id": clickID, "platform": "ios", "app_version": "2.3.0"})

	rowSel := func(kind, session string) string {
		return fmt.Sprintf(`#feed li[data-kind=%q][data-session=%q]`, kind, session)
	}
	tb.waitFor("both hits", 30*time.Second, fmt.Sprintf(`!!document.querySelector(%s) && !!document.querySelector(%s)`,
		js(rowSel("hit", hitSession)), js(rowSel("hit", otherSession))))
	tb.waitFor("the install converted with the hit's session", 30*time.Second, fmt.Sprintf(
		`(() => { const b = document.querySelector(%s); return !!b && b.dataset.session === %s && b.dataset.method === "click_id" && b.innerText.includes("Converted with"); })()`,
		js(rowSel("event", appSession)+` [data-testid="converted-badge"]`), js(hitSession)))
	tb.waitFor("the conversion row", 30*time.Second, `!!document.querySelector("#feed li[data-kind=conversion]")`)
	tb.waitFor("the counters", 10*time.Second, `["hits", "events", "conversions"].every((k) => Number(document.getElementById("c-" + k).innerText.replace(/\D/g, "")) >= (k === "hits" ? 2 : 1))`)
	if n := eval[int](tb, fmt.Sprintf(`document.querySelectorAll(%s).length`, js(rowSel("hit", otherSession)+` [data-testid="converted-badge"]`))); n != 0 {
		t.Errorf("the visitor who did not install shows %d converted badges", n)
	}

	// Choosing the install's session filters the feed to it and its paired
	// session, and opens the timeline with the paired hit.
	tb.click("the install's session", rowSel("event", appSession)+` .meta button[data-testid="session-link"]`)
	tb.waitFor("the timeline of the app session with its paired hit", 30*time.Second, fmt.Sprintf(`(() => {
		const p = document.getElementById("panel");
		if (p.hidden || p.dataset.session !== %[1]s || p.dataset.pairedSession !== %[2]s) return false;
		const e = [...p.querySelectorAll("[data-testid=timeline-entry]")];
		const conv = p.querySelector("[data-testid=timeline-conversion]");
		return e.some((li) => li.dataset.kind === "hit" && li.dataset.session === %[2]s && li.dataset.role === "paired") &&
			e.some((li) => li.dataset.kind === "event" && li.dataset.session === %[1]s && li.dataset.role === "self") &&
			!!conv && conv.dataset.method === "click_id";
	})()`, js(appSession), js(hitSession)))
	if got := eval[string](tb, `document.querySelector("[data-testid=filter-session]").value`); got != appSession {
		t.Errorf("session filter = %q, want %q", got, appSession)
	}
	tb.waitFor("the feed narrowed to the session and its pair", 30*time.Second, fmt.Sprintf(
		`!document.querySelector(%s) && !!document.querySelector(%s) && !!document.querySelector(%s)`,
		js(rowSel("hit", otherSession)), js(rowSel("hit", hitSession)), js(rowSel("event", appSession))))
	if q := eval[string](tb, `location.search`); !strings.Contains(q, "session="+url.QueryEscape(appSession)) {
		t.Errorf("page URL %q does not keep the session filter", redactToken(q))
	}

	// Closing the timeline clears the filter: the other visitor is back.
	tb.click("the timeline's close button", `[data-testid=timeline-close]`)
	tb.waitFor("the unfiltered feed", 30*time.Second, fmt.Sprintf(`document.getElementById("panel").hidden && !!document.querySelector(%s)`, js(rowSel("hit", otherSession))))

	// Kinds filter: without hits, only the install and the conversion.
	tb.click("the Hits chip", `label.hit span`)
	tb.waitFor("the feed without hits", 30*time.Second, `(() => {
		const kinds = [...document.querySelectorAll("#feed li[data-cursor]")].map((li) => li.dataset.kind);
		return kinds.length >= 2 && !kinds.includes("hit") && location.search.includes("kind=event%2Cconversion");
	})()`)
	tb.click("the Hits chip", `label.hit span`)
	tb.waitFor("the hits back", 30*time.Second, fmt.Sprintf(`!!document.querySelector(%s) && !location.search.includes("kind=")`, js(rowSel("hit", otherSession))))

	before := rowCursors(tb)
	if len(before) < 4 {
		t.Fatalf("rows before the restart: %v, want two hits, the install and the conversion", before)
	}
	last := slices.Max(before)
	for drained := false; !drained; { // forget the sockets opened so far
		select {
		case <-sockets:
		default:
			drained = true
		}
	}

	// Restart the server on the same data and address: the page notices,
	// reconnects with the last cursor it has, and shows every row once.
	lt.stop()
	tb.waitFor("the page to notice the server went away", 30*time.Second, `document.getElementById("state").dataset.state !== "live"`)
	lt = run(t, opts)
	tb.waitFor("the page to be live again", 60*time.Second, `document.getElementById("state").dataset.state === "live"`)
	// The page resumes from its newest cursor (or a newer one the server
	// vouched for), never from the start.
	deadline := time.After(10 * time.Second)
	for found := false; !found; {
		select {
		case s := <-sockets:
			u, err := url.Parse(s)
			if err != nil {
				t.Fatalf("socket URL %q: %v", redactToken(s), err)
			}
			c, err := strconv.ParseUint(u.Query().Get("cursor"), 10, 64)
			found = err == nil && c >= last
		case <-deadline:
			t.Fatalf("no reconnect asked to resume from cursor %d or later\n%s", last, tb.describe())
		}
	}
	after := rowCursors(tb)
	for _, c := range before {
		if !slices.Contains(after, c) {
			t.Errorf("row #%d is gone after the reconnect: before %v, after %v", c, before, after)
		}
	}

	// Live again: a new event appears exactly once, newest on top.
	lt.postEvent(map[string]any{"id": "ev-browser-2", "account": "acme", "session": appSession, "name": "open", "platform": "ios"})
	tb.waitFor("the open event after the restart", 30*time.Second, `(() => {
		const first = document.querySelector("#feed li[data-cursor]");
		return !!first && first.dataset.kind === "event" && first.innerText.includes("open");
	})()`)
	final := rowCursors(tb)
	if len(final) != len(after)+1 {
		t.Errorf("rows after the new event: %v; before it: %v", final, after)
	}
	tb.checkConsole()
}

// TestBrowserPauseKeepsCounting pauses the feed: new items are counted but
// not shown until the page is resumed.
func TestBrowserPauseKeepsCounting(t *testing.T) {
	tb := newTab(t, 1024, 800)
	lt := start(t, t.TempDir(), false)
	lt.registerLink("acme", "spring")
	tb.navigate(lt.info.URL + "/?" + url.Values{"account": {"acme"}, "token": {token(t, "acme", false)}}.Encode())
	tb.waitFor("the page to go live", 30*time.Second, `document.getElementById("state").dataset.state === "live"`)

	lt.visit("acme", "spring")
	tb.waitFor("the first hit", 30*time.Second, `document.querySelectorAll("#feed li[data-kind=hit]").length === 1`)
	tb.click("pause", `[data-testid=pause]`)
	lt.visit("acme", "spring")
	lt.visit("acme", "spring")
	tb.waitFor("two hits counted while paused", 30*time.Second, `(() => {
		const b = document.querySelector("[data-testid=paused-count]");
		return !b.hidden && b.innerText.startsWith("2 new") && document.getElementById("c-hits").innerText === "3";
	})()`)
	if n := eval[int](tb, `document.querySelectorAll("#feed li[data-kind=hit]").length`); n != 1 {
		t.Errorf("a paused feed shows %d hit rows, want the 1 it had", n)
	}
	tb.click("resume", `[data-testid=paused-count]`)
	tb.waitFor("the hits that arrived while paused", 10*time.Second, `document.querySelectorAll("#feed li[data-kind=hit]").length === 3 && document.querySelector("[data-testid=paused-count]").hidden`)
	rowCursors(tb)
	tb.checkConsole()
}

// TestBrowserScreenshot renders the page with demo traffic into
// docs/livetab.png. It runs only when asked:
//
//	LIVETAB_SCREENSHOT=1 go test ./e2e -run TestBrowserScreenshot
//
// (or LIVETAB_SCREENSHOT=/some/file.png to write elsewhere).
func TestBrowserScreenshot(t *testing.T) {
	out := os.Getenv("LIVETAB_SCREENSHOT")
	if out == "" {
		t.Skip("set LIVETAB_SCREENSHOT=1 to write docs/livetab.png")
	}
	if out == "1" {
		out = filepath.Join("..", "docs", "livetab.png")
	}
	tb := newTab(t, 1440, 960)
	opts := testOptions(t.TempDir())
	opts.Demo = true
	opts.DemoRate = 1 // as livetab dev
	lt := run(t, opts)
	tb.navigate(lt.info.URL + "/?" + url.Values{"account": {system.DemoAccount}, "token": {token(t, system.DemoAccount, false)}}.Encode())
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	// Still rows for the picture: no fade-in caught half way.
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-reduced-motion", Value: "reduce"}},
	}); err != nil {
		t.Fatal(err)
	}
	tb.waitFor("a screenful of demo traffic with conversions", 3*time.Minute, `(() => {
		const rows = [...document.querySelectorAll("#feed li[data-cursor]")];
		return rows.length >= 30 && rows.slice(0, 14).some((li) => li.querySelector("[data-testid=converted-badge]")) &&
			rows.slice(0, 14).some((li) => li.dataset.kind === "conversion");
	})()`)
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("wrote %s (%d bytes)", out, len(png))
	tb.checkConsole()
}

// TestBrowserTokenRefreshAndExpiry: a token pasted into the page refreshes
// the open connection in place; when a token runs out the page says so and
// stops, and a new token brings it back.
func TestBrowserTokenRefreshAndExpiry(t *testing.T) {
	tb := newTab(t, 1024, 800)
	lt := start(t, t.TempDir(), false)
	lt.registerLink("acme", "spring")
	sign := func(ttl time.Duration) (string, time.Time) {
		exp := time.Now().Add(ttl)
		tok, err := codecs.SignToken(secret, codecs.Claims{Account: "acme", Expires: exp})
		if err != nil {
			t.Fatal(err)
		}
		return tok, exp
	}
	sockets := 0
	created := chromedp.Events(tb.ctx, network.WebSocketCreated)
	opened := make(chan struct{}, 16)
	go func() {
		for _, err := range created {
			if err != nil {
				return
			}
			opened <- struct{}{}
		}
	}()
	countSockets := func() int {
		for {
			select {
			case <-opened:
				sockets++
			default:
				return sockets
			}
		}
	}
	useToken := func(tok string) {
		t.Helper()
		tb.waitFor("the token form", 10*time.Second, `!document.getElementById("tokenform").hidden`)
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(ctx,
			chromedp.SetValue(chromedp.CSS(`#tokenform input[name=token]`), tok),
			chromedp.Click(chromedp.CSS(`#tokenform button[type=submit]`), chromedp.NodeVisible),
		); err != nil {
			t.Fatalf("paste a token: %v\n%s", err, tb.describe())
		}
	}

	first, firstExp := sign(5 * time.Second)
	tb.navigate(lt.info.URL + "/?" + url.Values{"account": {"acme"}, "token": {first}}.Encode())
	tb.waitFor("the page to go live", 30*time.Second, `document.getElementById("state").dataset.state === "live"`)
	tb.waitFor("the expiry warning", 10*time.Second, `!document.getElementById("tokwarn").hidden && document.getElementById("tokwarn").innerText.includes("token expires in")`)

	// Refresh in place: the same socket outlives the first token.
	second, _ := sign(9 * time.Second)
	useToken(second)
	tb.waitFor("the first token's expiry to pass with the socket still live", 20*time.Second, fmt.Sprintf(
		`Date.now() > %d && document.getElementById("state").dataset.state === "live"`, firstExp.Add(1500*time.Millisecond).UnixMilli()))
	if n := countSockets(); n != 1 {
		t.Errorf("the page opened %d sockets, want the first one refreshed in place\n%s", n, tb.describe())
	}

	// The second token runs out: the server closes, the page stops and asks.
	tb.waitFor("the page to say the token expired", 30*time.Second, `(() => {
		const s = document.getElementById("state");
		return s.dataset.state === "closed" && s.innerText.includes("token expired") && !document.getElementById("tokenform").hidden;
	})()`)
	countSockets()
	third, _ := sign(time.Hour)
	useToken(third)
	tb.waitFor("the page live on the new token", 30*time.Second, `document.getElementById("state").dataset.state === "live"`)
	if q := eval[string](tb, `location.search`); !strings.Contains(q, "token="+third) {
		t.Errorf("page URL does not carry the new token")
	}
	lt.visit("acme", "spring")
	tb.waitFor("a hit on the new connection", 30*time.Second, `!!document.querySelector("#feed li[data-kind=hit]")`)
	tb.checkConsole()
}
