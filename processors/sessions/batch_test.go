package sessions_test

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

// eventsOf are events e<from>..e<to-1> of session, a second apart.
func eventsOf(session string, from, to int) []*livetabv1.Event {
	var out []*livetabv1.Event
	for i := from; i < to; i++ {
		out = append(out, event(fmt.Sprintf("e%03d", i), session, time.Duration(i)*time.Second))
	}
	return out
}

func eventIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("e%03d", i))
	}
	return out
}

// sessionEvents is a SessionEvents of evs.
func sessionEvents(t testing.TB, evs ...*livetabv1.Event) []byte {
	t.Helper()
	var raws [][]byte
	for _, ev := range evs {
		raws = append(raws, marshal(t, ev))
	}
	return codecs.SessionEventsOf(raws...)
}

// loopedEvents is the loop record that adds a SessionEvents to its
// session: SessionsInput events holding it.
func loopedEvents(batch []byte) []byte { return bytesField(6, batch) }

// splitLoops splits loop records into those for chunk keys (chunks and
// drops) and the others.
func splitLoops(l []gokatest.Message) (chunks, others []gokatest.Message) {
	for _, m := range l {
		if _, _, ok := sessions.ParseChunkKey(m.Key); ok {
			chunks = append(chunks, m)
		} else {
			others = append(others, m)
		}
	}
	return chunks, others
}

// writesTo counts the table writes to key.
func writesTo(w []gokatest.Message, key string) int {
	n := 0
	for _, m := range w {
		if m.Key == key {
			n++
		}
	}
	return n
}

// TestSessionEventsLoopedOnce: a SessionEvents keyed by account, as the
// collector writes it, is looped to its session once, as it came, and its
// events are added there with one write of the session's value, sealing
// chunks on the way.
func TestSessionEventsLoopedOnce(t *testing.T) {
	const n = 20
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))

	batch := sessionEvents(t, eventsOf("app", 0, n)...)
	tt.Consume(string(topics.Events), "acme", batch)

	chunks, others := splitLoops(gokatest.Drain(loops))
	if len(others) != 1 || others[0].Key != "app" || !bytes.Equal(others[0].Value, loopedEvents(batch)) {
		t.Fatalf("loop records %v, want one keyed app holding the record as it came", others)
	}
	in := gokatest.Decode(t, others[0], &livetabv1.SessionsInput{})
	if got := in.GetEvents().GetEvents(); len(got) != n {
		t.Errorf("looped SessionsInput holds %d events, want %d", len(got), n)
	}
	// Two seals of ChunkSize, no drop.
	if want := []string{sessions.ChunkKey("app", 0), sessions.ChunkKey("app", 1)}; len(chunks) != 2 || chunks[0].Key != want[0] || chunks[1].Key != want[1] {
		t.Errorf("chunk loop records %v, want to %q", chunks, want)
	}
	w := gokatest.Drain(writes)
	if got := writesTo(w, "app"); got != 1 {
		t.Errorf("%d writes of the session's value, want 1", got)
	}
	if v := tt.TableValue(table, "acme"); v != nil {
		t.Errorf("the account key has a table value %v", v)
	}
	head := getTimeline(t, tt, "app")
	if head.GetSession() != "app" || head.GetAccount() != "acme" || head.GetChunks() != 2 || !slices.Equal(ids(head), eventIDs(2*sessions.ChunkSize, n)) {
		t.Errorf("session value %v/%v, %d chunks, entries %v; want app/acme, 2, %v",
			head.GetSession(), head.GetAccount(), head.GetChunks(), ids(head), eventIDs(2*sessions.ChunkSize, n))
	}
	if got := ids(read(t, tt, "app")); !slices.Equal(got, eventIDs(0, n)) {
		t.Errorf("read %v, want %v", got, eventIDs(0, n))
	}
	// The stored entries are the events as they came.
	for i, e := range entriesOf(read(t, tt, "app")) {
		if want := eventsOf("app", i, i+1)[0]; !proto.Equal(e.GetEvent(), want) {
			t.Errorf("entry %d is %v, want %v", i, e, want)
		}
	}

	t.Run("as it came, byte for byte", func(t *testing.T) {
		// A length in a varint longer than needed, as protobuf reads it: a
		// SessionEvents rebuilt from its events would frame them anew.
		ev := marshal(t, event("e-long", "app2", 0))
		odd := join(protowire.AppendTag(nil, codecs.SessionEventsEvents, protowire.BytesType),
			[]byte{byte(len(ev)) | 0x80, 0x00}, ev)
		if rebuilt := codecs.SessionEventsOf(ev); bytes.Equal(odd, rebuilt) {
			t.Fatal("the record is its rebuild: the test tells nothing")
		}
		tt.Consume(string(topics.Events), "acme", odd)
		if _, others := splitLoops(gokatest.Drain(loops)); len(others) != 1 || !bytes.Equal(others[0].Value, loopedEvents(odd)) {
			t.Errorf("loop records %v, want the record as it came", others)
		}
		if got := ids(getTimeline(t, tt, "app2")); !slices.Equal(got, []string{"e-long"}) {
			t.Errorf("entries %v, want [e-long]", got)
		}
		gokatest.Drain(writes)
	})

	t.Run("redelivery writes nothing new", func(t *testing.T) {
		tt.Consume(string(topics.Events), "acme", sessionEvents(t, eventsOf("app", n-3, n)...))
		if got := writesTo(gokatest.Drain(writes), "app"); got != 0 {
			t.Errorf("a redelivered batch of the open chunk wrote the session's value %d times", got)
		}
		if chunks, _ := splitLoops(gokatest.Drain(loops)); len(chunks) != 0 {
			t.Errorf("a redelivered batch sealed %v", chunks)
		}
	})
}

