package views

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// These tests drive the live protocol over a real WebSocket against a
// server on an embedded broker, producing view items straight to the view
// topic.

const (
	ios     = livetabv1.Platform_PLATFORM_IOS
	android = livetabv1.Platform_PLATFORM_ANDROID
	web     = livetabv1.Platform_PLATFORM_WEB
)

// fastStats makes stats frames frequent, so that tests learn quickly
// that a client was sent everything up to a cursor.
const fastStats = 100 * time.Millisecond

// summary names a frame as "item 3", "update 3", or its type.
func summary(f frame) string {
	if (f.Type == "item" || f.Type == "update") && f.Item != nil {
		return fmt.Sprintf("%s %d", f.Type, f.Item.Cursor)
	}
	return f.Type
}

// collectUntil reads frames until a stats frame says the client was sent
// everything up to cursor, and returns the other frames as summaries.
func collectUntil(t *testing.T, c *liveClient, cursor uint64) []string {
	t.Helper()
	var out []string
	deadline := time.Now().Add(20 * time.Second)
	for {
		f, err := readAnyFrame(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("waiting for a stats frame at cursor %d (got %q so far): %v", cursor, out, err)
		}
		if f.Type == "stats" {
			if f.Cursor >= cursor {
				return out
			}
			continue
		}
		out = append(out, summary(f))
	}
}

// filterData is an account's traffic: two hits, an install that converts
// with the first hit's session, an open of another app, the conversion,
// and a later open of the converted app.
func filterData() []*livetabv1.ViewItem {
	install := mkEvent("demo", 3, "app-1", "install", android)
	return []*livetabv1.ViewItem{
		mkHit("demo", 1, "web-1", "spring", "spring-sale", ios),
		mkHit("demo", 2, "web-2", "autumn", "autumn-sale", web),
		install,
		mkEvent("demo", 4, "app-2", "open", ios),
		marked(install, "web-1"),
		mkConversion("demo", 5, "web-1", "app-1", "spring"),
		mkEvent("demo", 6, "app-1", "open", android),
	}
}

func TestLiveFilters(t *testing.T) {
	e := newEnv(t, envOptions{statsInterval: fastStats, before: func(e *env) { e.produceItems(filterData()...) }})
	tests := []struct {
		query    string
		snapshot []uint64
		live     []string
	}{
		{"kind=hit", []uint64{1, 2}, []string{"item 7", "item 9"}},
		{"kind=event,conversion", []uint64{3, 4, 5, 6}, []string{"item 8"}},
		{"event=install", []uint64{3}, []string{"item 8"}},
		{"link=spring", []uint64{1, 5}, []string{"item 7", "item 9"}},
		{"campaign=autumn-sale", []uint64{2}, nil},
		{"platform=android", []uint64{3, 6}, []string{"item 9"}},
		{"session=web-1", []uint64{1, 3, 5, 6}, []string{"item 7"}},
		// Pairing works both ways: the app session's hit session too.
		{"session=app-1", []uint64{1, 3, 5, 6}, []string{"item 7"}},
		{"session=app-1&kind=event", []uint64{3, 6}, nil},
		{"", []uint64{1, 2, 3, 4, 5, 6}, []string{"item 7", "item 8", "item 9"}},
	}
	tok := validToken(t, "demo")
	conns := make([]*liveClient, len(tests))
	for i, tt := range tests {
		q, err := url.ParseQuery(tt.query)
		if err != nil {
			t.Fatal(err)
		}
		conns[i] = e.dialQuery(tok, q)
		snap := readSnapshot(t, conns[i])
		if got := cursorsOf(snap.Items); !slices.Equal(got, tt.snapshot) {
			t.Errorf("%s: snapshot %v, want %v", tt.query, got, tt.snapshot)
		}
		if snap.Sampled == nil || *snap.Sampled || snap.Cursor != 6 || snap.Filters == nil {
			t.Errorf("%s: snapshot sampled %v, cursor %d, filters %+v", tt.query, snap.Sampled, snap.Cursor, snap.Filters)
		}
	}
	e.produceItems(
		mkHit("demo", 7, "web-1", "spring", "spring-sale", ios),
		mkEvent("demo", 8, "app-2", "install", ios),
		mkHit("demo", 9, "web-3", "spring", "", android),
	)
	for i, tt := range tests {
		if got := collectUntil(t, conns[i], 9); !slices.Equal(got, tt.live) {
			t.Errorf("%s: live %q, want %q", tt.query, got, tt.live)
		}
	}
}

