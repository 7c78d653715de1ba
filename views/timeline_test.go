package views

import (
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

func hitEntry(account, session, id string, us int64) *livetabv1.TimelineEntry {
	return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{Hit: &livetabv1.Hit{
		Id: id, Account: account, Session: session, ReceivedUs: us, Link: "spring", ClickId: "click-1"}}}
}

func eventEntry(account, session, id, name string, us int64) *livetabv1.TimelineEntry {
	return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: &livetabv1.Event{
		Id: id, Account: account, Session: session, Name: name, TimeUs: us, ReceivedUs: us + 500}}}
}

func TestTimeline(t *testing.T) {
	const sec = int64(time.Second / time.Microsecond)
	conv := &livetabv1.Conversion{Id: "conv-1", Account: "demo", HitSession: "web-1", AppSession: "app-1",
		HitId: "hit-1", EventId: "install-1", Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, TimeUs: t0 + 6*sec,
		HitTimeUs: t0, EventTimeUs: t0 + 5*sec, ReceivedUs: t0 + 5*sec + 500, WindowUs: 24 * 3600 * sec,
		Link: "spring", Campaign: "summer", DeepLink: "app://promo/42"}
	e := newEnv(t, envOptions{})
	e.produceTimelines(
		&livetabv1.Timeline{Session: "web-1", Account: "demo", PairedSession: "app-1", Conversion: conv,
			Entries: []*livetabv1.TimelineEntry{hitEntry("demo", "web-1", "hit-1", t0), hitEntry("demo", "web-1", "hit-2", t0+2*sec)}},
		&livetabv1.Timeline{Session: "app-1", Account: "demo", PairedSession: "web-1", Conversion: conv,
			Entries: []*livetabv1.TimelineEntry{eventEntry("demo", "app-1", "install-1", "install", t0+5*sec), eventEntry("demo", "app-1", "open-1", "open", t0+9*sec)}},
		// Another account's session, and a demo session that claims it as
		// its pair: neither may show acme's data to demo.
		&livetabv1.Timeline{Session: "acme-1", Account: "acme",
			Entries: []*livetabv1.TimelineEntry{hitEntry("acme", "acme-1", "acme-hit", t0+sec)}},
		&livetabv1.Timeline{Session: "web-2", Account: "demo", PairedSession: "acme-1",
			Entries: []*livetabv1.TimelineEntry{hitEntry("demo", "web-2", "hit-3", t0+3*sec)}},
	)
	demo := validToken(t, "demo")
	var got timelineJSON
	waitFor(t, 10*time.Second, "the sessions view to hold web-2", func() bool {
		return e.getJSON("/v1/timeline?session=web-2", demo, &timelineJSON{}) == http.StatusOK
	})

	type entry struct{ session, kind, id string }
	ids := func(tl timelineJSON) []entry {
		var out []entry
		for _, en := range tl.Entries {
			switch {
			case en.Hit != nil:
				out = append(out, entry{en.Session, en.Kind, en.Hit.ID})
			case en.Event != nil:
				out = append(out, entry{en.Session, en.Kind, en.Event.ID})
			default:
				out = append(out, entry{en.Session, en.Kind, ""})
			}
		}
		return out
	}
	merged := []entry{
		{"app-1", "event", "open-1"}, {"app-1", "event", "install-1"},
		{"web-1", "hit", "hit-2"}, {"web-1", "hit", "hit-1"},
	}
	tests := []struct {
		session, paired string
	}{
		{"app-1", "web-1"},
		{"web-1", "app-1"},
	}
	for _, tt := range tests {
		got = timelineJSON{}
		if status := e.getJSON("/v1/timeline?account=demo&session="+tt.session, demo, &got); status != http.StatusOK {
			t.Fatalf("%s: status %d", tt.session, status)
		}
		if got.Account != "demo" || got.Session != tt.session || got.PairedSession != tt.paired {
			t.Errorf("%s: answered %q/%q paired with %q", tt.session, got.Account, got.Session, got.PairedSession)
		}
		wantConv := conversionJSON{ID: "conv-1", HitSession: "web-1", AppSession: "app-1", HitID: "hit-1", EventID: "install-1",
			Method: "click_id", Time: timeJSON(t0 + 6*sec), Link: "spring", Campaign: "summer", DeepLink: "app://promo/42",
			HitTime: timeJSON(t0), EventTime: timeJSON(t0 + 5*sec), Window: "24h0m0s", HitToInstall: "5.0005s"}
		if got.Conversion == nil || *got.Conversion != wantConv {
			t.Errorf("%s: conversion %+v, want %+v", tt.session, got.Conversion, wantConv)
		}
		if g := ids(got); !slices.Equal(g, merged) {
			t.Errorf("%s: entries %v, want newest first %v", tt.session, g, merged)
		}
	}
	if en := got.Entries[0]; en.Time != timeJSON(t0+9*sec) {
		t.Errorf("entry time %q, want the event's time", en.Time)
	}

	got = timelineJSON{}
	e.getJSON("/v1/timeline?session=web-2", demo, &got)
	if got.PairedSession != "" || len(got.Entries) != 1 || got.Entries[0].Hit.ID != "hit-3" {
		t.Errorf("web-2 paired with another account's session: %+v", got)
	}

	notFound := []struct{ name, path string }{
		{"unknown session", "/v1/timeline?session=nope"},
		{"another account's session", "/v1/timeline?session=acme-1"},
	}
	for _, nf := range notFound {
		var er errorJSON
		if status := e.getJSON(nf.path, demo, &er); status != http.StatusNotFound || er.Error == "" {
			t.Errorf("%s: %d %+v, want 404", nf.name, status, er)
		}
	}
	if status := e.getJSON("/v1/timeline?session=acme-1", validToken(t, "acme"), &timelineJSON{}); status != http.StatusOK {
		t.Errorf("acme's own session: %d, want 200", status)
	}
	if status := e.getJSON("/v1/timeline", demo, &errorJSON{}); status != http.StatusBadRequest {
		t.Errorf("no session: %d, want 400", status)
	}
}

