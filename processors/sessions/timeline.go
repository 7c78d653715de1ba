package sessions

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// MaxEntries bounds a timeline: a session with more hits and events keeps
// its newest MaxEntries, the oldest go first. It keeps what the table holds
// for a session (and the table topic's records) bounded whatever a
// misbehaving client sends. The processor keeps at most MaxChunks sealed
// chunks and an open one; Read answers with the newest MaxEntries.
const MaxEntries = 500

// ChunkSize is how many entries a session's value (its open chunk) holds
// before the processor seals them into a chunk of their own. Every hit or
// event rewrites the open chunk, so its size is the per-entry cost; every
// sealed chunk is one more key for Read. 8 halves the per-entry cost of 16
// (see BenchmarkEventMessage) for 62 reads instead of 31 for a timeline at
// the bound, which only the timeline API does.
const ChunkSize = 8

// MaxChunks is how many sealed chunks a session keeps: sealing one more
// deletes the oldest.
const MaxChunks = MaxEntries / ChunkSize

// Retention is how long a timeline keeps an entry: entries older than
// Retention before the time of the record being processed are dropped
// whenever the open chunk is written, and from every chunk by the sweep
// (Expire).
const Retention = 60 * 24 * time.Hour

// chunkMark follows the KeySeparator in a chunk key. 0xff never occurs in
// UTF-8, and every session id is valid UTF-8 (a protobuf string, and the
// processor skips records keyed otherwise), so no session's key is ever
// another session's chunk key, whatever separators its id holds.
const chunkMark = "\xffc"

// ChunkKey is the table key of sealed chunk i (from 0, in the order of
// sealing) of session. topics.Hasher hashes a key up to its first
// separator, so the chunks of a session share its partition, also when the
// session id holds separators itself (its key hashes only up to the first
// of them, and so does the chunk key, which starts with the id).
func ChunkKey(session string, i uint32) string {
	return session + topics.KeySeparator + chunkMark + strconv.FormatUint(uint64(i), 10)
}

// ParseChunkKey splits a chunk key into its session and index; ok is false
// for any other key (a session's).
func ParseChunkKey(key string) (session string, i uint32, ok bool) {
	// The mark cannot occur in the session id, so its first occurrence
	// ends it.
	session, n, found := strings.Cut(key, topics.KeySeparator+chunkMark)
	if !found || session == "" || !utf8.ValidString(session) {
		return "", 0, false
	}
	v, err := strconv.ParseUint(n, 10, 32)
	if err != nil || strconv.FormatUint(v, 10) != n {
		return "", 0, false
	}
	return session, uint32(v), true
}

// isSessionKey reports whether key can be a session's key: a session id is
// valid UTF-8, and therefore never a chunk key.
func isSessionKey(key string) bool { return key != "" && utf8.ValidString(key) }

// oldestChunk is the index of the oldest chunk a session that sealed
// chunks keeps; the older ones were dropped.
func oldestChunk(chunks uint32) uint32 {
	if chunks > MaxChunks {
		return chunks - MaxChunks
	}
	return 0
}

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

// Add adds e to tl, a session's value, whose entries are the session's open
// chunk, in time order. It applies the retention as of now to the open
// chunk first; an entry that is expired at once, or that the open chunk
// holds already (a redelivery), is not added. When the open chunk is full,
// Add seals it before adding e: it returns the sealed chunk (session,
// account and the entries), to be stored under ChunkKey(tl.Session,
// tl.Chunks-1), and counts it in tl.Chunks. changed reports whether tl
// changed.
//
// Sealing before adding rather than after keeps the newest entries in the
// open chunk, where a redelivery of them is recognised.
func Add(tl *livetabv1.Timeline, e *livetabv1.TimelineEntry, now time.Time) (sealed *livetabv1.Timeline, changed bool) {
	id := entryID(e)
	if slices.ContainsFunc(tl.Entries, func(x *livetabv1.TimelineEntry) bool { return entryID(x) == id }) {
		return nil, false
	}
	changed = Trim(tl, now)
	if min, ok := cutoff(now); ok && EntryTime(e) < min {
		return nil, changed
	}
	if len(tl.Entries) >= ChunkSize {
		sealed = &livetabv1.Timeline{Session: tl.Session, Account: tl.Account, Entries: tl.Entries}
		// A chunk is in time order: its newest entry is its last.
		tl.SealedUntilUs = max(tl.SealedUntilUs, EntryTime(tl.Entries[len(tl.Entries)-1]))
		tl.Chunks++
		tl.Entries = make([]*livetabv1.TimelineEntry, 0, ChunkSize)
	}
	i, _ := slices.BinarySearchFunc(tl.Entries, e, compareEntries)
	tl.Entries = slices.Insert(tl.Entries, i, e)
	return sealed, true
}