// TestLiveSessionFilterFollowsPairing: a client that follows a web
// session before it converts gets the install that converts it (as an
// item: it was not sent before), the conversion, and the app session's
// later events.
func TestLiveSessionFilterFollowsPairing(t *testing.T) {
	e := newEnv(t, envOptions{statsInterval: fastStats})
	c := e.dialQuery(validToken(t, "demo"), url.Values{"session": {"web-5"}})
	if snap := readSnapshot(t, c); len(snap.Items) != 0 || snap.Filters == nil || snap.Filters.Session != "web-5" {
		t.Fatalf("snapshot %+v", snap)
	}
	install := mkEvent("demo", 2, "app-5", "install", ios)
	e.produceItems(
		mkHit("demo", 1, "web-5", "spring", "", web),
		install,
		marked(install, "web-5"),
		mkConversion("demo", 3, "web-5", "app-5", "spring"),
		mkEvent("demo", 4, "app-5", "open", ios),
		mkEvent("demo", 5, "app-6", "open", ios),
	)
	if got, want := collectUntil(t, c, 5), []string{"item 1", "item 2", "item 3", "item 4"}; !slices.Equal(got, want) {
		t.Errorf("live %q, want %q", got, want)
	}
}

func TestLiveChangeFiltersOnOpenConnection(t *testing.T) {
	e := newEnv(t, envOptions{statsInterval: fastStats, before: func(e *env) { e.produceItems(filterData()...) }})
	c := e.dial("demo", validToken(t, "demo"))
	if snap := readSnapshot(t, c); len(snap.Items) != 6 {
		t.Fatalf("snapshot of %d items, want 6", len(snap.Items))
	}

	// New filters without a cursor: a new snapshot, and live items that
	// match only.
	send(t, c, map[string]any{"type": "subscribe", "filters": map[string]any{"kind": []string{"hit"}}})
	snap := readSnapshot(t, c)
	if got := cursorsOf(snap.Items); !slices.Equal(got, []uint64{1, 2}) {
		t.Errorf("snapshot for kind hit: %v", got)
	}
	if snap.Filters == nil || !slices.Equal(snap.Filters.Kind, kindList{"hit"}) {
		t.Errorf("filters echoed %+v", snap.Filters)
	}
	e.produceItems(mkHit("demo", 7, "web-7", "l", "", web), mkEvent("demo", 8, "app-8", "open", ios))
	if got := collectUntil(t, c, 8); !slices.Equal(got, []string{"item 7"}) {
		t.Errorf("live for kind hit: %q", got)
	}

	// A cursor resumes under the new filters.
	send(t, c, map[string]any{"type": "subscribe", "filters": map[string]any{"platform": "ios"}, "cursor": 3})
	f := readFrame(t, c)
	if f.Type != "resume" || !slices.Equal(cursorsOf(f.Items), []uint64{4, 8}) || f.Cursor != 8 {
		t.Fatalf("got %s %v cursor %d, want resume [4 8] at cursor 8", f.Type, cursorsOf(f.Items), f.Cursor)
	}
	if f.Filters == nil || f.Filters.Platform != "ios" {
		t.Errorf("filters echoed %+v", f.Filters)
	}
	e.produceItems(mkHit("demo", 9, "web-9", "l", "", ios), mkHit("demo", 10, "web-10", "l", "", web))
	if got := collectUntil(t, c, 10); !slices.Equal(got, []string{"item 9"}) {
		t.Errorf("live for platform ios: %q", got)
	}

	// Back to everything.
	send(t, c, map[string]any{"type": "subscribe", "filters": map[string]any{}})
	if snap := readSnapshot(t, c); len(snap.Items) != 10 || snap.Filters == nil || !reflect.DeepEqual(*snap.Filters, filtersJSON{}) {
		t.Errorf("snapshot without filters: %d items, filters %+v", len(snap.Items), snap.Filters)
	}
}