// TestSessionEventsKeyedBySession: a SessionEvents keyed by its session is
// added where it is read, with one write.
func TestSessionEventsKeyedBySession(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))
	evs := eventsOf("app", 0, 5)
	// Out of time order.
	evs[0], evs[3] = evs[3], evs[0]
	tt.Consume(string(topics.Events), "app", sessionEvents(t, evs...))
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("a batch keyed by its session was looped: %v", l)
	}
	if w := gokatest.Drain(writes); len(w) != 1 || w[0].Key != "app" {
		t.Errorf("table writes %v, want one of app", w)
	}
	if got := ids(getTimeline(t, tt, "app")); !slices.Equal(got, eventIDs(0, 5)) {
		t.Errorf("entries %v, want %v", got, eventIDs(0, 5))
	}
}

// TestSessionEventsBadEvents: the bad events of a batch are skipped with a
// warning each; the others are looped, in a SessionEvents rebuilt from
// them, and added.
func TestSessionEventsBadEvents(t *testing.T) {
	var logs gokatest.Logs
	tt := gokatest.Start(t, sessions.NewGraph(sessions.Options{Logger: logs.Logger()}))
	loops := tt.NewQueueTracker(string(loop))

	good := []*livetabv1.Event{event("e2", "app", 2*time.Second), event("e1", "app", time.Second), event("e3", "app", 3*time.Second)}
	raws := [][]byte{
		marshal(t, good[0]),
		{0xff, 0xff, 0xff}, // index 1: does not decode
		marshal(t, &livetabv1.Event{Id: "no-account", Session: "app"}), // 2: without account
		marshal(t, good[1]), // 3
		join(marshal(t, event("bad-params", "app", 0)), bytesField(11, stringField(1, "\xff"))), // 4: not UTF-8
		marshal(t, good[2]), // 5
	}
	tt.Consume(string(topics.Events), "acme", codecs.SessionEventsOf(raws...))

	for _, want := range [][]string{
		{"record does not decode", "index=1"},
		{"event without id, account or session", "index=2", "event=no-account"},
		{"record does not decode", "index=4"},
	} {
		if _, ok := logs.Find(append(want, "level=WARN", "topic="+string(topics.Events), "offset=")...); !ok {
			t.Errorf("no warning %q; logs: %v", want, logs.Lines())
		}
	}
	if n := len(logs.Lines()); n != 3 {
		t.Errorf("%d lines logged, want 3: %v", n, logs.Lines())
	}
	l := gokatest.Drain(loops)
	if len(l) != 1 || l[0].Key != "app" {
		t.Fatalf("loop records %v, want one keyed app", l)
	}
	if want := loopedEvents(codecs.SessionEventsOf(raws[0], raws[3], raws[5])); !bytes.Equal(l[0].Value, want) {
		t.Errorf("looped %x, want the good events rebuilt into one SessionEvents %x", l[0].Value, want)
	}
	if got := ids(getTimeline(t, tt, "app")); !slices.Equal(got, []string{"e1", "e2", "e3"}) {
		t.Errorf("entries %v, want [e1 e2 e3]", got)
	}
}

