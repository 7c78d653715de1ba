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

	"github.com/livetab/livetab/codecs"
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

// read is the whole timeline of session, as the views read it.
func read(t *testing.T, tt *tester.Tester, session string) *livetabv1.Timeline {
	t.Helper()
	tl, err := sessions.Read(func(key string) (*livetabv1.Timeline, error) { return getTimeline(t, tt, key), nil }, session)
	if err != nil {
		t.Fatal(err)
	}
	return tl
}

// hitsOf are hits h<from>..h<to-1> of session, a second apart.
func hitsOf(session string, from, to int) []*livetabv1.Hit {
	var out []*livetabv1.Hit
	for i := from; i < to; i++ {
		out = append(out, hit(fmt.Sprintf("h%03d", i), session, time.Duration(i)*time.Second))
	}
	return out
}

func consumeHits(t *testing.T, tt *tester.Tester, hs []*livetabv1.Hit, opts ...tester.EmitOption) {
	t.Helper()
	for _, h := range hs {
		gokatest.Consume(t, tt, topics.Hits, h.GetSession(), h, opts...)
	}
}

// chunkKeys are the chunk keys of session in the table.
func chunkKeys(tt *tester.Tester, session string) []string {
	var out []string
	for _, k := range tt.GetTableKeys(table) {
		if s, _, ok := sessions.ParseChunkKey(k); ok && s == session {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// TestHitsAndEventsBuildTimeline feeds hits and events keyed by account,
// as the collector writes them: each is looped to its session as it came.
func TestHitsAndEventsBuildTimeline(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))

	gokatest.Consume(t, tt, topics.Hits, "acme", hit("h2", "s1", 2*time.Second))
	gokatest.Consume(t, tt, topics.Events, "acme", event("e1", "s1", time.Second))
	gokatest.Consume(t, tt, topics.Hits, "acme", hit("h3", "s1", 3*time.Second))
	looped := gokatest.Drain(loops)
	if len(looped) != 3 {
		t.Fatalf("%d loop records, want 3", len(looped))
	}
	for i, m := range looped {
		in := gokatest.Decode(t, m, &livetabv1.SessionsInput{})
		if m.Key != "s1" || (in.GetHit() == nil) == (in.GetEvent() == nil) {
			t.Errorf("loop record %d keyed %q is %v, want a hit or an event keyed s1", i, m.Key, in)
		}
	}
	if v := tt.TableValue(table, "acme"); v != nil {
		t.Errorf("the account key has a table value %v", v)
	}

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

	t.Run("keyed by session", func(t *testing.T) {
		// As older collectors wrote them: added where read, not looped.
		gokatest.Consume(t, tt, topics.Hits, "s2", hit("h4", "s2", 4*time.Second))
		if l := gokatest.Drain(loops); len(l) != 0 {
			t.Errorf("a hit keyed by its session was looped: %v", l)
		}
		if got := ids(getTimeline(t, tt, "s2")); !slices.Equal(got, []string{"h4"}) {
			t.Errorf("entries = %v, want [h4]", got)
		}
		gokatest.Drain(writes)
	})

	t.Run("redelivery writes nothing", func(t *testing.T) {
		gokatest.Consume(t, tt, topics.Hits, "acme", hit("h2", "s1", 2*time.Second))
		gokatest.Consume(t, tt, topics.Events, "acme", event("e1", "s1", time.Second))
		if w := gokatest.Drain(writes); len(w) != 0 {
			t.Errorf("redelivered hit and event wrote the table %d times", len(w))
		}
		if got, want := ids(getTimeline(t, tt, "s1")), []string{"e1", "h2", "h3"}; !slices.Equal(got, want) {
			t.Errorf("entries = %v, want %v", got, want)
		}
	})
}

// TestStoredEntryIsTheRecord: a hit's or event's entry is its record as
// it came, unknown fields included, through the loop, and Read decodes it.
func TestStoredEntryIsTheRecord(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	records := []struct {
		topic goka.Stream
		event bool
		raw   []byte
	}{
		{topics.Hits, false, join(marshal(t, hit("h1", "s1", time.Second)), unknownFields())},
		{topics.Events, true, join(unknownFields(), marshal(t, event("e1", "s1", 0)))},
	}
	var want []*livetabv1.TimelineEntry
	for _, r := range records {
		tt.Consume(string(r.topic), "acme", r.raw)
		e, err := straightforward(r.raw, r.event)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, e)
	}
	// In time order: the event's device time is t0, the hit's a second on.
	want[0], want[1] = want[1], want[0]
	for name, tl := range map[string]*livetabv1.Timeline{"stored": getTimeline(t, tt, "s1"), "read": read(t, tt, "s1")} {
		got := entriesOf(tl)
		if len(got) != len(want) {
			t.Fatalf("%s: %d entries, want %d", name, len(got), len(want))
		}
		for i := range want {
			if !proto.Equal(got[i], want[i]) {
				t.Errorf("%s: entry %d is %v, want %v", name, i, got[i], want[i])
			}
		}
	}
}

