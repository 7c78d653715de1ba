package sessions

import (
	"cmp"
	"slices"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// MaxEntries bounds a timeline: a session with more hits and events keeps
// its newest MaxEntries, the oldest go first. It keeps a table value (and
// the table topic's records) small whatever a misbehaving client sends.
const MaxEntries = 500

// Retention is how long a timeline keeps an entry: entries older than
// Retention before the time of the record being processed are dropped
// whenever the timeline is written.
const Retention = 60 * 24 * time.Hour

// EntryTime is the time that orders an entry in its timeline, in Unix
// microseconds: a hit's received time; an event's device time when it has
// one, its received time otherwise.
func EntryTime(e *livetabv1.TimelineEntry) int64 {
	switch {
	case e.GetHit() != nil:
		return e.GetHit().GetReceivedUs()
	case e.GetEvent() != nil:
		if t := e.GetEvent().GetTimeUs(); t > 0 {
			return t
		}
		return e.GetEvent().GetReceivedUs()
	}
	return 0
}

// entryID identifies an entry for deduplication. Hits and events get
// distinct prefixes because their ids are minted by different parties.
func entryID(e *livetabv1.TimelineEntry) string {
	switch {
	case e.GetHit() != nil:
		return "h:" + e.GetHit().GetId()
	case e.GetEvent() != nil:
		return "e:" + e.GetEvent().GetId()
	}
	return ""
}

// compareEntries orders entries by time, ties by id.
func compareEntries(a, b *livetabv1.TimelineEntry) int {
	if c := cmp.Compare(EntryTime(a), EntryTime(b)); c != 0 {
		return c
	}
	return cmp.Compare(entryID(a), entryID(b))
}

// cutoff is the oldest entry time kept at now; a zero now (a record
// without a timestamp) drops nothing.
func cutoff(now time.Time) (int64, bool) {
	if now.IsZero() {
		return 0, false
	}
	return now.Add(-Retention).UnixMicro(), true
}

// Insert adds e to tl in time order and then applies the bound and the
// retention as of now. It reports whether tl changed: an entry already in
// the timeline (a redelivery) changes nothing, and neither does one that
// would be dropped at once while nothing else is.
func Insert(tl *livetabv1.Timeline, e *livetabv1.TimelineEntry, now time.Time) bool {
	id := entryID(e)
	for _, x := range tl.Entries {
		if entryID(x) == id {
			return false
		}
	}
	i, _ := slices.BinarySearchFunc(tl.Entries, e, compareEntries)
	tl.Entries = slices.Insert(tl.Entries, i, e)
	n := len(tl.Entries)
	Trim(tl, now)
	// Trim drops a prefix. When e is in it, the timeline changed only if
	// something older than e went too.
	if dropped := n - len(tl.Entries); i < dropped {
		return dropped > 1
	}
	return true
}

// Trim drops the entries older than Retention before now, then the oldest
// entries beyond MaxEntries. It reports whether it dropped any.
func Trim(tl *livetabv1.Timeline, now time.Time) bool {
	n := len(tl.Entries)
	if min, ok := cutoff(now); ok {
		// Entries are in time order, so the expired ones are a prefix.
		i := 0
		for i < len(tl.Entries) && EntryTime(tl.Entries[i]) < min {
			i++
		}
		tl.Entries = tl.Entries[i:]
	}
	if extra := len(tl.Entries) - MaxEntries; extra > 0 {
		tl.Entries = tl.Entries[extra:]
	}
	if len(tl.Entries) == n {
		return false
	}
	// Let the dropped prefix be collected.
	tl.Entries = slices.Clone(tl.Entries)
	return true
}

// Expire applies the retention as of now to a stored timeline: it drops
// the expired entries (Trim) and reports whether tl changed and whether
// nothing is left of it, so that the session is to be deleted. A timeline
// without entries is kept while its conversion is younger than Retention:
// the conversion may have arrived before the session's first entry.
func Expire(tl *livetabv1.Timeline, now time.Time) (changed, gone bool) {
	if now.IsZero() {
		return false, false
	}
	changed = Trim(tl, now)
	if len(tl.Entries) > 0 {
		return changed, false
	}
	if c := tl.GetConversion(); c != nil {
		if min, _ := cutoff(now); c.GetTimeUs() >= min {
			return changed, false
		}
	}
	return changed, true
}

// PairApp records on an app session's timeline the conversion c that
// paired it with c.HitSession. A timeline that is already paired keeps its
// pairing (one conversion per app session) and PairApp reports false.
func PairApp(tl *livetabv1.Timeline, c *livetabv1.Conversion) bool {
	return pair(tl, c.GetAppSession(), c.GetHitSession(), c)
}

// PairHit records on a hit session's timeline the conversion c that paired
// it with c.AppSession. Like PairApp, the first pairing is kept.
func PairHit(tl *livetabv1.Timeline, c *livetabv1.Conversion) bool {
	return pair(tl, c.GetHitSession(), c.GetAppSession(), c)
}

func pair(tl *livetabv1.Timeline, self, other string, c *livetabv1.Conversion) bool {
	if tl.GetPairedSession() != "" {
		return false
	}
	if tl.Session == "" {
		tl.Session = self
	}
	if tl.Account == "" {
		tl.Account = c.GetAccount()
	}
	tl.PairedSession = other
	tl.Conversion = c
	return true
}
