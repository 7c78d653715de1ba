package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

const sec = int64(time.Second / time.Microsecond)

// deeplinkAnswer is one answer of GET /v1/deeplink as a client got it.
type deeplinkAnswer struct {
	status int
	header http.Header
	body   string
	err    error     // the request failed, e.g. its context was cancelled
	at     time.Time // when the whole answer was read
}

// deeplink GETs /v1/deeplink?query with a bearer token. It reports
// failures in the answer, not through the test, so that it may run in a
// goroutine.
func (e *env) deeplink(ctx context.Context, query, tok string) deeplinkAnswer {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.http.URL+"/v1/deeplink?"+query, nil)
	if err != nil {
		return deeplinkAnswer{err: err}
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return deeplinkAnswer{err: err, at: time.Now()}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return deeplinkAnswer{status: resp.StatusCode, header: resp.Header, body: string(b), err: err, at: time.Now()}
}

// getDeeplink is deeplink for a test's own goroutine.
func (e *env) getDeeplink(query, tok string) deeplinkAnswer {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := e.deeplink(ctx, query, tok)
	if a.err != nil {
		e.t.Fatalf("GET /v1/deeplink?%s: %v", query, a.err)
	}
	return a
}

// startDeeplink sends a request in the background; its answer arrives on
// the channel.
func (e *env) startDeeplink(ctx context.Context, query, tok string) <-chan deeplinkAnswer {
	ch := make(chan deeplinkAnswer, 1)
	go func() { ch <- e.deeplink(ctx, query, tok) }()
	return ch
}

// await returns the answer of a request started with startDeeplink.
func await(t testing.TB, ch <-chan deeplinkAnswer, timeout time.Duration) deeplinkAnswer {
	t.Helper()
	select {
	case a := <-ch:
		return a
	case <-time.After(timeout):
		t.Fatalf("no deep-link answer within %v", timeout)
		return deeplinkAnswer{}
	}
}

// waitForWaiters waits until n deep-link requests are waiting.
func (e *env) waitForWaiters(n int) {
	e.t.Helper()
	waitFor(e.t, 10*time.Second, fmt.Sprintf("%d deep-link request(s) waiting", n), func() bool { return e.srv.waiters.len() == n })
}

// converted returns the timelines of app and web sessions paired by conv,
// as the sessions processor stores them.
func converted(conv *livetabv1.Conversion) (app, web *livetabv1.Timeline) {
	a, h := conv.GetAppSession(), conv.GetHitSession()
	app = &livetabv1.Timeline{Session: a, Account: conv.GetAccount(), PairedSession: h, Conversion: conv,
		Entries: []*livetabv1.TimelineEntry{eventEntry(conv.GetAccount(), a, conv.GetEventId(), "install", conv.GetEventTimeUs())}}
	web = &livetabv1.Timeline{Session: h, Account: conv.GetAccount(), PairedSession: a, Conversion: conv,
		Entries: []*livetabv1.TimelineEntry{hitEntry(conv.GetAccount(), h, conv.GetHitId(), conv.GetHitTimeUs())}}
	return app, web
}

func conversion(account, app, web string) *livetabv1.Conversion {
	return &livetabv1.Conversion{Id: "conv-" + app, Account: account, HitSession: web, AppSession: app,
		HitId: "hit-" + web, EventId: "install-" + app, Method: livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT,
		TimeUs: t0 + 6*sec, HitTimeUs: t0, EventTimeUs: t0 + 5*sec, ReceivedUs: t0 + 5*sec + 250, WindowUs: 2 * 3600 * sec,
		Candidates: 3, Link: "spring", Campaign: "summer", DeepLink: "app://promo/42"}
}

func unconverted(account, session string) *livetabv1.Timeline {
	return &livetabv1.Timeline{Session: session, Account: account,
		Entries: []*livetabv1.TimelineEntry{eventEntry(account, session, "install-"+session, "install", t0)}}
}

// notFound is the body of a deep-link 404.
func notFound(reason string) string {
	return `{"error":"no conversion for this session","reason":"` + reason + `"}` + "\n"
}