// TestSessionEventsMixedSessions: a record that mixes sessions (not one
// the collector writes) is split into one loop record per session, in the
// order of their first events; the events of the key's session are added
// where read.
func TestSessionEventsMixedSessions(t *testing.T) {
	tt := gokatest.Start(t, sessions.Graph())
	writes := tt.NewQueueTracker(string(table))
	loops := tt.NewQueueTracker(string(loop))

	a1, b1, a2, c1, b2 := event("a1", "sa", 0), event("b1", "sb", 0), event("a2", "sa", time.Second), event("c1", "sc", 0), event("b2", "sb", time.Second)
	tt.Consume(string(topics.Events), "acme", sessionEvents(t, b1, a1, a2, c1, b2))
	l := gokatest.Drain(loops)
	want := []gokatest.Message{
		{Key: "sb", Value: loopedEvents(sessionEvents(t, b1, b2))},
		{Key: "sa", Value: loopedEvents(sessionEvents(t, a1, a2))},
		{Key: "sc", Value: loopedEvents(sessionEvents(t, c1))},
	}
	if len(l) != len(want) {
		t.Fatalf("loop records %v, want %v", l, want)
	}
	for i := range want {
		if l[i].Key != want[i].Key || !bytes.Equal(l[i].Value, want[i].Value) {
			t.Errorf("loop record %d: %q %x, want %q %x", i, l[i].Key, l[i].Value, want[i].Key, want[i].Value)
		}
	}
	for session, wantIDs := range map[string][]string{"sa": {"a1", "a2"}, "sb": {"b1", "b2"}, "sc": {"c1"}} {
		if got := ids(getTimeline(t, tt, session)); !slices.Equal(got, wantIDs) {
			t.Errorf("%s: entries %v, want %v", session, got, wantIDs)
		}
	}
	gokatest.Drain(writes)

	t.Run("keyed by one of them", func(t *testing.T) {
		a3, b3 := event("a3", "sa", 2*time.Second), event("b3", "sb", 2*time.Second)
		tt.Consume(string(topics.Events), "sa", sessionEvents(t, b3, a3))
		if l := gokatest.Drain(loops); len(l) != 1 || l[0].Key != "sb" || !bytes.Equal(l[0].Value, loopedEvents(sessionEvents(t, b3))) {
			t.Errorf("loop records %v, want b3 alone to sb", l)
		}
		if got := ids(getTimeline(t, tt, "sa")); !slices.Equal(got, []string{"a1", "a2", "a3"}) {
			t.Errorf("sa: entries %v, want a3 added in place", got)
		}
		if got := ids(getTimeline(t, tt, "sb")); !slices.Equal(got, []string{"b1", "b2", "b3"}) {
			t.Errorf("sb: entries %v", got)
		}
		if w := gokatest.Drain(writes); writesTo(w, "sa") != 1 || writesTo(w, "sb") != 1 {
			t.Errorf("table writes %v, want one of sa and one of sb", w)
		}
	})
}