// Trim drops the entries of tl, a chunk in time order, that are older than
// Retention before now. It reports whether it dropped any.
func Trim(tl *livetabv1.Timeline, now time.Time) bool {
	min, ok := cutoff(now)
	if !ok {
		return false
	}
	// Entries are in time order, so the expired ones are a prefix.
	i := 0
	for i < len(tl.Entries) && EntryTime(tl.Entries[i]) < min {
		i++
	}
	if i == 0 {
		return false
	}
	// Clone, so that the dropped prefix can be collected.
	tl.Entries = slices.Clone(tl.Entries[i:])
	return true
}

// Expire applies the retention as of now to a stored value, a session's
// or a sealed chunk's: it drops the expired entries (Trim) and reports
// whether tl changed and whether nothing is left of it, so that the key is
// to be deleted. A session's value without entries is kept while one of its
// sealed chunks holds an entry younger than Retention (SealedUntilUs), so
// that Read finds them, and while its conversion is younger than
// Retention: the conversion may have arrived before the session's first
// entry.
func Expire(tl *livetabv1.Timeline, now time.Time) (changed, gone bool) {
	min, ok := cutoff(now)
	if !ok {
		return false, false
	}
	changed = Trim(tl, now)
	switch {
	case len(tl.Entries) > 0:
		return changed, false
	case tl.GetChunks() > 0 && tl.GetSealedUntilUs() >= min:
		return changed, false
	case tl.GetConversion() != nil && tl.GetConversion().GetTimeUs() >= min:
		return changed, false
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

// Read returns session's whole timeline from the sessions table, which get
// reads (nil, nil for a key without a value): the fields of the session's
// value, with the entries of its open chunk and of its sealed chunks,
// deduplicated by id (the first stored copy is kept), in time order, at
// most the newest MaxEntries. It returns nil, nil when the session is not
// in the table; a key that is not a session's (a chunk key) is not one.
//
// A chunk that is missing (deleted by retention, or sealed so recently
// that its record is still on its way through the loop topic) is skipped:
// the answer is then short of those entries.
func Read(get func(key string) (*livetabv1.Timeline, error), session string) (*livetabv1.Timeline, error) {
	if !isSessionKey(session) {
		return nil, nil
	}
	head, err := get(session)
	if err != nil {
		return nil, fmt.Errorf("sessions: read session %q: %w", session, err)
	}
	if head == nil {
		return nil, nil
	}
	out := &livetabv1.Timeline{
		Session:       cmp.Or(head.GetSession(), session),
		Account:       head.GetAccount(),
		PairedSession: head.GetPairedSession(),
		Conversion:    head.GetConversion(),
		Chunks:        head.GetChunks(),
		SealedUntilUs: head.GetSealedUntilUs(),
	}
	var all []*livetabv1.TimelineEntry
	for i := oldestChunk(head.GetChunks()); i < head.GetChunks(); i++ {
		c, err := get(ChunkKey(session, i))
		if err != nil {
			return nil, fmt.Errorf("sessions: read chunk %d of session %q: %w", i, session, err)
		}
		all = append(all, c.GetEntries()...)
	}
	all = append(all, head.GetEntries()...)

	// Oldest chunk first, so the first copy of an entry is the one kept,
	// as Add keeps the first within the open chunk.
	seen := make(map[string]struct{}, len(all))
	entries := all[:0]
	for _, e := range all {
		id := entryID(e)
		if id == "" {
			continue
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		entries = append(entries, e)
	}
	// Chunks are each in time order, but entries arrive out of order, so an
	// open chunk (or a later chunk) may hold entries older than a sealed one.
	slices.SortFunc(entries, compareEntries)
	if extra := len(entries) - MaxEntries; extra > 0 {
		entries = entries[extra:]
	}
	if len(entries) > 0 {
		out.Entries = slices.Clip(entries)
	}
	return out, nil
}