func TestDeeplink(t *testing.T) {
	e := newEnv(t, envOptions{})
	app1, web1 := converted(conversion("demo", "app-1", "web-1"))
	// A click-id conversion of a link without deep link.
	plain := conversion("demo", "app-2", "web-2")
	plain.Method, plain.DeepLink, plain.Campaign, plain.ClickId = livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, "", "", "k2"
	app2, web2 := converted(plain)
	acmeApp, acmeWeb := converted(conversion("acme", "acme-app", "acme-web"))
	e.produceTimelines(app1, web1, app2, web2, unconverted("demo", "app-3"), acmeApp, acmeWeb)
	demo, acme := validToken(t, "demo"), validToken(t, "acme")
	waitFor(t, 10*time.Second, "the sessions view to hold every session", func() bool {
		for _, s := range []string{"app-1", "web-1", "app-2", "web-2", "app-3"} {
			if e.getJSON("/v1/timeline?session="+s, demo, &timelineJSON{}) != http.StatusOK {
				return false
			}
		}
		return e.getJSON("/v1/timeline?session=acme-app", acme, &timelineJSON{}) == http.StatusOK
	})

	at := timeJSON(t0 + 6*sec)
	tests := []struct {
		name, query, token string
		status             int
		body               string // exact, when set
		errorHas           string // in the JSON error, when body is unset
	}{
		{"converted app session", "account=demo&session=app-1", demo, http.StatusOK,
			`{"account":"demo","session":"app-1","deep_link":"app://promo/42","link":"spring","campaign":"summer",` +
				`"method":"fingerprint","hit_session":"web-1","converted_at":"` + at + `"}` + "\n", ""},
		{"account from the token, no deep link", "session=app-2", demo, http.StatusOK,
			`{"account":"demo","session":"app-2","deep_link":"","link":"spring","campaign":"",` +
				`"method":"click_id","hit_session":"web-2","converted_at":"` + at + `"}` + "\n", ""},
		{"converted, waiting not needed", "session=app-1&wait=10s", demo, http.StatusOK, "", ""},
		{"not converted", "session=app-3", demo, http.StatusNotFound, notFound(reasonNotConverted), ""},
		{"unknown session", "session=nope", demo, http.StatusNotFound, notFound(reasonUnknown), ""},
		{"another account's session", "session=acme-app", demo, http.StatusNotFound, notFound(reasonUnknown), ""},
		{"web session of a conversion", "session=web-1&wait=10s", demo, http.StatusNotFound, notFound(reasonHitSide), ""},
		{"acme's own session", "account=acme&session=acme-app", acme, http.StatusOK, "", ""},
		{"token of another account", "account=acme&session=acme-app", demo, http.StatusForbidden, "", "account"},
		{"no token", "account=demo&session=app-1", "", http.StatusUnauthorized, "", "token"},
		{"bad token", "account=demo&session=app-1", "not-a-jwt", http.StatusUnauthorized, "", "token"},
		{"no session", "account=demo", demo, http.StatusBadRequest, "", "session"},
		{"wait without unit or number", "session=app-3&wait=soon", demo, http.StatusBadRequest, "", "wait parameter"},
		{"wait too long", "session=app-3&wait=11s", demo, http.StatusBadRequest, "", "wait parameter"},
		{"wait too long in seconds", "session=app-3&wait=10.5", demo, http.StatusBadRequest, "", "wait parameter"},
		{"negative wait", "session=app-3&wait=-1s", demo, http.StatusBadRequest, "", "wait parameter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.getDeeplink(tt.query, tt.token)
			if a.status != tt.status {
				t.Fatalf("status %d %s, want %d", a.status, a.body, tt.status)
			}
			if ct := a.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("content type %q", ct)
			}
			if tt.body != "" && a.body != tt.body {
				t.Errorf("body\n%s\nwant\n%s", a.body, tt.body)
			}
			var er errorJSON
			if err := json.Unmarshal([]byte(a.body), &er); err != nil {
				t.Fatalf("body %q: %v", a.body, err)
			}
			if tt.status != http.StatusOK && (er.Error == "" || !strings.Contains(er.Error, tt.errorHas)) {
				t.Errorf("error %q, want one naming %q", er.Error, tt.errorHas)
			}
			if tt.status == http.StatusOK {
				var got deeplinkJSON
				if err := json.Unmarshal([]byte(a.body), &got); err != nil || got.Session == "" || got.HitSession == "" {
					t.Errorf("answer %s: %v", a.body, err)
				}
			}
		})
	}
}

