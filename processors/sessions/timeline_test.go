package sessions_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/sessions"
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

func ids(tl *livetabv1.Timeline) []string {
	var out []string
	for _, e := range tl.GetEntries() {
		if e.GetHit() != nil {
			out = append(out, e.GetHit().GetId())
		} else {
			out = append(out, e.GetEvent().GetId())
		}
	}
	return out
}

func timelineOf(entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
	tl := &livetabv1.Timeline{}
	for _, e := range entries {
		sessions.Insert(tl, e, time.Time{})
	}
	return tl
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

func TestInsert(t *testing.T) {
	full := func() *livetabv1.Timeline {
		tl := &livetabv1.Timeline{}
		for i := range sessions.MaxEntries {
			sessions.Insert(tl, hitEntry(fmt.Sprintf("h%03d", i), time.Duration(i)*time.Second), time.Time{})
		}
		return tl
	}
	tests := []struct {
		name        string
		tl          *livetabv1.Timeline
		entry       *livetabv1.TimelineEntry
		now         time.Time
		wantChanged bool
		wantIDs     []string // nil: only check the length
		wantLen     int
		wantFirst   string
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
			name:        "bound drops the oldest",
			tl:          full(),
			entry:       hitEntry("new", time.Hour),
			wantChanged: true,
			wantLen:     sessions.MaxEntries,
			wantFirst:   "h001",
		},
		{
			name:        "older than a full timeline changes nothing",
			tl:          full(),
			entry:       hitEntry("old", -time.Hour),
			wantChanged: false,
			wantLen:     sessions.MaxEntries,
			wantFirst:   "h000",
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.Clone(tt.tl)
			changed := sessions.Insert(tt.tl, tt.entry, tt.now)
			if changed != tt.wantChanged {
				t.Errorf("changed = %v, want %v", changed, tt.wantChanged)
			}
			if !changed && !proto.Equal(before, tt.tl) {
				t.Errorf("reported unchanged but the timeline changed: %v", ids(tt.tl))
			}
			got := ids(tt.tl)
			if tt.wantIDs != nil && !slices.Equal(got, tt.wantIDs) {
				t.Errorf("entries = %v, want %v", got, tt.wantIDs)
			}
			if tt.wantLen != 0 && len(got) != tt.wantLen {
				t.Errorf("%d entries, want %d", len(got), tt.wantLen)
			}
			if tt.wantFirst != "" && got[0] != tt.wantFirst {
				t.Errorf("first entry %s, want %s", got[0], tt.wantFirst)
			}
			if !slices.IsSortedFunc(tt.tl.Entries, func(a, b *livetabv1.TimelineEntry) int {
				return int(sessions.EntryTime(a) - sessions.EntryTime(b))
			}) {
				t.Errorf("entries not in time order: %v", got)
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
	conv := func(at time.Duration) *livetabv1.Conversion {
		return &livetabv1.Conversion{Id: "cv-app", HitSession: "web", AppSession: "app", TimeUs: us(at)}
	}
	paired := func(c *livetabv1.Conversion, entries ...*livetabv1.TimelineEntry) *livetabv1.Timeline {
		tl := timelineOf(entries...)
		tl.PairedSession, tl.Conversion = "web", c
		return tl
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
		{"some expired", timelineOf(hitEntry("a", -61*24*time.Hour), hitEntry("b", -time.Hour)), t0, true, false, []string{"b"}},
		{"exactly the retention is kept", timelineOf(hitEntry("a", -sessions.Retention)), t0, false, false, []string{"a"}},
		{"all expired", timelineOf(hitEntry("a", -61*24*time.Hour), eventEntry("e", nil, -70*24*time.Hour)), t0, true, true, nil},
		{"paired before its entries, recently", paired(conv(-time.Hour)), t0, false, false, nil},
		{"paired long ago, entries expired", paired(conv(-61*24*time.Hour), hitEntry("a", -61*24*time.Hour)), t0, true, true, nil},
		{"paired long ago, entries kept", paired(conv(-61*24*time.Hour), hitEntry("a", -time.Hour)), t0, false, false, []string{"a"}},
		{"zero time does nothing", timelineOf(hitEntry("a", -365*24*time.Hour)), time.Time{}, false, false, []string{"a"}},
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
