package sessions_test

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func us(d time.Duration) int64 { return t0.Add(d).UnixMicro() }

func hitEntry(id string, at time.Duration) *livetabv1.TimelineEntry {
	return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{Hit: &livetabv1.Hit{Id: id, ReceivedUs: us(at)}}}
}

// eventEntry has device time at (none when at is nil) and received time recv.
func eventEntry(id string, at *time.Duration, recv time.Duration) *livetabv1.TimelineEntry {
	ev := &livetabv1.Event{Id: id, ReceivedUs: us(recv)}
	if at != nil {
		ev.TimeUs = us(*at)
	}
	return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: ev}}
}

func dur(d time.Duration) *time.Duration { return &d }

// enc is e as a timeline stores it.
func enc(e *livetabv1.TimelineEntry) *livetabv1.Timeline_Stored {
	s, err := sessions.NewEntry(e)
	if err != nil {
		// Every entry of these tests encodes; one that does not would show
		// in the failures as an entry that does not decode.
		return &livetabv1.Timeline_Stored{Id: "unencodable: " + err.Error()}
	}
	return s
}

// encAll are entries as a timeline stores them.
func encAll(entries ...*livetabv1.TimelineEntry) []*livetabv1.Timeline_Stored {
	var out []*livetabv1.Timeline_Stored
	for _, e := range entries {
		out = append(out, enc(e))
	}
	return out
}

// entriesOf are the entries of tl, a stored value or Read's answer: its
// decoded entries and its stored ones, decoded. A stored entry that does
// not decode, or whose id or time is not its entry's, is nil.
func entriesOf(tl *livetabv1.Timeline) []*livetabv1.TimelineEntry {
	out := slices.Clone(tl.GetEntries())
	for _, s := range tl.GetStored() {
		e := &livetabv1.TimelineEntry{}
		if err := proto.Unmarshal(s.GetEntry(), e); err != nil || s.GetTimeUs() != sessions.EntryTime(e) || s.GetId() != idOf(e) {
			e = nil
		}
		out = append(out, e)
	}
	return out
}

// idOf is e's dedupe id: "h:" or "e:" and the hit's or event's id.
func idOf(e *livetabv1.TimelineEntry) string {
	switch {
	case e.GetHit() != nil:
		return "h:" + e.GetHit().GetId()
	case e.GetEvent() != nil:
		return "e:" + e.GetEvent().GetId()
	}
	return ""
}

// ids are the hit and event ids of entriesOf(tl); "!bad" marks an entry
// that is neither, or a stored one that is not what it says.
func ids(tl *livetabv1.Timeline) []string {
	var out []string
	for _, e := range entriesOf(tl) {
		switch {
		case e.GetHit() != nil:
			out = append(out, e.GetHit().GetId())
		case e.GetEvent() != nil:
			out = append(out, e.GetEvent().GetId())
		default:
			out = append(out, "!bad")
		}
	}
	return out
}

// timelineOf is an open chunk of entries (at most ChunkSize), in time order.
func timelineOf(entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
	tl := &livetabv1.Timeline{}
	for _, e := range entries {
		sessions.Add(tl, enc(e), time.Time{})
	}
	return tl
}

// hits are entries h<from>..h<to-1>, a second apart from at.
func hits(from, to int, at time.Duration) []*livetabv1.TimelineEntry {
	var out []*livetabv1.TimelineEntry
	for i := from; i < to; i++ {
		out = append(out, hitEntry(fmt.Sprintf("h%03d", i), at+time.Duration(i)*time.Second))
	}
	return out
}

func hitIDs(from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, fmt.Sprintf("h%03d", i))
	}
	return out
}

func inTimeOrder(tl *livetabv1.Timeline) bool {
	return slices.IsSortedFunc(entriesOf(tl), func(a, b *livetabv1.TimelineEntry) int {
		return cmp.Compare(sessions.EntryTime(a), sessions.EntryTime(b))
	})
}

