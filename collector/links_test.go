package collector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/topics"
)

type linkAnswer struct {
	Account     string            `json:"account"`
	Slug        string            `json:"slug"`
	Destination string            `json:"destination"`
	IOS         string            `json:"ios"`
	Android     string            `json:"android"`
	DeepLink    string            `json:"deep_link"`
	Campaign    string            `json:"campaign"`
	Tags        map[string]string `json:"tags"`
	UpdatedAt   string            `json:"updated_at"`
}

func TestLinkAdminAuth(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", springLink)
	expired, err := codecs.SignToken(testSecret, codecs.Claims{Account: "acme", Admin: true, Expires: time.Now().Add(-time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := codecs.SignToken([]byte("another secret"), codecs.Claims{Account: "acme", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"destination": "https://example.com/x"}
	tests := []struct {
		name   string
		r      request
		header string // raw Authorization, instead of r.token
		want   int
	}{
		{name: "put without token", r: request{method: "PUT", path: "/v1/links/acme/x", body: body}, want: 401},
		{name: "put with basic auth", r: request{method: "PUT", path: "/v1/links/acme/x", body: body}, header: "Basic YTpi", want: 401},
		{name: "put with garbage token", r: request{method: "PUT", path: "/v1/links/acme/x", body: body, token: "not.a.jwt"}, want: 401},
		{name: "put with expired token", r: request{method: "PUT", path: "/v1/links/acme/x", body: body, token: expired}, want: 401},
		{name: "put with token of another secret", r: request{method: "PUT", path: "/v1/links/acme/x", body: body, token: foreign}, want: 401},
		{name: "put for another account", r: request{method: "PUT", path: "/v1/links/other/x", body: body, token: e.token("acme", true)}, want: 403},
		{name: "put with a non-admin token", r: request{method: "PUT", path: "/v1/links/acme/x", body: body, token: e.token("acme", false)}, want: 403},
		{name: "delete without token", r: request{method: "DELETE", path: "/v1/links/acme/spring"}, want: 401},
		{name: "delete for another account", r: request{method: "DELETE", path: "/v1/links/acme/spring", token: e.token("other", true)}, want: 403},
		{name: "delete with a non-admin token", r: request{method: "DELETE", path: "/v1/links/acme/spring", token: e.token("acme", false)}, want: 403},
		{name: "get without token", r: request{method: "GET", path: "/v1/links/acme/spring"}, want: 401},
		{name: "get for another account", r: request{method: "GET", path: "/v1/links/acme/spring", token: e.token("other", true)}, want: 403},
		{name: "list without token", r: request{method: "GET", path: "/v1/links/acme"}, want: 401},
		{name: "list for another account", r: request{method: "GET", path: "/v1/links/acme", token: e.token("other", false)}, want: 403},
		{name: "get with a read token", r: request{method: "GET", path: "/v1/links/acme/spring", token: e.token("acme", false)}, want: 200},
		{name: "list with a read token", r: request{method: "GET", path: "/v1/links/acme", token: e.token("acme", false)}, want: 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.endOffsets(string(topics.Links))
			r := tt.r
			if tt.header != "" {
				r.header = http.Header{"Authorization": {tt.header}}
			}
			resp, data := e.do(r)
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, data, tt.want)
			}
			if tt.want >= 400 {
				errorReason(t, data)
			}
			if tt.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without WWW-Authenticate: Bearer")
			}
			e.nothingSince(string(topics.Links), before, tt.name)
		})
	}
}

