package sessions

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
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
// ReadHit and ReadEvent build the same ids.
func entryID(e *livetabv1.TimelineEntry) string {
	switch {
	case e.GetHit() != nil:
		return "h:" + e.GetHit().GetId()
	case e.GetEvent() != nil:
		return "e:" + e.GetEvent().GetId()
	}
	return ""
}

// NewEntry is e as a timeline stores it: its id, its time (EntryTime) and
// its encoding. The processor builds its entries from the records instead
// (ReadHit, ReadEvent), which gives the same entry without decoding them.
// It fails for an entry with neither hit nor event, and for one that does
// not encode (a string that is not UTF-8).
func NewEntry(e *livetabv1.TimelineEntry) (*livetabv1.Timeline_Stored, error) {
	id := entryID(e)
	if id == "" {
		return nil, errors.New("sessions: timeline entry with neither hit nor event")
	}
	b, err := proto.Marshal(e)
	if err != nil {
		return nil, fmt.Errorf("sessions: encode timeline entry %s: %w", id, err)
	}
	return &livetabv1.Timeline_Stored{Id: id, TimeUs: EntryTime(e), Entry: b}, nil
}

// compareStored orders stored entries by time, ties by id.
func compareStored(a, b *livetabv1.Timeline_Stored) int {
	if c := cmp.Compare(a.GetTimeUs(), b.GetTimeUs()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetId(), b.GetId())
}

// cutoff is the oldest entry time kept at now; a zero now (a record
// without a timestamp) drops nothing.
func cutoff(now time.Time) (int64, bool) {
	if now.IsZero() {
		return 0, false
	}
	return now.Add(-Retention).UnixMicro(), true
}

// Add adds e to tl, a session's value, whose stored entries are the
// session's open chunk, in time order. It reads only the id and time of the
// entries: their encodings are copied, never parsed. It applies the
// retention as of now to the open chunk first; an entry that is expired at
// once, or that the open chunk holds already (a redelivery), is not added.
// When the open chunk is full, Add seals it before adding e: it returns the
// sealed chunk (session, account and the stored entries), to be stored
// under ChunkKey(tl.Session, tl.Chunks-1), and counts it in tl.Chunks.
// changed reports whether tl changed.
//
// Sealing before adding rather than after keeps the newest entries in the
// open chunk, where a redelivery of them is recognised.
//
// A value that holds decoded entries (Timeline.entries, the layout before
// entries were stored encoded) has them encoded into its open chunk first,
// which may thus seal more than ChunkSize entries at once.
func Add(tl *livetabv1.Timeline, e *livetabv1.Timeline_Stored, now time.Time) (sealed *livetabv1.Timeline, changed bool) {
	id := e.GetId()
	if slices.ContainsFunc(tl.Stored, func(x *livetabv1.Timeline_Stored) bool { return x.GetId() == id }) ||
		slices.ContainsFunc(tl.Entries, func(x *livetabv1.TimelineEntry) bool { return entryID(x) == id }) {
		return nil, false
	}
	changed = Trim(tl, now)
	if min, ok := cutoff(now); ok && e.GetTimeUs() < min {
		return nil, changed
	}
	encodeEntries(tl)
	if len(tl.Stored) >= ChunkSize {
		sealed = &livetabv1.Timeline{Session: tl.Session, Account: tl.Account, Stored: tl.Stored}
		// A chunk is in time order: its newest entry is its last.
		tl.SealedUntilUs = max(tl.SealedUntilUs, tl.Stored[len(tl.Stored)-1].GetTimeUs())
		tl.Chunks++
		tl.Stored = make([]*livetabv1.Timeline_Stored, 0, ChunkSize)
	}
	i, _ := slices.BinarySearchFunc(tl.Stored, e, compareStored)
	tl.Stored = slices.Insert(tl.Stored, i, e)
	return sealed, true
}

// encodeEntries moves the decoded entries of tl, a value written before
// entries were stored encoded, into its stored ones, in time order. An
// entry that does not encode (none that was decoded from the table) is
// dropped.
func encodeEntries(tl *livetabv1.Timeline) {
	if len(tl.Entries) == 0 {
		return
	}
	stored := slices.Clip(tl.Stored)
	for _, e := range tl.Entries {
		if s, err := NewEntry(e); err == nil {
			stored = append(stored, s)
		}
	}
	slices.SortStableFunc(stored, compareStored)
	tl.Stored, tl.Entries = stored, nil
}

