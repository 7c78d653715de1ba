package sessions_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

var (
	table = goka.GroupTable(sessions.Group)
	loop  = topics.GroupLoop(sessions.Group)
)

func hit(id, session string, at time.Duration) *livetabv1.Hit {
	return &livetabv1.Hit{Id: id, Account: "acme", Session: session, ReceivedUs: us(at), ClickId: "click-" + id}
}

func event(id, session string, at time.Duration) *livetabv1.Event {
	return &livetabv1.Event{Id: id, Account: "acme", Session: session, Name: "install", TimeUs: us(at), ReceivedUs: us(at + time.Second)}
}

func conversion(hitSession, appSession string) *livetabv1.Conversion {
	return &livetabv1.Conversion{
		Id: "cv-" + appSession, Account: "acme", HitSession: hitSession, AppSession: appSession,
		HitId: "h1", EventId: "e1", Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, TimeUs: us(time.Minute),
	}
}

func getTimeline(t *testing.T, tt *tester.Tester, key string) *livetabv1.Timeline {
	t.Helper()
	v := tt.TableValue(table, key)
	if v == nil {
		return nil
	}
	return v.(*livetabv1.Timeline)
}

func TestHitsAndEventsBuildTimeline(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))

	gokatest.Consume(t, tt, topics.Hits, "s1", hit("h2", "s1", 2*time.Second))
	gokatest.Consume(t, tt, topics.Events, "s1", event("e1", "s1", time.Second))
	gokatest.Consume(t, tt, topics.Hits, "s1", hit("h3", "s1", 3*time.Second))

	tl := getTimeline(t, tt, "s1")
	if tl.GetSession() != "s1" || tl.GetAccount() != "acme" {
		t.Errorf("session/account = %q/%q, want s1/acme", tl.GetSession(), tl.GetAccount())
	}
	if got, want := ids(tl), []string{"e1", "h2", "h3"}; !slices.Equal(got, want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
	if n := len(gokatest.Drain(writes)); n != 3 {
		t.Errorf("%d table writes, want 3", n)
	}

	t.Run("redelivery writes nothing", func(t *testing.T) {
		gokatest.Consume(t, tt, topics.Hits, "s1", hit("h2", "s1", 2*time.Second))
		gokatest.Consume(t, tt, topics.Events, "s1", event("e1", "s1", time.Second))
		if w := gokatest.Drain(writes); len(w) != 0 {
			t.Errorf("redelivered hit and event wrote the table %d times", len(w))
		}
		if got, want := ids(getTimeline(t, tt, "s1")), []string{"e1", "h2", "h3"}; !slices.Equal(got, want) {
			t.Errorf("entries = %v, want %v", got, want)
		}
	})
}

func TestTimelineIsBounded(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	full := &livetabv1.Timeline{Session: "s1", Account: "acme"}
	for i := range sessions.MaxEntries {
		full.Entries = append(full.Entries, &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{
			Hit: hit(fmt.Sprintf("h%04d", i), "s1", time.Duration(i)*time.Second)}})
	}
	tt.SetTableValue(table, "s1", full)
	for i := sessions.MaxEntries; i < sessions.MaxEntries+3; i++ {
		gokatest.Consume(t, tt, topics.Hits, "s1", hit(fmt.Sprintf("h%04d", i), "s1", time.Duration(i)*time.Second))
	}
	got := ids(getTimeline(t, tt, "s1"))
	if len(got) != sessions.MaxEntries {
		t.Fatalf("%d entries, want %d", len(got), sessions.MaxEntries)
	}
	if got[0] != "h0003" || got[len(got)-1] != fmt.Sprintf("h%04d", sessions.MaxEntries+2) {
		t.Errorf("kept %s..%s, want the newest", got[0], got[len(got)-1])
	}
}

func TestRetentionUsesRecordTimestamp(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	day := 24 * time.Hour
	gokatest.Consume(t, tt, topics.Hits, "s1", hit("old", "s1", -61*day), tester.WithTime(t0.Add(-61*day)))
	gokatest.Consume(t, tt, topics.Hits, "s1", hit("mid", "s1", -30*day), tester.WithTime(t0.Add(-30*day)))
	if got := ids(getTimeline(t, tt, "s1")); !slices.Equal(got, []string{"old", "mid"}) {
		t.Fatalf("entries = %v: nothing is 60 days older than the records", got)
	}
	// The record's timestamp, not the hit's time, is "now".
	gokatest.Consume(t, tt, topics.Hits, "s1", hit("late", "s1", -40*day), tester.WithTime(t0))
	if got, want := ids(getTimeline(t, tt, "s1")), []string{"late", "mid"}; !slices.Equal(got, want) {
		t.Errorf("entries = %v, want %v", got, want)
	}
}