func TestLinkValidation(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := e.token("acme", true)
	tests := []struct {
		name, path  string
		body        any
		contentType string
		want        int
		wantReason  string
	}{
		{name: "missing destination", path: "/v1/links/acme/x", body: map[string]any{"ios": "https://ios.example.com/"}, want: 400, wantReason: "destination is required"},
		{name: "relative destination", path: "/v1/links/acme/x", body: map[string]any{"destination": "/x"}, want: 400, wantReason: "absolute"},
		{name: "ftp android", path: "/v1/links/acme/x", body: map[string]any{"destination": "https://example.com/", "android": "ftp://example.com/a.apk"}, want: 400, wantReason: "android"},
		{name: "unknown field", path: "/v1/links/acme/x", body: map[string]any{"destination": "https://example.com/", "title": "x"}, want: 400, wantReason: `unknown field "title"`},
		{name: "malformed JSON", path: "/v1/links/acme/x", body: `{"destination": }`, want: 400, wantReason: "malformed JSON at line 1"},
		{name: "trailing data", path: "/v1/links/acme/x", body: `{"destination":"https://example.com/"} {}`, want: 400, wantReason: "after the JSON value"},
		{name: "wrong type", path: "/v1/links/acme/x", body: `{"destination":"https://example.com/","tags":["a"]}`, want: 400, wantReason: `field "tags": expected an object`},
		{name: "upper-case slug", path: "/v1/links/acme/Spring", body: map[string]any{"destination": "https://example.com/"}, want: 400, wantReason: "invalid slug"},
		{name: "slug too long", path: "/v1/links/acme/" + strings.Repeat("s", 65), body: map[string]any{"destination": "https://example.com/"}, want: 400, wantReason: "invalid slug"},
		{name: "slug starting with dash", path: "/v1/links/acme/-x", body: map[string]any{"destination": "https://example.com/"}, want: 400, wantReason: "invalid slug"},
		{name: "invalid UTF-8", path: "/v1/links/acme/x", body: "{\"destination\":\"https://example.com/\",\"campaign\":\"sp\xffring\"}", want: 400, wantReason: "campaign: not valid UTF-8"},
		{name: "invalid UTF-8 in a tag", path: "/v1/links/acme/x", body: "{\"destination\":\"https://example.com/\",\"tags\":{\"k\":\"\xff\"}}", want: 400, wantReason: `tags["k"]: not valid UTF-8`},
		{name: "lone surrogate in a tag name", path: "/v1/links/acme/x", body: `{"destination":"https://example.com/","tags":{"\udc00":"v"}}`, want: 400, wantReason: "tags: a name is not valid UTF-8"},
		{name: "android intent uri", path: "/v1/links/acme/x", body: map[string]any{"destination": "https://example.com/", "android": "intent://x#Intent;end"}, want: 400, wantReason: "android: must be an absolute http or https URL, or a market:// URI"},
		{name: "too many tags", path: "/v1/links/acme/x", body: map[string]any{"destination": "https://example.com/", "tags": manyParams(collector.MaxTags + 1)}, want: 400, wantReason: "tags: 33 entries, at most 32"},
		{name: "wrong content type", path: "/v1/links/acme/x", body: `{"destination":"https://example.com/"}`, contentType: "text/plain", want: 415},
		{name: "body too large", path: "/v1/links/acme/x", body: `{"destination":"https://example.com/","campaign":"` + strings.Repeat("c", collector.MaxLinkBody) + `"}`, want: 413},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.endOffsets(string(topics.Links))
			resp, data := e.do(request{method: "PUT", path: tt.path, token: tok, body: tt.body, contentType: tt.contentType})
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, data, tt.want)
			}
			if reason := errorReason(t, data); !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", reason, tt.wantReason)
			}
			e.nothingSince(string(topics.Links), before, tt.name)
		})
	}
	// Accounts are checked too; a token can only be for a valid one.
	resp, data := e.do(request{method: "GET", path: "/v1/links/Bad_Account", token: e.token("Bad_Account", false)})
	if resp.StatusCode != 400 || !strings.Contains(errorReason(t, data), "invalid account") {
		t.Errorf("invalid account: %d %s", resp.StatusCode, data)
	}
	resp, data = e.do(request{method: "POST", path: "/v1/links/acme/x", token: tok})
	if resp.StatusCode != 405 || resp.Header.Get("Allow") == "" {
		t.Errorf("POST on a link: %d %s (Allow %q), want 405 with Allow", resp.StatusCode, data, resp.Header.Get("Allow"))
	}
	errorReason(t, data)
}