// Trim drops the entries of tl, a chunk in time order, that are older than
// Retention before now. It reports whether it dropped any.
func Trim(tl *livetabv1.Timeline, now time.Time) bool {
	min, ok := cutoff(now)
	if !ok {
		return false
	}
	// Entries are in time order, so the expired ones are a prefix. A value
	// written before entries were stored encoded has decoded ones.
	i := 0
	for i < len(tl.Stored) && tl.Stored[i].GetTimeUs() < min {
		i++
	}
	j := 0
	for j < len(tl.Entries) && EntryTime(tl.Entries[j]) < min {
		j++
	}
	// Clone, so that the dropped prefix can be collected.
	if i > 0 {
		tl.Stored = slices.Clone(tl.Stored[i:])
	}
	if j > 0 {
		tl.Entries = slices.Clone(tl.Entries[j:])
	}
	return i > 0 || j > 0
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
	case len(tl.Stored) > 0 || len(tl.Entries) > 0:
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

// Entries decodes the entries of tl, a value of the sessions table (a
// session's or a chunk's): its stored entries, in the order stored, after
// the decoded ones of a value written before entries were stored encoded.
// It is for what inspects the table's records; the timeline of a session is
// Read's. It fails, with an error wrapping codecs.ErrDecode, for a stored
// entry that does not decode.
func Entries(tl *livetabv1.Timeline) ([]*livetabv1.TimelineEntry, error) {
	out := slices.Clone(tl.GetEntries())
	for _, s := range tl.GetStored() {
		e, err := codecs.Typed[livetabv1.TimelineEntry](s.GetEntry())
		if err != nil {
			return nil, fmt.Errorf("sessions: entry %s: %w", s.GetId(), err)
		}
		out = append(out, e)
	}
	return out, nil
}

// readEntry is an entry of a stored value as Read collects it: encoded
// (stored) or, in a value written before entries were stored encoded,
// decoded.
type readEntry struct {
	id      string
	us      int64
	encoded []byte
	decoded *livetabv1.TimelineEntry
}

// appendReadEntries appends the entries of tl, a stored value, to all.
func appendReadEntries(all []readEntry, tl *livetabv1.Timeline) []readEntry {
	for _, e := range tl.GetEntries() {
		all = append(all, readEntry{id: entryID(e), us: EntryTime(e), decoded: e})
	}
	for _, s := range tl.GetStored() {
		all = append(all, readEntry{id: s.GetId(), us: s.GetTimeUs(), encoded: s.GetEntry()})
	}
	return all
}

// Read returns session's whole timeline from the sessions table, which get
// reads (nil, nil for a key without a value): the fields of the session's
// value, with the entries of its open chunk and of its sealed chunks,
// deduplicated by id (the first stored copy is kept), in time order, at
// most the newest MaxEntries, decoded (Timeline.entries; stored is left
// empty). It returns nil, nil when the session is not in the table; a key
// that is not a session's (a chunk key) is not one.
//
// A chunk that is missing (deleted by retention, or sealed so recently
// that its record is still on its way through the loop topic) is skipped:
// the answer is then short of those entries. So is an entry that does not
// decode, which the processor never stores (ReadHit, ReadEvent).
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
	var all []readEntry
	for i := oldestChunk(head.GetChunks()); i < head.GetChunks(); i++ {
		c, err := get(ChunkKey(session, i))
		if err != nil {
			return nil, fmt.Errorf("sessions: read chunk %d of session %q: %w", i, session, err)
		}
		all = appendReadEntries(all, c)
	}
	all = appendReadEntries(all, head)

	// Oldest chunk first, so the first copy of an entry is the one kept,
	// as Add keeps the first within the open chunk.
	seen := make(map[string]struct{}, len(all))
	kept := all[:0]
	for _, e := range all {
		if e.id == "" {
			continue
		}
		if _, dup := seen[e.id]; dup {
			continue
		}
		seen[e.id] = struct{}{}
		kept = append(kept, e)
	}
	// Chunks are each in time order, but entries arrive out of order, so an
	// open chunk (or a later chunk) may hold entries older than a sealed one.
	slices.SortFunc(kept, func(a, b readEntry) int {
		return cmp.Or(cmp.Compare(a.us, b.us), cmp.Compare(a.id, b.id))
	})
	if extra := len(kept) - MaxEntries; extra > 0 {
		kept = kept[extra:]
	}
	// Only the entries answered are decoded.
	entries := make([]*livetabv1.TimelineEntry, 0, len(kept))
	for _, e := range kept {
		d := e.decoded
		if d == nil {
			var err error
			if d, err = codecs.Typed[livetabv1.TimelineEntry](e.encoded); err != nil || entryID(d) == "" {
				continue
			}
		}
		entries = append(entries, d)
	}
	if len(entries) > 0 {
		out.Entries = entries
	}
	return out, nil
}