func TestEntryTime(t *testing.T) {
	tests := []struct {
		name  string
		entry *livetabv1.TimelineEntry
		want  int64
	}{
		{"hit uses received", hitEntry("h", time.Minute), us(time.Minute)},
		{"event uses device time", eventEntry("e", dur(-time.Hour), time.Minute), us(-time.Hour)},
		{"event without device time uses received", eventEntry("e", nil, time.Minute), us(time.Minute)},
		{"empty entry", &livetabv1.TimelineEntry{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sessions.EntryTime(tt.entry); got != tt.want {
				t.Fatalf("EntryTime = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestChunkKey(t *testing.T) {
	for _, session := range []string{"s1", "web/1", "a/b/c", "x/c0", "ünï/c3"} {
		for _, i := range []uint32{0, 7, 4294967295} {
			key := sessions.ChunkKey(session, i)
			s, j, ok := sessions.ParseChunkKey(key)
			if !ok || s != session || j != i {
				t.Errorf("ParseChunkKey(ChunkKey(%q, %d)) = %q, %d, %v", session, i, s, j, ok)
			}
			if !strings.HasPrefix(key, session+topics.KeySeparator) {
				t.Errorf("ChunkKey(%q, %d) = %q does not start with the session and a separator", session, i, key)
			}
			// Co-partitioned with the session, separators or not.
			if hk, hs := hash(key), hash(session); hk != hs {
				t.Errorf("ChunkKey(%q, %d) hashes to %d, the session to %d", session, i, hk, hs)
			}
		}
	}
	// No session id (valid UTF-8) is a chunk key, even one that looks
	// like one.
	for _, key := range []string{"s1", "x/c0", "x/c", "web/1", "", "/\xffc0", "s/\xffc", "s/\xffc01", "s/\xffc-1", "s/\xffcx", "s/\xffc4294967296",
		"s/\xffc1/\xffc2"} {
		if s, i, ok := sessions.ParseChunkKey(key); ok {
			t.Errorf("ParseChunkKey(%q) = %q, %d: a chunk key", key, s, i)
		}
	}
	if sessions.ChunkKey("x", 0) == "x/c0" {
		t.Error("chunk 0 of x is the key of session x/c0")
	}
}

func hash(key string) uint32 {
	h := topics.Hasher()
	h.Write([]byte(key))
	return h.Sum32()
}

func TestAdd(t *testing.T) {
	full := func() *livetabv1.Timeline {
		tl := timelineOf(hits(0, sessions.ChunkSize, 0)...)
		tl.Session, tl.Account = "s1", "acme"
		return tl
	}
	tests := []struct {
		name        string
		tl          *livetabv1.Timeline
		entry       *livetabv1.TimelineEntry
		now         time.Time
		wantChanged bool
		wantIDs     []string
		wantSealed  []string // nil: no chunk sealed
		wantChunks  uint32
		wantUntil   int64
	}{
		{
			name:        "into empty",
			tl:          &livetabv1.Timeline{},
			entry:       hitEntry("h1", 0),
			wantChanged: true,
			wantIDs:     []string{"h1"},
		},
		{
			name:        "in time order",
			tl:          timelineOf(hitEntry("h1", 0), hitEntry("h3", 2*time.Second)),
			entry:       eventEntry("e2", dur(time.Second), time.Hour),
			wantChanged: true,
			wantIDs:     []string{"h1", "e2", "h3"},
		},
		{
			name:        "event without device time by received",
			tl:          timelineOf(hitEntry("h1", 0), hitEntry("h3", 2*time.Second)),
			entry:       eventEntry("e2", nil, time.Second),
			wantChanged: true,
			wantIDs:     []string{"h1", "e2", "h3"},
		},
		{
			name:        "ties by id",
			tl:          timelineOf(hitEntry("b", 0), hitEntry("d", 0)),
			entry:       hitEntry("c", 0),
			wantChanged: true,
			wantIDs:     []string{"b", "c", "d"},
		},
		{
			name:        "same hit again",
			tl:          timelineOf(hitEntry("h1", 0), hitEntry("h2", time.Second)),
			entry:       hitEntry("h1", 0),
			wantChanged: false,
			wantIDs:     []string{"h1", "h2"},
		},
		{
			name:        "same event again with another received time",
			tl:          timelineOf(eventEntry("e1", nil, 0)),
			entry:       eventEntry("e1", nil, time.Minute),
			wantChanged: false,
			wantIDs:     []string{"e1"},
		},
		{
			name:        "hit and event may share an id",
			tl:          timelineOf(hitEntry("x", 0)),
			entry:       eventEntry("x", nil, time.Second),
			wantChanged: true,
			wantIDs:     []string{"x", "x"},
		},
		{
			name:        "retention drops expired entries",
			tl:          timelineOf(hitEntry("old", -61*24*time.Hour), hitEntry("kept", -59*24*time.Hour)),
			entry:       hitEntry("h", 0),
			now:         t0,
			wantChanged: true,
			wantIDs:     []string{"kept", "h"},
		},
		{
			name:        "retention keeps exactly 60 days",
			tl:          timelineOf(hitEntry("edge", -sessions.Retention)),
			entry:       hitEntry("h", 0),
			now:         t0,
			wantChanged: true,
			wantIDs:     []string{"edge", "h"},
		},
		{
			name:        "expired entry alone changes nothing",
			tl:          timelineOf(hitEntry("kept", -time.Hour)),
			entry:       hitEntry("old", -61*24*time.Hour),
			now:         t0,
			wantChanged: false,
			wantIDs:     []string{"kept"},
		},
		{
			name:        "expired entry with other expired entries changes",
			tl:          timelineOf(hitEntry("old1", -70*24*time.Hour), hitEntry("kept", -time.Hour)),
			entry:       hitEntry("old2", -61*24*time.Hour),
			now:         t0,
			wantChanged: true,
			wantIDs:     []string{"kept"},
		},
		{
			name:        "no timestamp drops nothing",
			tl:          timelineOf(hitEntry("old", -365*24*time.Hour)),
			entry:       hitEntry("h", 0),
			wantChanged: true,
			wantIDs:     []string{"old", "h"},
		},
		{
			name:        "one short of full seals nothing",
			tl:          timelineOf(hits(0, sessions.ChunkSize-1, 0)...),
			entry:       hitEntry("new", time.Hour),
			wantChanged: true,
			wantIDs:     append(hitIDs(0, sessions.ChunkSize-1), "new"),
		},
		{
			name:        "full seals before adding",
			tl:          full(),
			entry:       hitEntry("new", time.Hour),
			wantChanged: true,
			wantIDs:     []string{"new"},
			wantSealed:  hitIDs(0, sessions.ChunkSize),
			wantChunks:  1,
			wantUntil:   us(time.Duration(sessions.ChunkSize-1) * time.Second),
		},
		{
			name:        "full and older than the chunk seals, the older entry opens the next",
			tl:          full(),
			entry:       hitEntry("old", -time.Hour),
			wantChanged: true,
			wantIDs:     []string{"old"},
			wantSealed:  hitIDs(0, sessions.ChunkSize),
			wantChunks:  1,
			wantUntil:   us(time.Duration(sessions.ChunkSize-1) * time.Second),
		},
		{
			name:        "full and redelivered seals nothing",
			tl:          full(),
			entry:       hitEntry("h003", 3*time.Second),
			wantChanged: false,
			wantIDs:     hitIDs(0, sessions.ChunkSize),
		},
		{
			name:        "full and expired seals nothing",
			tl:          full(),
			entry:       hitEntry("old", -61*24*time.Hour),
			now:         t0,
			wantChanged: false,
			wantIDs:     hitIDs(0, sessions.ChunkSize),
		},
		{
			name: "full after the retention's trim seals nothing",
			tl: func() *livetabv1.Timeline {
				tl := timelineOf(hits(1, sessions.ChunkSize, 0)...)
				sessions.Add(tl, enc(hitEntry("old", -61*24*time.Hour)), time.Time{})
				return tl
			}(),
			entry:       hitEntry("new", time.Hour),
			now:         t0,
			wantChanged: true,
			wantIDs:     append(hitIDs(1, sessions.ChunkSize), "new"),
		},
		{
			name: "the newest sealed time only grows",
			tl: func() *livetabv1.Timeline {
				tl := full()
				tl.Chunks, tl.SealedUntilUs = 3, us(time.Hour)
				return tl
			}(),
			entry:       hitEntry("new", 2*time.Hour),
			wantChanged: true,
			wantIDs:     []string{"new"},
			wantSealed:  hitIDs(0, sessions.ChunkSize),
			wantChunks:  4,
			wantUntil:   us(time.Hour),
		},
		{
			name: "a value of more than a chunk (written before chunks) is sealed whole",
			tl: &livetabv1.Timeline{Session: "s1", Account: "acme",
				Entries: hits(0, sessions.MaxEntries, 0)},
			entry:       hitEntry("new", time.Hour),
			wantChanged: true,
			wantIDs:     []string{"new"},
			wantSealed:  hitIDs(0, sessions.MaxEntries),
			wantChunks:  1,
			wantUntil:   us(time.Duration(sessions.MaxEntries-1) * time.Second),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.Clone(tt.tl)
			sealed, changed := sessions.Add(tt.tl, enc(tt.entry), tt.now)
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !changed && !proto.Equal(before, tt.tl) {
				t.Errorf("reported unchanged but the timeline changed: %v", ids(tt.tl))
			}
			if got := ids(tt.tl); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("entries = %v, want %v", got, tt.wantIDs)
			}
			if !inTimeOrder(tt.tl) {
				t.Errorf("entries not in time order: %v", ids(tt.tl))
			}
			switch {
			case tt.wantSealed == nil && sealed != nil:
				t.Errorf("sealed %v, want nothing", ids(sealed))
			case tt.wantSealed != nil && sealed == nil:
				t.Errorf("sealed nothing, want %v", tt.wantSealed)
			case sealed != nil:
				if got := ids(sealed); !slices.Equal(got, tt.wantSealed) {
					t.Errorf("sealed %v, want %v", got, tt.wantSealed)
				}
				if sealed.GetSession() != before.(*livetabv1.Timeline).GetSession() || sealed.GetAccount() != before.(*livetabv1.Timeline).GetAccount() ||
					sealed.GetChunks() != 0 || sealed.GetPairedSession() != "" {
					t.Errorf("sealed chunk %v, want only the session, account and entries", sealed)
				}
			}
			if tt.tl.GetChunks() != tt.wantChunks || tt.tl.GetSealedUntilUs() != tt.wantUntil {
				t.Errorf("chunks %d sealed until %d, want %d and %d", tt.tl.GetChunks(), tt.tl.GetSealedUntilUs(), tt.wantChunks, tt.wantUntil)
			}
		})
	}
}

func TestTrim(t *testing.T) {
	tests := []struct {
		name    string
		tl      *livetabv1.Timeline
		now     time.Time
		want    bool
		wantIDs []string
	}{
		{"nothing to drop", timelineOf(hitEntry("a", 0)), t0, false, []string{"a"}},
		{"expired prefix", timelineOf(hitEntry("a", -90*24*time.Hour), hitEntry("b", -61*24*time.Hour), hitEntry("c", 0)), t0, true, []string{"c"}},
		{"all expired", timelineOf(hitEntry("a", -90*24*time.Hour)), t0, true, nil},
		{"zero now", timelineOf(hitEntry("a", -90*24*time.Hour)), time.Time{}, false, []string{"a"}},
		{"more than a chunk, none dropped", &livetabv1.Timeline{Entries: hits(0, sessions.MaxEntries+1, 0)}, t0, false, hitIDs(0, sessions.MaxEntries+1)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sessions.Trim(tt.tl, tt.now); got != tt.want {
				t.Errorf("Trim = %v, want %v", got, tt.want)
			}
			if got := ids(tt.tl); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("entries = %v, want %v", got, tt.wantIDs)
			}
		})
	}
}

func TestPair(t *testing.T) {
	c := &livetabv1.Conversion{Id: "cv-app", Account: "acme", HitSession: "web", AppSession: "app"}
	other := &livetabv1.Conversion{Id: "cv-app", Account: "acme", HitSession: "web2", AppSession: "app"}
	tests := []struct {
		name   string
		pair   func(*livetabv1.Timeline, *livetabv1.Conversion) bool
		tl     *livetabv1.Timeline
		c      *livetabv1.Conversion
		want   bool
		wantTL *livetabv1.Timeline
	}{
		{
			name: "app side of a new session",
			pair: sessions.PairApp, tl: &livetabv1.Timeline{}, c: c, want: true,
			wantTL: &livetabv1.Timeline{Session: "app", Account: "acme", PairedSession: "web", Conversion: c},
		},
		{
			name: "hit side of a new session",
			pair: sessions.PairHit, tl: &livetabv1.Timeline{}, c: c, want: true,
			wantTL: &livetabv1.Timeline{Session: "web", Account: "acme", PairedSession: "app", Conversion: c},
		},
		{
			name: "keeps entries",
			pair: sessions.PairApp, tl: &livetabv1.Timeline{Session: "app", Account: "acme", Entries: []*livetabv1.TimelineEntry{hitEntry("h", 0)}},
			c: c, want: true,
			wantTL: &livetabv1.Timeline{Session: "app", Account: "acme", Entries: []*livetabv1.TimelineEntry{hitEntry("h", 0)}, PairedSession: "web", Conversion: c},
		},
		{
			name: "already paired keeps the first",
			pair: sessions.PairApp, tl: &livetabv1.Timeline{Session: "app", Account: "acme", PairedSession: "web", Conversion: c},
			c: other, want: false,
			wantTL: &livetabv1.Timeline{Session: "app", Account: "acme", PairedSession: "web", Conversion: c},
		},
		{
			name: "hit side already paired keeps the first",
			pair: sessions.PairHit, tl: &livetabv1.Timeline{Session: "web", Account: "acme", PairedSession: "app0"},
			c: c, want: false,
			wantTL: &livetabv1.Timeline{Session: "web", Account: "acme", PairedSession: "app0"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.pair(tt.tl, tt.c); got != tt.want {
				t.Errorf("changed = %v, want %v", got, tt.want)
			}
			if !proto.Equal(tt.tl, tt.wantTL) {
				t.Errorf("timeline = %v, want %v", tt.tl, tt.wantTL)
			}
		})
	}
}

func TestExpire(t *testing.T) {
	day := 24 * time.Hour
	conv := func(at time.Duration) *livetabv1.Conversion {
		return &livetabv1.Conversion{Id: "cv-app", HitSession: "web", AppSession: "app", TimeUs: us(at)}
	}
	paired := func(c *livetabv1.Conversion, entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
		tl := timelineOf(entries...)
		tl.PairedSession, tl.Conversion = "web", c
		return tl
	}
	sealed := func(until time.Duration, entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
		tl := timelineOf(entries...)
		tl.Chunks, tl.SealedUntilUs = 2, us(until)
		return tl
	}
	chunk := func(entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
		return &livetabv1.Timeline{Session: "s1", Account: "acme", Stored: encAll(entries...)}
	}
	// A chunk written before entries were stored encoded.
	decodedChunk := func(entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
		return &livetabv1.Timeline{Session: "s1", Account: "acme", Entries: entries}
	}
	tests := []struct {
		name        string
		tl          *livetabv1.Timeline
		now         time.Time
		wantChanged bool
		wantGone    bool
		wantIDs     []string
	}{
		{"nothing expired", timelineOf(hitEntry("a", -time.Hour)), t0, false, false, []string{"a"}},
		{"some expired", timelineOf(hitEntry("a", -61*day), hitEntry("b", -time.Hour)), t0, true, false, []string{"b"}},
		{"exactly the retention is kept", timelineOf(hitEntry("a", -sessions.Retention)), t0, false, false, []string{"a"}},
		{"all expired", timelineOf(hitEntry("a", -61*day), eventEntry("e", nil, -70*day)), t0, true, true, nil},
		{"paired before its entries, recently", paired(conv(-time.Hour)), t0, false, false, nil},
		{"paired long ago, entries expired", paired(conv(-61*day), hitEntry("a", -61*day)), t0, true, true, nil},
		{"paired long ago, entries kept", paired(conv(-61*day), hitEntry("a", -time.Hour)), t0, false, false, []string{"a"}},
		{"zero time does nothing", timelineOf(hitEntry("a", -365*day)), time.Time{}, false, false, []string{"a"}},
		{"open chunk expired, a sealed entry is young", sealed(-day, hitEntry("a", -61*day)), t0, true, false, nil},
		{"open chunk empty, a sealed entry is exactly the retention", sealed(-sessions.Retention), t0, false, false, nil},
		{"open chunk expired, sealed ones too", sealed(-61*day, hitEntry("a", -61*day)), t0, true, true, nil},
		{"a chunk partly expired", chunk(hitEntry("a", -61*day), hitEntry("b", -day)), t0, true, false, []string{"b"}},
		{"a chunk expired", chunk(hitEntry("a", -62*day), hitEntry("b", -61*day)), t0, true, true, nil},
		{"a decoded chunk partly expired", decodedChunk(hitEntry("a", -61*day), hitEntry("b", -day)), t0, true, false, []string{"b"}},
		{"a decoded chunk expired", decodedChunk(hitEntry("a", -62*day), hitEntry("b", -61*day)), t0, true, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			changed, gone := sessions.Expire(tt.tl, tt.now)
			if changed != tt.wantChanged || gone != tt.wantGone {
				t.Errorf("Expire = changed %v gone %v, want %v %v", changed, gone, tt.wantChanged, tt.wantGone)
			}
			if got := ids(tt.tl); !slices.Equal(got, tt.wantIDs) {
				t.Errorf("entries = %v, want %v", got, tt.wantIDs)
			}
		})
	}
}