func TestLiveResumeAcrossRestart(t *testing.T) {
	e := newEnv(t, envOptions{before: func(e *env) { e.produceItems(hitItems("demo", 1, 40)...) }})
	tok := validToken(t, "demo")
	c := e.dial("demo", tok)
	snap := readSnapshot(t, c)
	if got := cursorsOf(snap.Items); len(got) != 40 || got[39] != 40 {
		t.Fatalf("snapshot %v", got)
	}
	e.produceItems(hitItems("demo", 41, 50)...)
	readItemsUntil(t, c, 40, 50)

	// The server stops (the client is told 1001), items arrive while it
	// is down, and a new server recovers them from the topic.
	e.stopRun()
	if _, err := tryReadFrame(c, 10*time.Second); websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after the server stopped the client read %v, want close 1001", err)
	}
	e.http.Close()
	e.produceItems(hitItems("demo", 51, 60)...)
	e.startServer()

	c = e.dialQuery(tok, url.Values{"cursor": {"50"}})
	f := readFrame(t, c)
	want := make([]uint64, 0, 10)
	for cur := uint64(51); cur <= 60; cur++ {
		want = append(want, cur)
	}
	if f.Type != "resume" || !slices.Equal(cursorsOf(f.Items), want) {
		t.Fatalf("got %s %v, want resume %v", f.Type, cursorsOf(f.Items), want)
	}
	if f.Account != "demo" || f.Cursor != 60 || f.Counters == nil || *f.Counters != encodeCounters(counters(60)) {
		t.Errorf("resume account %q cursor %d counters %+v", f.Account, f.Cursor, f.Counters)
	}
	e.produceItems(hitItems("demo", 61, 70)...)
	readItemsUntil(t, c, 60, 70)
}

func TestLiveCursorTooOld(t *testing.T) {
	e := newEnv(t, envOptions{historySize: 120, before: func(e *env) { e.produceItems(hitItems("demo", 1, 250)...) }})
	tok := validToken(t, "demo")
	for _, tt := range []struct {
		cursor string
		reason string
	}{
		{"10", "cursor older than the retained history"},
		{"500", "cursor newer than the newest item"},
	} {
		c := e.dialQuery(tok, url.Values{"cursor": {tt.cursor}})
		f := readFrame(t, c)
		if f.Type != "skipped" || fmt.Sprint(f.After) != tt.cursor || f.Oldest != 131 || f.Reason != tt.reason {
			t.Fatalf("cursor %s: got %+v, want skipped after %s, oldest 131: %s", tt.cursor, f, tt.cursor, tt.reason)
		}
		snap := readSnapshot(t, c)
		if got := cursorsOf(snap.Items); len(got) != 100 || got[0] != 151 || got[99] != 250 {
			t.Fatalf("snapshot after skipped: %v, want 151..250", got)
		}
	}
	// The history holds 131..250: resuming from 130 works.
	c := e.dialQuery(tok, url.Values{"cursor": {"130"}})
	if f := readFrame(t, c); f.Type != "resume" || len(f.Items) != 120 {
		t.Fatalf("cursor 130: %s of %d items, want a resume of 120", f.Type, len(f.Items))
	}
}