func TestConversionPairsBothSessions(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	loops := tt.NewQueueTracker(string(loop))
	gokatest.Consume(t, tt, topics.Hits, "web", hit("h1", "web", 0))
	gokatest.Consume(t, tt, topics.Events, "app", event("e1", "app", time.Minute))

	c := conversion("web", "app")
	gokatest.Consume(t, tt, topics.Conversions, "app", c)

	app := getTimeline(t, tt, "app")
	if app.GetPairedSession() != "web" || !proto.Equal(app.GetConversion(), c) {
		t.Errorf("app session: paired %q, conversion %v; want web, %v", app.GetPairedSession(), app.GetConversion(), c)
	}
	if got := ids(app); !slices.Equal(got, []string{"e1"}) {
		t.Errorf("app entries = %v, want [e1]", got)
	}
	web := getTimeline(t, tt, "web")
	if web.GetPairedSession() != "app" || !proto.Equal(web.GetConversion(), c) {
		t.Errorf("hit session: paired %q, conversion %v; want app, %v", web.GetPairedSession(), web.GetConversion(), c)
	}
	if got := ids(web); !slices.Equal(got, []string{"h1"}) {
		t.Errorf("hit entries = %v, want [h1]", got)
	}
	if l := gokatest.Drain(loops); len(l) != 1 || l[0].Key != "web" {
		t.Errorf("loopback %v, want one to the hit session", l)
	}

	t.Run("redelivery and later conversions are ignored", func(t *testing.T) {
		writes := tt.NewQueueTracker(string(table))
		gokatest.Consume(t, tt, topics.Conversions, "app", c)
		gokatest.Consume(t, tt, topics.Conversions, "app", conversion("web2", "app"))
		if w := gokatest.Drain(writes); len(w) != 0 {
			t.Errorf("%d table writes, want none", len(w))
		}
		if l := gokatest.Drain(loops); len(l) != 0 {
			t.Errorf("%d loopbacks, want none", len(l))
		}
		if got := getTimeline(t, tt, "app").GetPairedSession(); got != "web" {
			t.Errorf("app session re-paired with %q", got)
		}
	})
}

func TestConversionBeforeEntries(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	c := conversion("web", "app")
	gokatest.Consume(t, tt, topics.Conversions, "app", c)

	want := map[string]*livetabv1.Timeline{
		"app": {Session: "app", Account: "acme", PairedSession: "web", Conversion: c},
		"web": {Session: "web", Account: "acme", PairedSession: "app", Conversion: c},
	}
	for key, w := range want {
		if got := getTimeline(t, tt, key); !proto.Equal(got, w) {
			t.Errorf("%s: timeline %v, want %v", key, got, w)
		}
	}

	// Entries arriving later keep the pairing.
	gokatest.Consume(t, tt, topics.Events, "app", event("e1", "app", 0))
	gokatest.Consume(t, tt, topics.Hits, "web", hit("h1", "web", 0))
	for key, id := range map[string]string{"app": "e1", "web": "h1"} {
		tl := getTimeline(t, tt, key)
		if tl.GetPairedSession() == "" || !slices.Equal(ids(tl), []string{id}) {
			t.Errorf("%s: paired %q entries %v, want paired with [%s]", key, tl.GetPairedSession(), ids(tl), id)
		}
	}
}