// fakeTable is a sessions table for Read: values by key.
type fakeTable map[string]*livetabv1.Timeline

func (tb fakeTable) get(key string) (*livetabv1.Timeline, error) { return tb[key], nil }

// chunked stores a session the way the processor does: every entry added
// in turn, each sealed chunk under its key and the oldest dropped.
func (tb fakeTable) chunked(session string, entries ...*livetabv1.TimelineEntry) {
	tl := &livetabv1.Timeline{Session: session, Account: "acme"}
	for _, e := range entries {
		sealed, _ := sessions.Add(tl, enc(e), time.Time{})
		if sealed == nil {
			continue
		}
		tb[sessions.ChunkKey(session, tl.Chunks-1)] = sealed
		if tl.Chunks > sessions.MaxChunks {
			delete(tb, sessions.ChunkKey(session, tl.Chunks-1-sessions.MaxChunks))
		}
	}
	tb[session] = tl
}

func TestRead(t *testing.T) {
	const n = sessions.ChunkSize
	conv := &livetabv1.Conversion{Id: "cv", Account: "acme", HitSession: "web", AppSession: "s1"}
	tests := []struct {
		name    string
		table   func() fakeTable
		session string
		want    []string // nil: no timeline
		check   func(t *testing.T, tl *livetabv1.Timeline)
	}{
		{
			name:    "unknown session",
			table:   func() fakeTable { return fakeTable{} },
			session: "s1",
		},
		{
			name:    "open chunk only",
			table:   func() fakeTable { tb := fakeTable{}; tb.chunked("s1", hits(0, 3, 0)...); return tb },
			session: "s1",
			want:    hitIDs(0, 3),
		},
		{
			name:    "across chunks",
			table:   func() fakeTable { tb := fakeTable{}; tb.chunked("s1", hits(0, 3*n+2, 0)...); return tb },
			session: "s1",
			want:    hitIDs(0, 3*n+2),
			check: func(t *testing.T, tl *livetabv1.Timeline) {
				if tl.GetChunks() != 3 || tl.GetSession() != "s1" || tl.GetAccount() != "acme" {
					t.Errorf("header %q/%q with %d chunks, want s1/acme with 3", tl.GetSession(), tl.GetAccount(), tl.GetChunks())
				}
			},
		},
		{
			name: "a session id with separators",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("a/b", hits(0, n+1, 0)...)
				tb.chunked("a", hits(100, 100+2*n, 0)...)
				return tb
			},
			session: "a/b",
			want:    hitIDs(0, n+1),
		},
		{
			name: "header fields",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("s1", hits(0, n+1, 0)...)
				sessions.PairApp(tb["s1"], conv)
				return tb
			},
			session: "s1",
			want:    hitIDs(0, n+1),
			check: func(t *testing.T, tl *livetabv1.Timeline) {
				if tl.GetPairedSession() != "web" || !proto.Equal(tl.GetConversion(), conv) {
					t.Errorf("paired %q conversion %v, want web and %v", tl.GetPairedSession(), tl.GetConversion(), conv)
				}
			},
		},
		{
			name: "out of order across a seal",
			table: func() fakeTable {
				tb := fakeTable{}
				// The late entries are older than the sealed ones.
				tb.chunked("s1", append(hits(10, 10+n, 0), hitEntry("h001", time.Second), hitEntry("h000", 0))...)
				return tb
			},
			session: "s1",
			want:    append(hitIDs(0, 2), hitIDs(10, 10+n)...),
		},
		{
			name: "redelivered across a seal is read once",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("s1", append(hits(0, n+2, 0), hitEntry("h002", 2*time.Second), eventEntry("h002", nil, time.Hour))...)
				return tb
			},
			session: "s1",
			want:    append(hitIDs(0, n+2), "h002"),
			check: func(t *testing.T, tl *livetabv1.Timeline) {
				if e := tl.GetEntries()[len(tl.GetEntries())-1]; e.GetEvent() == nil {
					t.Errorf("newest entry %v, want the event that shares an id with a hit", e)
				}
			},
		},
		{
			name: "redelivered with another time keeps the first copy",
			table: func() fakeTable {
				// An event without device time, sent again: it was received
				// at 3h into chunk 0, then again at -1h (a replay with other
				// times) into the open chunk.
				return fakeTable{
					"s1": {Session: "s1", Account: "acme", Chunks: 1,
						Stored: encAll(eventEntry("e", nil, -time.Hour), hitEntry("h008", 8*time.Second))},
					sessions.ChunkKey("s1", 0): {Session: "s1", Account: "acme",
						Stored: encAll(append(hits(0, n, 0), eventEntry("e", nil, 3*time.Hour))...)},
				}
			},
			session: "s1",
			want:    append(hitIDs(0, n+1), "e"),
			check: func(t *testing.T, tl *livetabv1.Timeline) {
				if got := sessions.EntryTime(tl.GetEntries()[len(tl.GetEntries())-1]); got != us(3*time.Hour) {
					t.Errorf("e read at %d, want the copy of the oldest chunk at %d", got, us(3*time.Hour))
				}
			},
		},
		{
			name: "a missing chunk is skipped",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("s1", hits(0, 2*n+1, 0)...)
				delete(tb, sessions.ChunkKey("s1", 0))
				return tb
			},
			session: "s1",
			want:    hitIDs(n, 2*n+1),
		},
		{
			name: "at most the newest MaxEntries",
			table: func() fakeTable {
				tb := fakeTable{}
				// MaxChunks chunks and a full open one hold more.
				tb.chunked("s1", hits(0, (sessions.MaxChunks+2)*n, 0)...)
				return tb
			},
			session: "s1",
			want:    hitIDs((sessions.MaxChunks+2)*n-sessions.MaxEntries, (sessions.MaxChunks+2)*n),
		},
		{
			name: "chunks dropped from the window are not read",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("s1", hits(0, (sessions.MaxChunks+2)*n+1, 0)...)
				// A drop not applied yet.
				tb[sessions.ChunkKey("s1", 1)] = &livetabv1.Timeline{Session: "s1", Account: "acme", Stored: encAll(hitEntry("stale", time.Hour))}
				return tb
			},
			session: "s1",
			// Chunks 0 and 1 dropped; MaxChunks chunks and one entry left.
			want: hitIDs(2*n, (sessions.MaxChunks+2)*n+1),
		},
		{
			name: "a value written before chunks",
			table: func() fakeTable {
				return fakeTable{"s1": {Session: "s1", Account: "acme", Entries: hits(0, sessions.MaxEntries, 0)}}
			},
			session: "s1",
			want:    hitIDs(0, sessions.MaxEntries),
		},
		{
			name: "a chunk written before entries were stored encoded",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("s1", hits(0, n+2, 0)...)
				tb[sessions.ChunkKey("s1", 0)] = &livetabv1.Timeline{Session: "s1", Account: "acme", Entries: hits(0, n, 0)}
				return tb
			},
			session: "s1",
			want:    hitIDs(0, n+2),
		},
		{
			name: "a stored entry that does not decode is skipped",
			table: func() fakeTable {
				tb := fakeTable{}
				tb.chunked("s1", hits(0, 3, 0)...)
				bad := enc(hitEntry("bad", time.Second))
				bad.Entry = bad.Entry[:len(bad.Entry)-1]
				tb["s1"].Stored = append(tb["s1"].Stored, bad)
				return tb
			},
			session: "s1",
			want:    hitIDs(0, 3),
		},
		{
			name:    "a chunk key is not a session",
			table:   func() fakeTable { tb := fakeTable{}; tb.chunked("s1", hits(0, n+1, 0)...); return tb },
			session: sessions.ChunkKey("s1", 0),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sessions.Read(tt.table().get, tt.session)
			if err != nil {
				t.Fatal(err)
			}
			if tt.want == nil {
				if got != nil {
					t.Fatalf("Read = %v, want nothing", got)
				}
				return
			}
			if got == nil {
				t.Fatal("Read = nil, want a timeline")
			}
			if ids := ids(got); !slices.Equal(ids, tt.want) {
				t.Errorf("entries %v, want %v", ids, tt.want)
			}
			if len(got.GetStored()) != 0 {
				t.Errorf("Read answered %d stored entries, want them decoded only", len(got.GetStored()))
			}
			if !inTimeOrder(got) {
				t.Errorf("entries not in time order: %v", ids(got))
			}
			if tt.check != nil {
				tt.check(t, got)
			}
		})
	}
}