func TestSealing(t *testing.T) {
	const n = sessions.ChunkSize
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))

	consumeHits(t, tt, hitsOf("s1", 0, n))
	if tl := getTimeline(t, tt, "s1"); len(tl.GetStored()) != n || len(tl.GetEntries()) != 0 || tl.GetChunks() != 0 {
		t.Fatalf("a full open chunk: %d stored entries (%d decoded), %d chunks; want %d and none", len(tl.GetStored()), len(tl.GetEntries()), tl.GetChunks(), n)
	}
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("%d loopbacks before the open chunk overflowed, want none", len(l))
	}
	gokatest.Drain(writes)

	// The entry after a full chunk seals it.
	consumeHits(t, tt, hitsOf("s1", n, n+1))
	l := gokatest.Drain(loops)
	if len(l) != 1 || l[0].Key != sessions.ChunkKey("s1", 0) {
		t.Fatalf("loopbacks %v, want one to chunk 0", l)
	}
	in := gokatest.Decode(t, l[0], &livetabv1.SessionsInput{})
	if c := in.GetChunk(); c.GetSession() != "s1" || c.GetAccount() != "acme" || !slices.Equal(ids(c), hitIDs(0, n)) {
		t.Errorf("looped chunk %v, want s1/acme with %v", c, hitIDs(0, n))
	}
	w := gokatest.Drain(writes)
	if len(w) != 2 || w[0].Key != "s1" || w[1].Key != sessions.ChunkKey("s1", 0) {
		t.Fatalf("table writes %v, want the session and then its chunk 0", w)
	}
	head := getTimeline(t, tt, "s1")
	if !slices.Equal(ids(head), hitIDs(n, n+1)) || head.GetChunks() != 1 || head.GetSealedUntilUs() != us(time.Duration(n-1)*time.Second) {
		t.Errorf("session value: entries %v, %d chunks, sealed until %d; want %v, 1, %d",
			ids(head), head.GetChunks(), head.GetSealedUntilUs(), hitIDs(n, n+1), us(time.Duration(n-1)*time.Second))
	}
	if c := getTimeline(t, tt, sessions.ChunkKey("s1", 0)); !slices.Equal(ids(c), hitIDs(0, n)) || c.GetChunks() != 0 {
		t.Errorf("chunk 0: %v", c)
	}

	// Every entry costs one write of the session's value, and every
	// ChunkSize entries one chunk.
	consumeHits(t, tt, hitsOf("s1", n+1, 3*n+1))
	if w := gokatest.Drain(writes); len(w) != 2*n+2 {
		t.Errorf("%d table writes for %d entries, want %d", len(w), 2*n, 2*n+2)
	}
	if got, want := chunkKeys(tt, "s1"), []string{sessions.ChunkKey("s1", 0), sessions.ChunkKey("s1", 1), sessions.ChunkKey("s1", 2)}; !slices.Equal(got, want) {
		t.Errorf("chunk keys %q, want %q", got, want)
	}
	if got := ids(read(t, tt, "s1")); !slices.Equal(got, hitIDs(0, 3*n+1)) {
		t.Errorf("read %v, want %v", got, hitIDs(0, 3*n+1))
	}
}

func TestOutOfOrderAcrossSeal(t *testing.T) {
	const n = sessions.ChunkSize
	tt := gokatest.Start(t, sessions.Graph())
	// Hits 10.. fill a chunk; then 0 and 1 arrive late, older than all.
	consumeHits(t, tt, hitsOf("s1", 10, 10+n))
	consumeHits(t, tt, hitsOf("s1", 1, 2))
	consumeHits(t, tt, hitsOf("s1", 0, 1))
	if head := getTimeline(t, tt, "s1"); head.GetChunks() != 1 || !slices.Equal(ids(head), hitIDs(0, 2)) {
		t.Errorf("session value: %d chunks, entries %v; want 1 and [h000 h001]", head.GetChunks(), ids(head))
	}
	tl := read(t, tt, "s1")
	if want := append(hitIDs(0, 2), hitIDs(10, 10+n)...); !slices.Equal(ids(tl), want) {
		t.Errorf("read %v, want %v", ids(tl), want)
	}
}