// TestLoopedSessionEvents: the loop record of a batch adds the events of
// the key's session and skips the others; a record in several parts takes
// the slow path and gives the same.
func TestLoopedSessionEvents(t *testing.T) {
	var logs gokatest.Logs
	tt := gokatest.Start(t, sessions.NewGraph(sessions.Options{Logger: logs.Logger()}))
	writes := tt.NewQueueTracker(string(table))

	e1, e2, other := event("e1", "app", time.Second), event("e2", "app", 0), event("x", "other", 0)
	tt.Consume(string(loop), "app", loopedEvents(sessionEvents(t, e1, other, e2)))
	if _, ok := logs.Find("level=WARN", "looped event not keyed by its session", "id=x", "session=other"); !ok {
		t.Errorf("no warning for the event of another session; logs %v", logs.Lines())
	}
	if got := ids(getTimeline(t, tt, "app")); !slices.Equal(got, []string{"e2", "e1"}) {
		t.Errorf("entries %v, want [e2 e1]", got)
	}
	if w := gokatest.Drain(writes); len(w) != 1 || w[0].Key != "app" {
		t.Errorf("table writes %v, want one of app", w)
	}

	// Field 6 twice, as protobuf allows: the SessionEvents are merged.
	e3, e4 := event("e3", "app2", 0), event("e4", "app2", time.Second)
	tt.Consume(string(loop), "app2", join(loopedEvents(sessionEvents(t, e3)), loopedEvents(sessionEvents(t, e4))))
	// An event first: the oneof's last field wins.
	e5 := event("e5", "app2", 2*time.Second)
	tt.Consume(string(loop), "app2", join(bytesField(5, marshal(t, event("ignored", "app2", 0))), loopedEvents(sessionEvents(t, e5))))
	if got := ids(getTimeline(t, tt, "app2")); !slices.Equal(got, []string{"e3", "e4", "e5"}) {
		t.Errorf("app2: entries %v, want [e3 e4 e5]", got)
	}
}