func TestReadFails(t *testing.T) {
	tb := fakeTable{}
	tb.chunked("s1", hits(0, 2*sessions.ChunkSize+1, 0)...)
	boom := errors.New("boom")
	for _, failing := range []string{"s1", sessions.ChunkKey("s1", 1)} {
		get := func(key string) (*livetabv1.Timeline, error) {
			if key == failing {
				return nil, boom
			}
			return tb.get(key)
		}
		if tl, err := sessions.Read(get, "s1"); !errors.Is(err, boom) || tl != nil {
			t.Errorf("reading %q fails: Read = %v, %v; want the error", failing, tl, err)
		}
	}
}

func TestEntries(t *testing.T) {
	tl := timelineOf(hits(0, 3, 0)...)
	tl.Entries = []*livetabv1.TimelineEntry{hitEntry("old", -time.Hour)}
	got, err := sessions.Entries(tl)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]*livetabv1.TimelineEntry{hitEntry("old", -time.Hour)}, hits(0, 3, 0)...)
	if len(got) != len(want) {
		t.Fatalf("Entries = %v, want %v", got, want)
	}
	for i := range want {
		if !proto.Equal(got[i], want[i]) {
			t.Errorf("entry %d = %v, want %v", i, got[i], want[i])
		}
	}

	tl.Stored[1].Entry = []byte{0xff}
	if got, err := sessions.Entries(tl); !errors.Is(err, codecs.ErrDecode) {
		t.Errorf("Entries of a value with a corrupt entry = %v, %v; want an error wrapping codecs.ErrDecode", got, err)
	}
}