func TestRedeliveryAcrossSeal(t *testing.T) {
	const n = sessions.ChunkSize
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))
	all := hitsOf("s1", 0, n+2)
	consumeHits(t, tt, all)
	gokatest.Drain(writes)
	gokatest.Drain(loops)

	// The open chunk's entries are recognised on arrival.
	consumeHits(t, tt, all[n:])
	if w := gokatest.Drain(writes); len(w) != 0 {
		t.Errorf("redelivering the open chunk wrote %v", w)
	}
	// A sealed entry is stored again, and read once.
	consumeHits(t, tt, all[:1])
	if w := gokatest.Drain(writes); len(w) != 1 || w[0].Key != "s1" {
		t.Errorf("redelivering a sealed entry wrote %v, want the session's value", w)
	}
	if got := ids(read(t, tt, "s1")); !slices.Equal(got, hitIDs(0, n+2)) {
		t.Errorf("read %v, want %v", got, hitIDs(0, n+2))
	}
	// A redelivered seal stores the same chunk again.
	before := getTimeline(t, tt, sessions.ChunkKey("s1", 0))
	chunk := &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Chunk{Chunk: before}}
	gokatest.Consume(t, tt, loop, sessions.ChunkKey("s1", 0), chunk)
	if after := getTimeline(t, tt, sessions.ChunkKey("s1", 0)); !proto.Equal(after, before) {
		t.Errorf("chunk 0 after a redelivered seal %v, want %v", after, before)
	}
}

func TestTimelineIsBounded(t *testing.T) {
	const n = sessions.ChunkSize
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	// MaxChunks+2 seals: chunks 0 and 1 are dropped.
	total := (sessions.MaxChunks+2)*n + 1
	consumeHits(t, tt, hitsOf("s1", 0, total))

	var tombstones []string
	for _, w := range gokatest.Drain(writes) {
		if w.Value == nil {
			tombstones = append(tombstones, w.Key)
		}
	}
	if want := []string{sessions.ChunkKey("s1", 0), sessions.ChunkKey("s1", 1)}; !slices.Equal(tombstones, want) {
		t.Errorf("tombstones %q, want %q", tombstones, want)
	}
	if keys := chunkKeys(tt, "s1"); len(keys) != sessions.MaxChunks {
		t.Errorf("%d chunk keys, want %d", len(keys), sessions.MaxChunks)
	}
	got := ids(read(t, tt, "s1"))
	if want := hitIDs(2*n, total); !slices.Equal(got, want) {
		t.Errorf("read %d entries %s..%s, want %d %s..%s", len(got), got[0], got[len(got)-1], len(want), want[0], want[len(want)-1])
	}

	// With a full open chunk more than MaxEntries are kept; Read answers
	// the newest.
	consumeHits(t, tt, hitsOf("s1", total, total+n-1))
	if got := ids(read(t, tt, "s1")); len(got) != sessions.MaxEntries || got[len(got)-1] != fmt.Sprintf("h%03d", total+n-2) {
		t.Errorf("read %d entries, newest %s; want %d up to h%03d", len(got), got[len(got)-1], sessions.MaxEntries, total+n-2)
	}
}