func TestBadRecordsAreSkipped(t *testing.T) {
	var logs gokatest.Logs
	tt := gokatest.Start(t, sessions.NewGraph(sessions.Options{Logger: logs.Logger()}))
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))

	garbage := []byte{0xff, 0xff, 0xff}
	tests := []struct {
		name  string
		topic goka.Stream
		key   string
		value any // []byte or proto.Message
		log   string
	}{
		{"hit not decoding", topics.Hits, "s1", garbage, "does not decode"},
		{"event not decoding", topics.Events, "s1", garbage, "does not decode"},
		{"conversion not decoding", topics.Conversions, "app", garbage, "does not decode"},
		{"loop not decoding", loop, "web", garbage, "does not decode"},
		{"hit without id", topics.Hits, "s1", &livetabv1.Hit{Account: "acme", Session: "s1"}, "without id"},
		{"hit without account", topics.Hits, "s1", &livetabv1.Hit{Id: "h", Session: "s1"}, "without id"},
		{"hit without key", topics.Hits, "", hit("h", "", 0), "without id"},
		{"event without account", topics.Events, "s1", &livetabv1.Event{Id: "e", Session: "s1"}, "without id"},
		{"conversion without hit session", topics.Conversions, "app", &livetabv1.Conversion{Account: "acme", AppSession: "app"}, "without account"},
		{"conversion keyed by another session", topics.Conversions, "other", conversion("web", "app"), "not keyed"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if b, ok := tc.value.([]byte); ok {
				tt.Consume(string(tc.topic), tc.key, b)
			} else {
				gokatest.Consume(t, tt, tc.topic, tc.key, tc.value.(proto.Message))
			}
			if _, ok := logs.Find("level=WARN", tc.log, "topic="+string(tc.topic), "partition=0", "offset="); !ok {
				t.Errorf("no warning %q naming topic %s; logs: %v", tc.log, tc.topic, logs.Lines())
			}
		})
	}
	if w := gokatest.Drain(writes); len(w) != 0 {
		t.Errorf("bad records wrote %d table values", len(w))
	}
	// The one record on the loop topic is the test's garbage.
	if l := gokatest.Drain(loops); len(l) != 1 {
		t.Errorf("bad records looped %d times", len(l)-1)
	}
	// The processor is still running.
	gokatest.Consume(t, tt, topics.Hits, "s1", hit("h1", "s1", 0))
	if got := ids(getTimeline(t, tt, "s1")); !slices.Equal(got, []string{"h1"}) {
		t.Errorf("entries after bad records = %v, want [h1]", got)
	}
}

func TestRetentionSweep(t *testing.T) {
	var logs gokatest.Logs
	tt := tester.New(t)
	p := gokatest.RunProcessor(t, tt, sessions.NewGraph(sessions.Options{Logger: logs.Logger()}))
	day := 24 * time.Hour
	// Without record timestamps nothing is trimmed on arrival.
	gokatest.Consume(t, tt, topics.Hits, "idle", hit("i1", "idle", -90*day))
	gokatest.Consume(t, tt, topics.Events, "idle", event("i2", "idle", -61*day))
	gokatest.Consume(t, tt, topics.Hits, "live", hit("l1", "live", -61*day))
	gokatest.Consume(t, tt, topics.Hits, "live", hit("l2", "live", -day))
	gokatest.Consume(t, tt, topics.Hits, "fresh", hit("f1", "fresh", -time.Hour))
	// Paired a minute after t0 (conversion()), no entries yet.
	gokatest.Consume(t, tt, topics.Conversions, "app", conversion("web", "app"))
	writes := tt.NewQueueTracker(string(table))

	ctx := context.Background()
	if err := p.VisitAll(ctx, sessions.ExpireVisitor, "not a time"); err != nil {
		t.Fatal(err)
	}
	if _, ok := logs.Find("level=WARN", "expire visit without a time"); !ok {
		t.Errorf("no warning for a visit without time; logs %v", logs.Lines())
	}
	if w := gokatest.Drain(writes); len(w) != 0 {
		t.Fatalf("a visit without time wrote %v", w)
	}

	if err := p.VisitAll(ctx, sessions.ExpireVisitor, t0); err != nil {
		t.Fatal(err)
	}
	got := map[string][]byte{}
	for _, m := range gokatest.Drain(writes) {
		if _, dup := got[m.Key]; dup {
			t.Errorf("key %s written twice", m.Key)
		}
		got[m.Key] = m.Value
	}
	if v, ok := got["idle"]; !ok || v != nil {
		t.Errorf("idle session: wrote %v (present %v), want a tombstone", v, ok)
	}
	if tl := getTimeline(t, tt, "idle"); tl != nil {
		t.Errorf("idle session still in the table: %v", tl)
	}
	if _, ok := got["live"]; !ok {
		t.Error("live session not rewritten after trimming")
	}
	if ids := ids(getTimeline(t, tt, "live")); !slices.Equal(ids, []string{"l2"}) {
		t.Errorf("live session entries %v, want [l2]", ids)
	}
	for _, k := range []string{"fresh", "app", "web"} {
		if _, ok := got[k]; ok {
			t.Errorf("session %s written though nothing expired", k)
		}
		if getTimeline(t, tt, k) == nil {
			t.Errorf("session %s deleted", k)
		}
	}

	// Sixty days on, the pairing of app and web has expired too.
	if err := p.VisitAll(ctx, sessions.ExpireVisitor, t0.Add(sessions.Retention+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys := tt.GetTableKeys(table); len(keys) != 0 {
		t.Errorf("table keys %v after everything expired, want none", keys)
	}
}