// TestTimelineAcrossChunks: a session's timeline is its value and its
// sealed chunks, each stored under its own key of the sessions table; the
// timeline API reads them all, for the session and for its pair.
func TestTimelineAcrossChunks(t *testing.T) {
	const sec = int64(time.Second / time.Microsecond)
	conv := &livetabv1.Conversion{Id: "conv-9", Account: "demo", HitSession: "web-9", AppSession: "app-9",
		Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, TimeUs: t0 + 6*sec, DeepLink: "app://promo/9"}
	chunk := func(session string, entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
		return &livetabv1.Timeline{Session: session, Account: "demo", Entries: entries}
	}
	values := map[string]proto.Message{
		sessions.ChunkKey("web-9", 0): chunk("web-9", hitEntry("demo", "web-9", "h1", t0), hitEntry("demo", "web-9", "h2", t0+sec)),
		sessions.ChunkKey("web-9", 1): chunk("web-9", hitEntry("demo", "web-9", "h3", t0+3*sec), hitEntry("demo", "web-9", "h4", t0+4*sec)),
		// The open chunk holds a late hit, older than every sealed one, and
		// a redelivered one.
		"web-9": &livetabv1.Timeline{Session: "web-9", Account: "demo", PairedSession: "app-9", Conversion: conv, Chunks: 2,
			Entries: []*livetabv1.TimelineEntry{hitEntry("demo", "web-9", "h0", t0-sec), hitEntry("demo", "web-9", "h3", t0+3*sec)}},
		sessions.ChunkKey("app-9", 0): chunk("app-9", eventEntry("demo", "app-9", "e1", "install", t0+5*sec)),
		"app-9": &livetabv1.Timeline{Session: "app-9", Account: "demo", PairedSession: "web-9", Conversion: conv, Chunks: 1,
			Entries: []*livetabv1.TimelineEntry{eventEntry("demo", "app-9", "e2", "open", t0+7*sec)}},
	}
	e := newEnv(t, envOptions{})
	// Chunks first: they share their session's partition, so once the
	// session is readable they are too.
	e.produce(string(goka.GroupTable(topics.SessionsGroup)), values,
		[]string{sessions.ChunkKey("web-9", 0), sessions.ChunkKey("web-9", 1), sessions.ChunkKey("app-9", 0), "web-9", "app-9"})
	demo := validToken(t, "demo")
	waitFor(t, 10*time.Second, "the sessions view to hold app-9 and web-9", func() bool {
		return e.getJSON("/v1/timeline?session=app-9", demo, &timelineJSON{}) == http.StatusOK &&
			e.getJSON("/v1/timeline?session=web-9", demo, &timelineJSON{}) == http.StatusOK
	})

	type entry struct{ session, id string }
	want := []entry{{"app-9", "e2"}, {"app-9", "e1"}, {"web-9", "h4"}, {"web-9", "h3"}, {"web-9", "h2"}, {"web-9", "h1"}, {"web-9", "h0"}}
	for _, session := range []string{"web-9", "app-9"} {
		var got timelineJSON
		if status := e.getJSON("/v1/timeline?session="+session, demo, &got); status != http.StatusOK {
			t.Fatalf("%s: status %d", session, status)
		}
		var entries []entry
		for _, en := range got.Entries {
			switch {
			case en.Hit != nil:
				entries = append(entries, entry{en.Session, en.Hit.ID})
			case en.Event != nil:
				entries = append(entries, entry{en.Session, en.Event.ID})
			}
		}
		if !slices.Equal(entries, want) {
			t.Errorf("%s: entries %v, want newest first %v", session, entries, want)
		}
		if got.Conversion == nil || got.Conversion.ID != "conv-9" {
			t.Errorf("%s: conversion %+v, want conv-9", session, got.Conversion)
		}
	}

	// The deep link is read from the app session's value.
	var dl deeplinkJSON
	if status := e.getJSON("/v1/deeplink?session=app-9", demo, &dl); status != http.StatusOK || dl.DeepLink != "app://promo/9" {
		t.Errorf("deep link of a chunked session: %d %+v", status, dl)
	}
	// A chunk's key names no session.
	for _, api := range []string{"/v1/timeline", "/v1/deeplink"} {
		path := api + "?session=" + url.QueryEscape(sessions.ChunkKey("app-9", 0))
		var er errorJSON
		if status := e.getJSON(path, demo, &er); status != http.StatusNotFound {
			t.Errorf("%s of a chunk key: %d %+v, want 404", api, status, er)
		}
	}
}