// TestLiveSampling runs an account at about 2,000 items/s and checks that
// a client without filters is shown about the sample rate, in whole
// sessions, while stats say what arrives.
func TestLiveSampling(t *testing.T) {
	const (
		sampleRate = 5
		perBatch   = 40
		every      = 20 * time.Millisecond // 40 items / 20 ms = 2,000 items/s
		measure    = 5 * time.Second
	)
	e := newEnv(t, envOptions{sampleRate: sampleRate, statsInterval: 250 * time.Millisecond})
	c := e.dial("busy", validToken(t, "busy"))
	readSnapshot(t, c)

	// Sessions of two items, "s-0" for cursors 1 and 2, and so on.
	session := func(cursor uint64) string { return fmt.Sprintf("s-%d", (cursor-1)/2) }
	ctx, stop := context.WithCancel(context.Background())
	var produced uint64
	var wg sync.WaitGroup
	defer func() {
		stop()
		wg.Wait()
	}()
	wg.Go(func() {
		tick := time.NewTicker(every)
		defer tick.Stop()
		for cursor := uint64(1); ; cursor += perBatch {
			items := make([]*livetabv1.ViewItem, perBatch)
			for i := range items {
				cur := cursor + uint64(i)
				items[i] = mkHit("busy", cur, session(cur), "l", "c", web)
				items[i].ReceivedUs = time.Now().UnixMicro()
			}
			if err := e.tryProduceItems(items...); err != nil {
				t.Errorf("producer: %v", err)
				return
			}
			produced = cursor + perBatch - 1
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	})

	// Warm up until the server sees a busy account.
	var arriving float64
	for deadline := time.Now().Add(30 * time.Second); arriving < 200; {
		f, err := readAnyFrame(c, time.Until(deadline))
		if err != nil {
			t.Fatalf("no stats frame saying the account is busy: %v", err)
		}
		if f.Type == "stats" && f.ArrivingPerS != nil {
			arriving = *f.ArrivingPerS
		}
	}

	// Measure.
	shown := map[string][]uint64{}
	var items int
	var stats []frame
	start := time.Now()
	for time.Since(start) < measure {
		f, err := readAnyFrame(c, 10*time.Second)
		if err != nil {
			t.Fatalf("while measuring: %v", err)
		}
		switch f.Type {
		case "item":
			items++
			shown[f.Item.Session] = append(shown[f.Item.Session], f.Item.Cursor)
		case "stats":
			stats = append(stats, f)
		default:
			t.Fatalf("unexpected %s frame while measuring", f.Type)
		}
	}
	elapsed := time.Since(start)
	stop()
	wg.Wait()

	rate := float64(items) / elapsed.Seconds()
	var arrivingSum float64
	for _, s := range stats {
		arrivingSum += *s.ArrivingPerS
		if s.Sampled == nil || !*s.Sampled {
			t.Errorf("stats frame while sampling says sampled %v", s.Sampled)
		}
	}
	t.Logf("shown %d items in %v (%.1f/s) of about %.0f/s arriving (%d produced), %d sessions",
		items, elapsed.Round(time.Millisecond), rate, arrivingSum/float64(max(1, len(stats))), produced, len(shown))
	// Sessions of two items make the count coarse; twice the rate is far
	// above what sampling allows on average and far below what arrives.
	if rate > 2*sampleRate {
		t.Errorf("client shown %.1f items/s, want at most about %d", rate, sampleRate)
	}
	if items < 5 {
		t.Errorf("client shown %d items in %v: sampling shows next to nothing", items, elapsed)
	}
	// Whole sessions: a session shown in part is one whose two items fell
	// on either side of the measure's edges, or, rarely, of a change of
	// the sample's threshold.
	partial := 0
	for s, cs := range shown {
		if len(cs) == 1 {
			partial++
			t.Logf("session %s shown in part: %v", s, cs)
		}
	}
	if partial > max(2, len(shown)/5) {
		t.Errorf("%d of %d sessions shown in part: sampling is not by session", partial, len(shown))
	}
}

func TestLiveStats(t *testing.T) {
	e := newEnv(t, envOptions{statsInterval: fastStats})
	c := e.dial("demo", validToken(t, "demo"))
	readSnapshot(t, c)
	items := hitItems("demo", 1, 10)
	for _, it := range items {
		it.ReceivedUs = time.Now().UnixMicro()
	}
	e.produceItems(items...)
	readItemsUntil(t, c, 0, 10)
	var st frame
	waitFor(t, 10*time.Second, "a stats frame after the items", func() bool {
		f, err := readAnyFrame(c, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st = f
		return f.Type == "stats" && f.Cursor >= 10 && f.Lag != nil && *f.Lag == 0
	})
	if st.ArrivingPerS == nil || *st.ArrivingPerS <= 0 || st.ShowingPerS == nil || *st.ShowingPerS <= 0 {
		t.Errorf("arriving %v, showing %v: want both positive", st.ArrivingPerS, st.ShowingPerS)
	}
	if st.Sampled == nil || *st.Sampled {
		t.Errorf("sampled %v", st.Sampled)
	}
	if st.DelayMS == nil || *st.DelayMS < 0 || *st.DelayMS > 10_000 {
		t.Errorf("delay_ms %v", st.DelayMS)
	}
	if st.Counters == nil || *st.Counters != encodeCounters(counters(10)) {
		t.Errorf("counters %+v", st.Counters)
	}
}

// expiresAt is when a token signed to expire at exp does: tokens carry
// whole seconds.
func expiresAt(exp time.Time) time.Time { return time.Unix(exp.Unix(), 0) }

func TestLiveTokenExpires(t *testing.T) {
	e := newEnv(t, envOptions{})
	exp := expiresAt(time.Now().Add(2 * time.Second))
	c := e.dial("demo", token(t, "demo", exp))
	readSnapshot(t, c)
	_, err := tryReadFrame(c, 15*time.Second)
	at := time.Now()
	var ce websocket.CloseError
	if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "token expired" {
		t.Fatalf("connection ended with %v, want close 1008 %q", err, "token expired")
	}
	if at.Before(exp) {
		t.Errorf("closed at %v, before the token expired at %v", at, exp)
	}
}

func TestLiveTokenRefresh(t *testing.T) {
	e := newEnv(t, envOptions{statsInterval: 200 * time.Millisecond})
	exp := expiresAt(time.Now().Add(2 * time.Second))
	c := e.dial("demo", token(t, "demo", exp))
	readSnapshot(t, c)
	later := time.Now().Add(time.Hour)
	send(t, c, map[string]string{"type": "token", "token": token(t, "demo", later)})
	if f := readFrame(t, c); f.Type != "token" || f.Expires != expiresAt(later).UTC().Format(time.RFC3339) {
		t.Fatalf("got %+v, want the token acknowledged with its expiry", f)
	}
	// Stats frames keep coming past the first token's expiry.
	for time.Now().Before(exp.Add(1500 * time.Millisecond)) {
		if _, err := readAnyFrame(c, 5*time.Second); err != nil {
			t.Fatalf("after refreshing the token: %v", err)
		}
	}
	e.produceItems(hitItem("demo", 1))
	readItemsUntil(t, c, 0, 1)
}

// TestLiveBadClientMessages: each bad message is answered with an error
// frame naming the problem, the connection stays usable, and repeated
// abuse closes it.
func TestLiveBadClientMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial("demo", validToken(t, "demo"))
	readSnapshot(t, c)
	tests := []struct {
		msg  string
		code string
	}{
		{`not json`, "bad_message"},
		{`{"type":"unsubscribe"}`, "bad_message"},
		{`{"filters":{}}`, "bad_message"},
		{`{"type":"subscribe","cursor":"last"}`, "bad_message"},
		{`{"type":"subscribe","filters":{"kind":["purchase"]}}`, "bad_filter"},
		{`{"type":"subscribe","filters":{"platform":"bsd"}}`, "bad_filter"},
		{`{"type":"subscribe","filters":{"country":"fr"}}`, "bad_filter"},
		{`{"type":"token","token":"garbage"}`, "forbidden"},
		{`{"type":"token","token":"` + validToken(t, "acme") + `"}`, "forbidden"},
	}
	for _, tt := range tests {
		send(t, c, []byte(tt.msg))
		f := readFrame(t, c)
		if f.Type != "error" || f.Code != tt.code || f.Error == "" {
			t.Errorf("%s: got %+v, want an error frame with code %s", tt.msg, f, tt.code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageBinary, []byte(`{"type":"subscribe"}`)); err != nil {
		t.Fatal(err)
	}
	if f := readFrame(t, c); f.Type != "error" || f.Code != "bad_message" {
		t.Errorf("binary message: got %+v", f)
	}
	// Still usable.
	send(t, c, map[string]any{"type": "subscribe"})
	readSnapshot(t, c)

	// Abuse: the 50th error closes the connection.
	errs := len(tests) + 1
	go func() {
		for range 60 {
			if c.Write(ctx, websocket.MessageText, []byte(`nope`)) != nil {
				return
			}
		}
	}()
	for {
		f, err := tryReadFrame(c, 10*time.Second)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too many bad messages" {
				t.Fatalf("after %d errors: %v, want close 1008 %q", errs, err, "too many bad messages")
			}
			break
		}
		if f.Type != "error" {
			t.Fatalf("got %s frame while abusing", f.Type)
		}
		errs++
	}
	if errs != maxStrikes {
		t.Errorf("closed after %d error frames, want %d", errs, maxStrikes)
	}
}

func TestLiveOversizeMessages(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial("demo", validToken(t, "demo"))
	readSnapshot(t, c)
	big := `{"type":"subscribe","filters":{"session":"` + strings.Repeat("x", 5<<10) + `"}}`
	send(t, c, []byte(big))
	if f := readFrame(t, c); f.Type != "error" || f.Code != "too_large" {
		t.Fatalf("5 KiB message: got %+v, want a too_large error", f)
	}
	send(t, c, map[string]any{"type": "subscribe"})
	readSnapshot(t, c)

	// The server may close before it read the whole message: the write's
	// error does not matter.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c.Write(ctx, websocket.MessageText, []byte(strings.Repeat("x", 100<<10)))
	if _, err := tryReadFrame(c, 10*time.Second); websocket.CloseStatus(err) != websocket.StatusMessageTooBig {
		t.Fatalf("100 KiB message: %v, want close 1009", err)
	}
}

func TestLiveRateLimit(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial("demo", validToken(t, "demo"))
	readSnapshot(t, c)
	const sent = 60 // 20 pass at once, a few more as the limit refills
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for range sent {
			if c.Write(ctx, websocket.MessageText, []byte(`{"type":"subscribe"}`)) != nil {
				return
			}
		}
	}()
	var snapshots, limited int
	for snapshots+limited < sent {
		f := readFrame(t, c)
		switch {
		case f.Type == "snapshot":
			snapshots++
		case f.Type == "error" && f.Code == "rate_limited":
			limited++
		default:
			t.Fatalf("got %+v", f)
		}
	}
	t.Logf("%d messages answered, %d rate limited", snapshots, limited)
	if limited == 0 || snapshots < clientBurst {
		t.Errorf("%d answered, %d rate limited: want the burst of %d answered and the rest limited", snapshots, limited, clientBurst)
	}
	// The connection stays open.
	e.produceItems(hitItem("demo", 1))
	readItemsUntil(t, c, 0, 1)
}

func TestLiveOriginChecked(t *testing.T) {
	e := newEnv(t, envOptions{originPatterns: []string{"trusted.example"}})
	tok := validToken(t, "demo")
	own := strings.TrimPrefix(e.http.URL, "http://")
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"http://" + own, true},
		{"https://trusted.example", true},
		{"https://evil.example", false},
		{"http://" + own + ".evil.example", false},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.origin != "" {
			h.Set("Origin", tt.origin)
		}
		c, resp, err := e.tryDial(tok, url.Values{"account": {"demo"}}, h)
		if !tt.ok {
			if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Errorf("origin %q: %v %v, want 403", tt.origin, resp, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("origin %q: %v", tt.origin, err)
			continue
		}
		readSnapshot(t, c)
	}
}

func TestLiveBadQueryIs400(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, q := range []url.Values{{"kind": {"clicks"}}, {"cursor": {"last"}}, {"platform": {"windows"}}} {
		_, resp, err := e.tryDial(validToken(t, "demo"), q, nil)
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Errorf("%v: %v %v, want 400", q, resp, err)
		}
	}
}