// TestLinkReadYourWrites checks that a link can be followed as soon as its
// PUT is answered, and is gone as soon as its DELETE is.
func TestLinkReadYourWrites(t *testing.T) {
	e := startEnv(t, envOptions{})
	tok := e.token("acme", true)
	for i := range 10 {
		slug := fmt.Sprintf("rw-%d", i)
		dest := fmt.Sprintf("https://example.com/%d", i)
		before := e.endOffsets(string(topics.Links))
		resp, data := e.do(request{method: "PUT", path: "/v1/links/acme/" + slug, token: tok, body: map[string]any{"destination": dest, "campaign": "c"}})
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("PUT %s: %d %s", slug, resp.StatusCode, data)
		}
		var got linkAnswer
		if err := json.Unmarshal(data, &got); err != nil {
			t.Fatal(err)
		}
		if got.Account != "acme" || got.Slug != slug || got.Destination != dest || got.Campaign != "c" || got.UpdatedAt != e.now.Format(time.RFC3339Nano) {
			t.Errorf("PUT answered %+v", got)
		}
		msgs := e.since(string(topics.Links), before)
		if len(msgs) != 1 || string(msgs[0].Key) != topics.LinkKey("acme", slug) {
			t.Fatalf("PUT produced %d records to links, want 1 keyed %s", len(msgs), topics.LinkKey("acme", slug))
		}
		if l, err := codecs.Typed[livetabv1.Link](msgs[0].Value); err != nil || l.Destination != dest || l.UpdatedUs != e.now.UnixMicro() {
			t.Errorf("link record %v, %v", l, err)
		}
		// No waiting: the PUT's answer promises the link is live.
		resp, data = e.do(request{method: "GET", path: "/l/acme/" + slug})
		if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), dest+"?click_id=") {
			t.Fatalf("follow %s right after PUT: %d %s Location %q", slug, resp.StatusCode, data, resp.Header.Get("Location"))
		}
	}

	// Replacing a link takes effect at once, too.
	e.putLink("acme", "rw-0", map[string]any{"destination": "https://example.com/new"})
	resp, _ := e.do(request{method: "GET", path: "/l/acme/rw-0"})
	if !strings.HasPrefix(resp.Header.Get("Location"), "https://example.com/new?click_id=") {
		t.Errorf("after replacing: Location %q", resp.Header.Get("Location"))
	}

	// GET one, and the list, which holds only this account's links.
	e.putLink("other", "rw-0", map[string]any{"destination": "https://example.com/other"})
	resp, data := e.do(request{method: "GET", path: "/v1/links/acme/rw-0", token: tok})
	var one linkAnswer
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &one) != nil || one.Destination != "https://example.com/new" {
		t.Errorf("GET link: %d %s", resp.StatusCode, data)
	}
	resp, data = e.do(request{method: "GET", path: "/v1/links/acme", token: tok})
	var list struct {
		Links []linkAnswer `json:"links"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal(data, &list) != nil {
		t.Fatalf("list: %d %s", resp.StatusCode, data)
	}
	var slugs []string
	for _, l := range list.Links {
		if l.Account != "acme" {
			t.Errorf("list of acme holds %+v", l)
		}
		slugs = append(slugs, l.Slug)
	}
	if want := []string{"rw-0", "rw-1", "rw-2", "rw-3", "rw-4", "rw-5", "rw-6", "rw-7", "rw-8", "rw-9"}; !slices.Equal(slugs, want) {
		t.Errorf("list %v, want %v", slugs, want)
	}
	resp, data = e.do(request{method: "GET", path: "/v1/links/nobody", token: e.token("nobody", false)})
	if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(data)) != `{"links":[]}` {
		t.Errorf("empty list: %d %s", resp.StatusCode, data)
	}

	// DELETE writes a tombstone; the link is gone once it is answered.
	before := e.endOffsets(string(topics.Links))
	resp, data = e.do(request{method: "DELETE", path: "/v1/links/acme/rw-1", token: tok})
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, data)
	}
	if msgs := e.since(string(topics.Links), before); len(msgs) != 1 || msgs[0].Value != nil {
		t.Errorf("DELETE produced %d records, want one tombstone", len(msgs))
	}
	hitsBefore := e.endOffsets(string(topics.Hits))
	resp, _ = e.do(request{method: "GET", path: "/l/acme/rw-1"})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("follow after DELETE: %d, want 404", resp.StatusCode)
	}
	e.nothingSince(string(topics.Hits), hitsBefore, "deleted link")
	resp, _ = e.do(request{method: "GET", path: "/v1/links/acme/rw-1", token: tok})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET after DELETE: %d, want 404", resp.StatusCode)
	}
	before = e.endOffsets(string(topics.Links))
	resp, data = e.do(request{method: "DELETE", path: "/v1/links/acme/rw-1", token: tok})
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("second DELETE: %d %s, want 404", resp.StatusCode, data)
	}
	e.nothingSince(string(topics.Links), before, "DELETE of a missing link")
	// The other account's link of the same slug is untouched.
	if resp, _ := e.do(request{method: "GET", path: "/l/other/rw-0"}); resp.StatusCode != http.StatusFound {
		t.Errorf("other account's link: %d", resp.StatusCode)
	}
}

// TestNotReady checks that a collector whose links view is not running
// refuses clicks, link writes and events (whose account it cannot check)
// with 503, writes nothing, and closes cleanly without ever running.
func TestNotReady(t *testing.T) {
	e := startEnv(t, envOptions{noRun: true})
	hitsBefore, linksBefore, eventsBefore := e.endOffsets(string(topics.Hits)), e.endOffsets(string(topics.Links)), e.endOffsets(string(topics.Events))
	for _, r := range []request{
		{method: "GET", path: "/l/acme/spring"},
		{method: "PUT", path: "/v1/links/acme/spring", token: e.token("acme", true), body: map[string]any{"destination": "https://example.com/"}},
		{method: "GET", path: "/v1/links/acme", token: e.token("acme", true)},
		{method: "POST", path: "/v1/events", body: event("nr1", "s", "open")},
	} {
		resp, data := e.do(r)
		if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
			t.Errorf("%s %s before the view runs: %d %s, want 503 with Retry-After", r.method, r.path, resp.StatusCode, data)
		}
		errorReason(t, data)
	}
	// An event that is bad in itself is answered as such: its account is
	// never looked up.
	resp, data := e.do(request{method: "POST", path: "/v1/events", body: map[string]any{"id": "nr2", "account": "acme", "name": "open"}})
	if resp.StatusCode != http.StatusBadRequest {
		t.Errorf("bad event before the view runs: %d %s, want 400", resp.StatusCode, data)
	}
	e.nothingSince(string(topics.Hits), hitsBefore, "not ready")
	e.nothingSince(string(topics.Links), linksBefore, "not ready")
	e.nothingSince(string(topics.Events), eventsBefore, "not ready")
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	if err := e.c.WaitReady(ctx); err == nil {
		t.Error("WaitReady succeeded without Run")
	}
}

// TestLinkWriteWaitsForView holds the collector's links view back and
// checks that a PUT is not answered 200 before the view applied it: it
// answers 503 once the bounded wait is over, and the link becomes
// followable when the view catches up.
func TestLinkWriteWaitsForView(t *testing.T) {
	var stall atomic.Bool
	release := make(chan struct{})
	e := startEnv(t, envOptions{beforeRun: func(c *collector.Collector) {
		collector.HoldLinks(c, func() {
			if stall.Load() {
				<-release
			}
		}, 300*time.Millisecond)
	}})
	var once sync.Once
	open := func() { once.Do(func() { close(release) }) }
	t.Cleanup(open) // before the view is stopped

	e.putLink("acme", "before", map[string]any{"destination": "https://example.com/before"})
	stall.Store(true)
	before := e.endOffsets(string(topics.Links))
	start := time.Now()
	resp, data := e.do(request{method: "PUT", path: "/v1/links/acme/held", token: e.token("acme", true), body: map[string]any{"destination": "https://example.com/held"}})
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(errorReason(t, data), "not visible yet") {
		t.Fatalf("PUT while the view is held: %d %s, want 503", resp.StatusCode, data)
	}
	if waited := time.Since(start); waited < 300*time.Millisecond {
		t.Errorf("answered after %v, before the visibility wait was over", waited)
	}
	if n := len(e.since(string(topics.Links), before)); n != 1 {
		t.Fatalf("%d link records written, want 1 (the write itself succeeded)", n)
	}
	if resp, _ := e.do(request{method: "GET", path: "/l/acme/held"}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("held link followable before the view applied it: %d", resp.StatusCode)
	}

	open()
	waitFor(t, 10*time.Second, "the held link to become followable", func() bool {
		resp, _ := e.do(request{method: "GET", path: "/l/acme/held"})
		return resp.StatusCode == http.StatusFound
	})
	e.putLink("acme", "after", map[string]any{"destination": "https://example.com/after"})
}

// TestLinksUndecodableRecord writes a record to the links topic that is not
// a Link: the view skips it (the key reads as absent) and keeps applying
// what follows.
func TestLinksUndecodableRecord(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "broken", springLink)
	p, err := e.k.NewSyncProducer("test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for _, slug := range []string{"broken", "garbage"} {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(topics.Links), Key: sarama.StringEncoder(topics.LinkKey("acme", slug)),
			Value: sarama.ByteEncoder([]byte{0xff, 0xff, 0xff})}); err != nil {
			t.Fatal(err)
		}
	}
	// The same account's keys share a partition, so once this write is
	// visible, the garbage before it has been applied too.
	e.putLink("acme", "good", springLink)
	for slug, want := range map[string]int{"broken": 404, "garbage": 404, "good": 302} {
		if resp, body := e.do(request{method: "GET", path: "/l/acme/" + slug}); resp.StatusCode != want {
			t.Errorf("GET /l/acme/%s = %d %s, want %d", slug, resp.StatusCode, body, want)
		}
	}
	resp, body := e.do(request{method: "GET", path: "/v1/links/acme", token: e.token("acme", false)})
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"slug":"good"`) || strings.Contains(string(body), "garbage") {
		t.Errorf("list after garbage: %d %s", resp.StatusCode, body)
	}
}

// TestLinksRecoveredOnStart starts a second collector on a topic that
// already holds links: once WaitReady returns, it serves them.
func TestLinksRecoveredOnStart(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "kept", springLink)
	e.putLink("acme", "gone", springLink)
	if resp, body := e.do(request{method: "DELETE", path: "/v1/links/acme/gone", token: e.token("acme", true)}); resp.StatusCode != 204 {
		t.Fatalf("DELETE: %d %s", resp.StatusCode, body)
	}

	c2, err := collector.New(collector.Options{Kafka: e.k, Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c2.Close() })
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c2.Run(ctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("second collector: %v", err)
		}
	})
	waitCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := c2.WaitReady(waitCtx); err != nil {
		t.Fatal(err)
	}
	if err := c2.Run(ctx); err == nil {
		t.Error("a second Run must fail")
	}
	mux := http.NewServeMux()
	c2.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	for slug, want := range map[string]int{"kept": 302, "gone": 404} {
		if resp, body := e.do(request{method: "GET", path: "/l/acme/" + slug}); resp.StatusCode != want {
			t.Errorf("second collector: GET /l/acme/%s = %d %s, want %d", slug, resp.StatusCode, body, want)
		}
	}
}