func TestValueWrittenBeforeChunks(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	// A value of the layout before chunks: up to MaxEntries entries.
	old := &livetabv1.Timeline{Session: "s1", Account: "acme"}
	for _, h := range hitsOf("s1", 0, sessions.MaxEntries) {
		old.Entries = append(old.Entries, &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{Hit: h}})
	}
	tt.SetTableValue(table, "s1", old)
	consumeHits(t, tt, hitsOf("s1", sessions.MaxEntries, sessions.MaxEntries+2))
	if head := getTimeline(t, tt, "s1"); head.GetChunks() != 1 || len(head.GetStored()) != 2 || len(head.GetEntries()) != 0 {
		t.Errorf("session value: %d chunks, %d stored entries (%d decoded); want its old entries sealed into 1, and 2 stored", head.GetChunks(), len(head.GetStored()), len(head.GetEntries()))
	}
	if c := getTimeline(t, tt, sessions.ChunkKey("s1", 0)); len(c.GetStored()) != sessions.MaxEntries || len(c.GetEntries()) != 0 ||
		!slices.Equal(ids(c), hitIDs(0, sessions.MaxEntries)) {
		t.Errorf("chunk 0: %d stored entries (%d decoded), want the old entries stored encoded", len(c.GetStored()), len(c.GetEntries()))
	}
	if got := ids(read(t, tt, "s1")); len(got) != sessions.MaxEntries || got[0] != "h002" {
		t.Errorf("read %d entries from %s, want the newest %d", len(got), got[0], sessions.MaxEntries)
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
	} else if in := gokatest.Decode(t, l[0], &livetabv1.SessionsInput{}); !proto.Equal(in.GetConversion(), c) {
		t.Errorf("looped %v, want the conversion", in)
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

func TestConversionPairsChunkedSessions(t *testing.T) {
	const n = sessions.ChunkSize
	tt := gokatest.Start(t, sessions.Graph())
	consumeHits(t, tt, hitsOf("web", 0, 2*n+1))
	for i := range n + 1 {
		gokatest.Consume(t, tt, topics.Events, "app", event(fmt.Sprintf("e%d", i), "app", time.Hour+time.Duration(i)*time.Second))
	}
	c := conversion("web", "app")
	gokatest.Consume(t, tt, topics.Conversions, "app", c)
	// More entries after the pairing seal more chunks.
	consumeHits(t, tt, hitsOf("web", 2*n+1, 3*n+1))

	for session, want := range map[string]struct {
		paired  string
		entries int
		chunks  uint32
	}{"web": {"app", 3*n + 1, 3}, "app": {"web", n + 1, 1}} {
		tl := read(t, tt, session)
		if tl.GetPairedSession() != want.paired || !proto.Equal(tl.GetConversion(), c) || len(tl.GetEntries()) != want.entries || tl.GetChunks() != want.chunks {
			t.Errorf("%s: paired %q, conversion %v, %d entries in %d chunks; want %s, %v, %d in %d",
				session, tl.GetPairedSession(), tl.GetConversion(), len(tl.GetEntries()), tl.GetChunks(), want.paired, c, want.entries, want.chunks)
		}
	}
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
		{"hit whose request does not decode", topics.Hits, "s1", join(marshal(t, hit("h", "s1", 0)), bytesField(8, stringField(1, "\xff"))), "does not decode"},
		{"event whose params do not decode", topics.Events, "s1", join(marshal(t, event("e", "s1", 0)), bytesField(11, stringField(1, "\xff"))), "does not decode"},
		{"looped hit not decoding", loop, "s1", bytesField(4, garbage), "does not decode"},
		{"looped hit keyed by a chunk key", loop, sessions.ChunkKey("s1", 0), &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Hit{Hit: hit("h", "s1", 0)}}, "not keyed by its session"},
		{"looped event keyed by another session", loop, "s2", &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Event{Event: event("e", "s1", 0)}}, "not keyed by its session"},
		{"empty loop message", loop, "web", &livetabv1.SessionsInput{}, "empty loop message"},
		{"looped conversion keyed by another session", loop, "other", &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Conversion{Conversion: conversion("web", "app")}}, "not keyed"},
		{"looped conversion without account", loop, "web", &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Conversion{Conversion: &livetabv1.Conversion{HitSession: "web", AppSession: "app"}}}, "without account"},
		{"chunk keyed by a session", loop, "s1", chunkInput("s1"), "not keyed by a chunk key"},
		{"chunk keyed by another session's chunk key", loop, sessions.ChunkKey("s2", 0), chunkInput("s1"), "not keyed by a chunk key"},
		{"empty chunk", loop, sessions.ChunkKey("s1", 0), &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Chunk{Chunk: &livetabv1.Timeline{Session: "s1"}}}, "empty chunk"},
		{"drop keyed by a session", loop, "s1", &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Drop{Drop: true}}, "drop not keyed by a chunk key"},
		{"session events truncated", topics.Events, "acme", codecs.SessionEventsOf(marshal(t, event("e", "s1", 0)))[:5], "does not decode"},
		{"session events with another field", topics.Events, "acme", join(codecs.SessionEventsOf(marshal(t, event("e", "s1", 0))), stringField(1, "x")), "does not decode"},
		{"session events whose only event does not decode", topics.Events, "acme", codecs.SessionEventsOf(garbage), "record does not decode"},
		{"session events whose only event has no id", topics.Events, "acme", codecs.SessionEventsOf(marshal(t, &livetabv1.Event{Account: "acme", Session: "s1"})), "event without id"},
		{"looped session events not decoding", loop, "s1", bytesField(6, garbage), "looped session events do not decode"},
		{"looped session events framing", loop, "s1", bytesField(6, join(codecs.SessionEventsOf(marshal(t, event("e", "s1", 0))), varintField(16, 1))), "looped session events do not decode"},
		{"looped session events empty", loop, "s1", bytesField(6, nil), "without events"},
		{"looped session events keyed by another session", loop, "s2", bytesField(6, codecs.SessionEventsOf(marshal(t, event("e", "s1", 0)))), "not keyed by its session"},
		{"looped session events keyed by a chunk key", loop, sessions.ChunkKey("s1", 0), bytesField(6, codecs.SessionEventsOf(marshal(t, event("e", "s1", 0)))), "not keyed by its session"},
		{"looped session events whose event does not decode", loop, "s1", bytesField(6, codecs.SessionEventsOf(garbage)), "record does not decode"},
		{"looped session events in parts, an event not decoding", loop, "s1", join(bytesField(6, nil), bytesField(6, codecs.SessionEventsOf(garbage))), "does not decode"},
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
	// The records on the loop topic are the test's.
	var own int
	for _, tc := range tests {
		if tc.topic == loop {
			own++
		}
	}
	if l := gokatest.Drain(loops); len(l) != own {
		t.Errorf("bad records looped %d times", len(l)-own)
	}
	// The processor is still running.
	gokatest.Consume(t, tt, topics.Hits, "s1", hit("h1", "s1", 0))
	if got := ids(getTimeline(t, tt, "s1")); !slices.Equal(got, []string{"h1"}) {
		t.Errorf("entries after bad records = %v, want [h1]", got)
	}
}