func TestDeeplinkWait(t *testing.T) {
	e := newEnv(t, envOptions{before: func(e *env) { e.produceTimelines(unconverted("acme", "acme-app")) }})
	demo := validToken(t, "demo")

	t.Run("conversion lands", func(t *testing.T) {
		// The app asks before its install event reached the sessions
		// table.
		answers := e.startDeeplink(context.Background(), "account=demo&session=app-w&wait=10s", demo)
		e.waitForWaiters(1)

		// A change that does not convert the session wakes the request,
		// which keeps waiting.
		e.produceTimelines(unconverted("demo", "app-w"))
		waitFor(t, 10*time.Second, "the sessions view to hold app-w", func() bool {
			return e.getJSON("/v1/timeline?session=app-w", demo, &timelineJSON{}) == http.StatusOK
		})
		select {
		case a := <-answers:
			t.Fatalf("answered %d %s before the conversion", a.status, a.body)
		default:
		}
		if n := e.srv.waiters.len(); n != 1 {
			t.Fatalf("%d waiting after an update without conversion, want 1", n)
		}

		app, web := converted(conversion("demo", "app-w", "web-w"))
		start := time.Now()
		e.produceTimelines(app, web)
		a := await(t, answers, 15*time.Second)
		took := a.at.Sub(start)
		t.Logf("conversion produced → deep link answered in %v", took)
		if a.err != nil || a.status != http.StatusOK {
			t.Fatalf("answer %d %s %v, want 200", a.status, a.body, a.err)
		}
		var got deeplinkJSON
		if err := json.Unmarshal([]byte(a.body), &got); err != nil {
			t.Fatal(err)
		}
		want := deeplinkJSON{Account: "demo", Session: "app-w", DeepLink: "app://promo/42", Link: "spring",
			Campaign: "summer", Method: "fingerprint", HitSession: "web-w", ConvertedAt: timeJSON(t0 + 6*sec)}
		if got != want {
			t.Errorf("answer %+v, want %+v", got, want)
		}
		// Woken by the record, not by the end of the wait.
		if took > 5*time.Second {
			t.Errorf("answered %v after the conversion landed, want well within the 10s wait", took)
		}
		e.waitForWaiters(0)
	})

	t.Run("wait expires", func(t *testing.T) {
		e.produceTimelines(unconverted("demo", "app-x"))
		waitFor(t, 10*time.Second, "the sessions view to hold app-x", func() bool {
			return e.getJSON("/v1/timeline?session=app-x", demo, &timelineJSON{}) == http.StatusOK
		})
		tests := []struct {
			name, query, body string
		}{
			{"not converted, Go duration", "session=app-x&wait=200ms", notFound("waited 200ms: " + reasonNotConverted)},
			{"unknown, plain seconds", "session=nope&wait=0.2", notFound("waited 200ms: " + reasonUnknown)},
			// Exactly as an unknown session: nothing tells them apart.
			{"another account's session", "session=acme-app&wait=0.2", notFound("waited 200ms: " + reasonUnknown)},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				start := time.Now()
				a := e.getDeeplink(tt.query, demo)
				if took := time.Since(start); took < 200*time.Millisecond {
					t.Errorf("answered after %v, before the wait ended", took)
				}
				if a.status != http.StatusNotFound || a.body != tt.body {
					t.Errorf("answer %d %s, want 404 %s", a.status, a.body, tt.body)
				}
			})
		}
		e.waitForWaiters(0)
	})

	t.Run("client leaves", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		answers := e.startDeeplink(ctx, "session=app-gone&wait=10s", demo)
		e.waitForWaiters(1)
		cancel()
		if a := await(t, answers, 10*time.Second); !errors.Is(a.err, context.Canceled) {
			t.Fatalf("cancelled request ended with %d %v", a.status, a.err)
		}
		// Well before the 10 s wait ends.
		waitFor(t, 5*time.Second, "the waiter of the gone client to be freed", func() bool { return e.srv.waiters.len() == 0 })
	})
}

func TestDeeplinkWaitersBound(t *testing.T) {
	e := newEnv(t, envOptions{maxWaiters: 1})
	app, web := converted(conversion("demo", "app-1", "web-1"))
	e.produceTimelines(app, web)
	demo := validToken(t, "demo")
	waitFor(t, 10*time.Second, "the sessions view to hold app-1", func() bool {
		return e.getDeeplink("session=app-1", demo).status == http.StatusOK
	})

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := e.startDeeplink(ctx, "session=app-2&wait=10s", demo)
	e.waitForWaiters(1)

	a := e.getDeeplink("session=app-3&wait=1s", demo)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" || !strings.Contains(a.body, "waiting") {
		t.Errorf("beyond the bound: %d %v %s, want 503 with Retry-After", a.status, a.header, a.body)
	}
	// Requests that need no wait are still answered.
	if a := e.getDeeplink("session=app-1&wait=1s", demo); a.status != http.StatusOK {
		t.Errorf("converted session while the waiters are full: %d %s", a.status, a.body)
	}

	cancel()
	await(t, first, 10*time.Second)
	e.waitForWaiters(0)
	if a := e.getDeeplink("session=app-3&wait=50ms", demo); a.status != http.StatusNotFound {
		t.Errorf("after a waiter left: %d %s, want the 404 of a wait that ended", a.status, a.body)
	}
}

func TestDeeplinkShutdownWakesWaiters(t *testing.T) {
	e := newEnv(t, envOptions{})
	answers := e.startDeeplink(context.Background(), "session=app-1&wait=10s", validToken(t, "demo"))
	e.waitForWaiters(1)
	start := time.Now()
	e.stopRun()
	a := await(t, answers, 10*time.Second)
	if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") == "" {
		t.Errorf("waiting request at shutdown: %d %s, want 503 with Retry-After", a.status, a.body)
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("answered %v after shutdown began: it waited out its wait", took)
	}
	if e.srv.waiters.len() != 0 {
		t.Errorf("%d waiters left after shutdown", e.srv.waiters.len())
	}
}