func TestMergeTimelines(t *testing.T) {
	const sec = int64(time.Second / time.Microsecond)
	conv := &livetabv1.Conversion{Id: "conv-1", HitSession: "web-1", AppSession: "app-1", Method: livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT, Candidates: 4}
	// Values whose own session field is empty: entries are marked with the
	// session they are stored under.
	app := &livetabv1.Timeline{Account: "demo", PairedSession: "web-1",
		Entries: []*livetabv1.TimelineEntry{eventEntry("demo", "", "e1", "install", t0+sec), {}}}
	web := &livetabv1.Timeline{Account: "demo", PairedSession: "app-1", Conversion: conv,
		Entries: []*livetabv1.TimelineEntry{hitEntry("demo", "", "h1", t0), hitEntry("demo", "", "h2", t0+2*sec)}}
	tests := []struct {
		name    string
		paired  *livetabv1.Timeline
		session []string // of each entry, newest first
		pair    string
		conv    bool
	}{
		{"paired, conversion from the pair", web, []string{"web-1", "app-1", "web-1"}, "web-1", true},
		{"pair unreadable", nil, []string{"app-1"}, "web-1", false},
		{"pair of another account", &livetabv1.Timeline{Account: "acme", Conversion: conv,
			Entries: []*livetabv1.TimelineEntry{hitEntry("acme", "", "x", t0)}}, []string{"app-1"}, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := mergeTimelines("demo", "app-1", app, tt.paired)
			var of []string
			for _, e := range got.Entries {
				of = append(of, e.Session)
			}
			if got.Session != "app-1" || got.PairedSession != tt.pair || !slices.Equal(of, tt.session) {
				t.Errorf("session %q paired %q entries of %v; want app-1 paired %q entries of %v",
					got.Session, got.PairedSession, of, tt.pair, tt.session)
			}
			if (got.Conversion != nil) != tt.conv {
				t.Fatalf("conversion %+v, want one: %v", got.Conversion, tt.conv)
			}
			if tt.conv && (got.Conversion.Method != "fingerprint" || got.Conversion.Candidates != 4) {
				t.Errorf("conversion %+v, want a fingerprint match among 4 candidates", got.Conversion)
			}
		})
	}
}