func chunkInput(session string) *livetabv1.SessionsInput {
	return &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Chunk{Chunk: &livetabv1.Timeline{Session: session, Account: "acme",
		Stored: encAll(&livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{Hit: hit("h", session, 0)}})}}}
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
	// A long session: chunk 0 expired, chunk 1 half expired, the open chunk
	// expired (an old entry arriving late).
	const n = sessions.ChunkSize
	var long []*livetabv1.Hit
	for i := range n {
		long = append(long, hit(fmt.Sprintf("c0-%d", i), "long", -90*day+time.Duration(i)*time.Second))
	}
	for i := range n {
		at := -61 * day
		if i >= n/2 {
			at = -day
		}
		long = append(long, hit(fmt.Sprintf("c1-%d", i), "long", at+time.Duration(i)*time.Second))
	}
	long = append(long, hit("open", "long", -61*day))
	consumeHits(t, tt, long)
	if keys := chunkKeys(tt, "long"); len(keys) != 2 {
		t.Fatalf("long session has chunk keys %q, want 2", keys)
	}
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
	// The long session's expired chunk goes, the other is trimmed, and
	// its value stays for it though its open chunk is empty.
	if v, ok := got[sessions.ChunkKey("long", 0)]; !ok || v != nil {
		t.Errorf("expired chunk: wrote %v (present %v), want a tombstone", v, ok)
	}
	if _, ok := got[sessions.ChunkKey("long", 1)]; !ok {
		t.Error("half expired chunk not rewritten")
	}
	if head := getTimeline(t, tt, "long"); head == nil || len(head.GetStored()) != 0 || head.GetChunks() != 2 {
		t.Errorf("long session's value %v, want it kept, with no entries and 2 chunks", head)
	}
	var young []string
	for i := n / 2; i < n; i++ {
		young = append(young, fmt.Sprintf("c1-%d", i))
	}
	if got := ids(read(t, tt, "long")); !slices.Equal(got, young) {
		t.Errorf("long session reads %v, want %v", got, young)
	}

	// Sixty days on, the pairing of app and web has expired too.
	if err := p.VisitAll(ctx, sessions.ExpireVisitor, t0.Add(sessions.Retention+time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys := tt.GetTableKeys(table); len(keys) != 0 {
		t.Errorf("table keys %v after everything expired, want none", keys)
	}
}