func TestParseWait(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"", 0, false},
		{"0", 0, false},
		{"5", 5 * time.Second, false},
		{"0.5", 500 * time.Millisecond, false},
		{"10", 10 * time.Second, false},
		{"5s", 5 * time.Second, false},
		{"1500ms", 1500 * time.Millisecond, false},
		{"10s", 10 * time.Second, false},
		{"0s", 0, false},
		{"10.001", 0, true},
		{"11s", 0, true},
		{"1m", 0, true},
		{"-1s", 0, true},
		{"-1", 0, true},
		{"soon", 0, true},
		{"1e1", 0, true},
		{"0x1p3", 0, true},
		{"NaN", 0, true},
		{"Inf", 0, true},
		{"1..2", 0, true},
		{".", 0, true},
		{"5 s", 0, true},
	}
	for _, tt := range tests {
		got, err := parseWait(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseWait(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
		if err != nil && !strings.HasPrefix(err.Error(), "wait parameter") {
			t.Errorf("parseWait(%q): error %q does not name the parameter", tt.in, err)
		}
	}
}

func TestWaiters(t *testing.T) {
	ws := newWaiters(3)
	a1, err := ws.add("a")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := ws.add("a")
	b, _ := ws.add("b")
	if _, err := ws.add("c"); !errors.Is(err, errTooManyWaiters) {
		t.Fatalf("a 4th waiter of 3: %v, want errTooManyWaiters", err)
	}
	woken := func(w *waiter) bool {
		select {
		case <-w.wake:
			return true
		default:
			return false
		}
	}

	ws.notify("a")
	ws.notify("a") // coalesced with the pending wake-up
	if got := []bool{woken(a1), woken(a1), woken(a2), woken(b)}; !slices.Equal(got, []bool{true, false, true, false}) {
		t.Errorf("woken a1, a1 again, a2, b = %v; want one wake-up for each of a's waiters only", got)
	}

	ws.remove(a1)
	ws.remove(a1) // twice is harmless
	if ws.len() != 2 {
		t.Fatalf("len %d after removing one of 3", ws.len())
	}
	c, err := ws.add("c")
	if err != nil {
		t.Fatalf("a waiter after one left: %v", err)
	}
	ws.notify("a")
	if woken(a1) {
		t.Error("a removed waiter was woken")
	}

	ws.close()
	if !woken(a2) || !woken(b) || !woken(c) {
		t.Error("close left a waiter asleep")
	}
	if _, err := ws.add("d"); !errors.Is(err, errWaitersClosed) {
		t.Errorf("add after close: %v, want errWaitersClosed", err)
	}
	for _, w := range []*waiter{a2, b, c} {
		ws.remove(w)
	}
	if ws.len() != 0 || len(ws.by) != 0 {
		t.Errorf("%d waiters and %d sessions left", ws.len(), len(ws.by))
	}
}

// BenchmarkDeeplinkWake measures how long a waiting deep-link request
// takes to answer once its conversion is produced: produce, broker, the
// sessions view's fetch and callback, the wake-up, the read and the HTTP
// answer. ns/op is its mean; p50-ms, p99-ms and max-ms its spread.
func BenchmarkDeeplinkWake(b *testing.B) {
	e := newEnv(b, envOptions{})
	tok := validToken(b, "demo")
	// wake makes one request wait for session, produces its conversion and
	// returns how long the answer took from the produce on.
	wake := func(session string) time.Duration {
		answers := e.startDeeplink(context.Background(), "session="+session+"&wait=10s", tok)
		e.waitForWaiters(1)
		app, web := converted(conversion("demo", session, "web-of-"+session))
		b.StartTimer()
		start := time.Now()
		e.produceTimelines(app, web)
		a := await(b, answers, 15*time.Second)
		b.StopTimer()
		if a.status != http.StatusOK {
			b.Fatalf("answer %d %s %v", a.status, a.body, a.err)
		}
		e.waitForWaiters(0)
		return a.at.Sub(start)
	}
	// The first produce after start pays for connections and metadata
	// (tens of ms); steady state is what the benchmark is about.
	b.StopTimer()
	wake("bench-warm-up")
	b.ResetTimer()
	took := make([]time.Duration, 0, b.N)
	for i := range b.N {
		took = append(took, wake(fmt.Sprintf("bench-app-%d", i)))
	}
	slices.Sort(took)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	b.ReportMetric(ms(took[len(took)/2]), "p50-ms")
	b.ReportMetric(ms(took[len(took)*99/100]), "p99-ms")
	b.ReportMetric(ms(took[len(took)-1]), "max-ms")
}