// TestSessionEventsAddAsOneByOne: a batch gives the session's value, the
// chunks and the chunk loop records that its events give one record each,
// in the same order, with the same timestamp, whether looped (keyed by
// account) or added in place (keyed by session).
func TestSessionEventsAddAsOneByOne(t *testing.T) {
	const n = sessions.ChunkSize
	day := 24 * time.Hour
	shuffled := eventsOf("app", 0, 3*n)
	for i := range shuffled {
		j := (i * 7) % len(shuffled)
		shuffled[i], shuffled[j] = shuffled[j], shuffled[i]
	}
	withDuplicates := eventsOf("app", 0, 2*n+2)
	// e003 again while in the open chunk, e000 again once it is sealed, and
	// the last again right after itself.
	withDuplicates = slices.Insert(withDuplicates, 5, withDuplicates[3])
	withDuplicates = slices.Insert(withDuplicates, n+3, withDuplicates[0])
	withDuplicates = append(withDuplicates, withDuplicates[len(withDuplicates)-1])
	expiring := eventsOf("app", 0, 2*n)
	for i := range expiring {
		if i%3 == 0 {
			expiring[i].TimeUs = us(-61 * day)
		}
	}
	old := &livetabv1.Timeline{Session: "app", Account: "acme"}
	for _, ev := range eventsOf("app", 100, 100+3*n) {
		old.Entries = append(old.Entries, &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: ev}})
	}

	tests := []struct {
		name   string
		pre    *livetabv1.Timeline // the session's value first, if any
		before []*livetabv1.Event  // added one by one first
		batch  []*livetabv1.Event
		at     time.Time // the records' timestamp
	}{
		{name: "a session's events", batch: eventsOf("app", 0, 20)},
		{name: "out of time order across seals", batch: shuffled},
		{name: "duplicates in the batch", batch: withDuplicates},
		{name: "onto an open chunk, redelivering part of it", before: eventsOf("app", 0, 5), batch: eventsOf("app", 3, 3+2*n)},
		{name: "past MaxChunks: drops", batch: eventsOf("app", 0, (sessions.MaxChunks+2)*n+3)},
		{name: "past MaxChunks onto a long session", before: eventsOf("app", 0, sessions.MaxChunks*n-2), batch: eventsOf("app", sessions.MaxChunks*n-2, (sessions.MaxChunks+1)*n+1)},
		{name: "expired events", before: eventsOf("app", 1000, 1003), batch: expiring, at: t0},
		{name: "the first expired, with an account of its own", batch: append([]*livetabv1.Event{
			{Id: "old", Account: "other", Session: "app", TimeUs: us(-61 * day)}}, eventsOf("app", 0, n+1)...), at: t0},
		{name: "a value written before chunks", pre: old, batch: eventsOf("app", 0, n+1)},
	}
	for _, tc := range tests {
		keys := []string{"acme", "app"}
		if !tc.at.IsZero() {
			// A looped record is added as of its loop record's timestamp,
			// which the tester leaves zero: retention applies to records
			// keyed by their session only.
			keys = keys[1:]
		}
		for _, key := range keys {
			t.Run(fmt.Sprintf("%s/keyed %s", tc.name, key), func(t *testing.T) {
				single, batched := gokatest.Start(t, sessions.Graph()), gokatest.Start(t, sessions.Graph())
				opts := []tester.EmitOption{tester.WithTime(tc.at)}
				type run struct {
					tt            *tester.Tester
					writes, loops *tester.QueueTracker
				}
				runs := []run{{tt: single}, {tt: batched}}
				for i, r := range runs {
					if tc.pre != nil {
						r.tt.SetTableValue(table, "app", tc.pre)
					}
					for _, ev := range tc.before {
						gokatest.Consume(t, r.tt, topics.Events, key, ev, opts...)
					}
					runs[i].writes, runs[i].loops = r.tt.NewQueueTracker(string(table)), r.tt.NewQueueTracker(string(loop))
				}
				for _, ev := range tc.batch {
					gokatest.Consume(t, single, topics.Events, key, ev, opts...)
				}
				batched.Consume(string(topics.Events), key, sessionEvents(t, tc.batch...), opts...)

				keys := single.GetTableKeys(table)
				slices.Sort(keys)
				bkeys := batched.GetTableKeys(table)
				slices.Sort(bkeys)
				if !slices.Equal(keys, bkeys) {
					t.Fatalf("table keys: batched %q, one by one %q", bkeys, keys)
				}
				for _, k := range keys {
					if got, want := getTimeline(t, batched, k), getTimeline(t, single, k); !proto.Equal(got, want) {
						t.Errorf("%q: batched %v\none by one %v", k, got, want)
					}
				}
				wantChunks, _ := splitLoops(gokatest.Drain(runs[0].loops))
				gotChunks, others := splitLoops(gokatest.Drain(runs[1].loops))
				if len(gotChunks) != len(wantChunks) {
					t.Fatalf("%d chunk loop records, one by one %d", len(gotChunks), len(wantChunks))
				}
				for i := range wantChunks {
					if gotChunks[i].Key != wantChunks[i].Key || !bytes.Equal(gotChunks[i].Value, wantChunks[i].Value) {
						t.Errorf("chunk loop record %d: %q %x, one by one %q %x", i, gotChunks[i].Key, gotChunks[i].Value, wantChunks[i].Key, wantChunks[i].Value)
					}
				}
				wantLoops := 0
				if key == "acme" {
					wantLoops = 1
				}
				if len(others) != wantLoops {
					t.Errorf("%d loop records of events, want %d", len(others), wantLoops)
				}
				// The chunks' writes are the same; the session's value is
				// written once at most.
				wantWrites, gotWrites := gokatest.Drain(runs[0].writes), gokatest.Drain(runs[1].writes)
				if writesTo(gotWrites, "app") > 1 {
					t.Errorf("the session's value written %d times", writesTo(gotWrites, "app"))
				}
				if (writesTo(gotWrites, "app") == 1) != (writesTo(wantWrites, "app") > 0) {
					t.Errorf("session's value written %d times, one by one %d", writesTo(gotWrites, "app"), writesTo(wantWrites, "app"))
				}
				chunkWrites := func(w []gokatest.Message) []gokatest.Message { c, _ := splitLoops(w); return c }
				if got, want := chunkWrites(gotWrites), chunkWrites(wantWrites); !slices.EqualFunc(got, want, func(a, b gokatest.Message) bool {
					return a.Key == b.Key && bytes.Equal(a.Value, b.Value)
				}) {
					t.Errorf("chunk writes %v, one by one %v", got, want)
				}
				if len(wantChunks) == 0 && len(tc.batch) > n {
					t.Error("the case seals nothing: it tests less than it says")
				}
			})
		}
	}
}
