package liveview

import (
	"slices"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/topics"
)

// Window is how many of an account's newest items its state remembers:
// their fingerprints (AccountState.recent), so that a redelivered input
// emits nothing, and the install-like event items among them
// (AccountState.markable), so that a conversion can still mark them. It is
// exactly the slots the view topic keeps per account, so that every item
// that may be re-emitted still owns its slot (topics.ViewKey(account,
// cursor)) and a re-emission never overwrites a newer item.
const Window = topics.ViewSlots

// MaxPendingMarks bounds the conversions an account keeps while their event
// item has not arrived; the oldest go first.
const MaxPendingMarks = 100

// Fingerprint is what AccountState.recent holds for an item: the 64-bit
// FNV-1a hash of its kind (as a varint, so that kind and id cannot run
// into each other) and its payload's id. It must not change between
// versions or processes: the states that hold it outlive both.
func Fingerprint(kind livetabv1.Kind, id string) uint64 {
	// hash/fnv, written out so that it allocates nothing.
	const (
		offset64 = 14695981039346656037
		prime64  = 1099511628211
	)
	h := uint64(offset64)
	for k := uint64(kind); ; k >>= 7 {
		c := byte(k & 0x7f)
		if k >= 0x80 {
			c |= 0x80
		}
		h = (h ^ uint64(c)) * prime64
		if k < 0x80 {
			break
		}
	}
	for i := range len(id) {
		h = (h ^ uint64(id[i])) * prime64
	}
	return h
}

// Mark is what a conversion tells about the event it converted.
func Mark(c *livetabv1.Conversion) *livetabv1.ConvertedWith {
	return &livetabv1.ConvertedWith{
		Session: c.GetHitSession(),
		Method:  c.GetMethod(),
		HitId:   c.GetHitId(),
		TimeUs:  c.GetTimeUs(),
	}
}

// Item is a view item to emit: its cursor and its encoded ViewItem. Its
// key on the view topic is topics.ViewKey(account, Cursor).
type Item struct {
	Cursor uint64
	Data   []byte
}

// Apply adds in to an account's state st and returns the items to emit to
// the view topic, in order; none when in is among the account's newest
// Window items already (a redelivery, told by its fingerprint in
// st.Recent) or has no payload. nowUs is the emission time (wall clock).
//
// The new item gets the next cursor and the account's counters after
// counting it; it is always the last item returned, and carries in's
// payload as it came. Only conversions mark items, and only install-like
// events (attribution.InstallLike), so st keeps the unmarked install-like
// event items among the newest Window cursors (st.Markable) and no other
// item: those live on the view topic only. A conversion marks the event
// item it converted, which is emitted again (same cursor) before the
// conversion item, so that the last item emitted always carries the latest
// counters, and leaves st (an event is marked once). When that event item
// is not in st, the mark waits in st.Pending and is applied if the event
// arrives later; a mark whose event has passed (aged out, already marked,
// or not install-like) waits there until MaxPendingMarks newer ones push it
// out.
//
// st shares no memory with in or with the returned items, so either may be
// changed afterwards.
func Apply(st *livetabv1.AccountState, in Input, nowUs int64) []Item {
	if in.Kind == livetabv1.Kind_KIND_UNSPECIFIED {
		return nil
	}
	fp := Fingerprint(in.Kind, in.ID)
	if slices.Contains(st.Recent, fp) {
		return nil
	}
	if st.Counters == nil {
		st.Counters = &livetabv1.Counters{}
	}
	switch in.Kind {
	case livetabv1.Kind_KIND_HIT:
		st.Counters.Hits++
	case livetabv1.Kind_KIND_EVENT:
		st.Counters.Events++
	case livetabv1.Kind_KIND_CONVERSION:
		st.Counters.Conversions++
	}
	st.Seq++
	var (
		out      []Item
		with     *livetabv1.ConvertedWith
		markable bool
	)
	switch in.Kind {
	case livetabv1.Kind_KIND_EVENT:
		if attribution.InstallLike(in.Name) {
			with = takePending(st, in.ID, in.Session)
			markable = with == nil
		}
	case livetabv1.Kind_KIND_CONVERSION:
		c := in.Conversion
		// Looked up before the items of cursor Seq-Window leave st: that
		// item's re-emission still precedes the conversion item, the next
		// owner of its slot.
		if cursor, stored, ok := takeMarkable(st, c.GetEventId(), c.GetAppSession()); ok {
			out = append(out, Item{Cursor: cursor, Data: remark(stored, Mark(c), nowUs)})
		} else if !slices.Contains(st.Recent, Fingerprint(livetabv1.Kind_KIND_EVENT, c.GetEventId())) {
			// The event raced ahead on another partition of the
			// conversions' topic, has not been sent yet, or has passed.
			// One seen within the window and no longer markable was
			// marked already: waiting for it again would only fill the
			// pending marks (fingerprints ignore the session, so an event
			// of another session with the same id counts as seen).
			addPending(st, c)
		}
	}
	remember(st, fp)
	// Oldest first: only a prefix ages out.
	off := 0
	for {
		v, _, end, ok := nextEntry(st.Markable, off)
		if !ok || st.Seq-readStoredItem(v).cursor < Window {
			break
		}
		off = end
	}
	st.Markable = deleteBytes(st.Markable, 0, off)

	item := appendItem(make([]byte, 0, itemSizeBound(&in, with)), st.Seq, &in, with, st.Counters)
	if markable {
		st.Markable = appendEntry(st.Markable, item)
	}
	return append(out, Item{Cursor: st.Seq, Data: appendEmitted(item, nowUs)})
}

// takeMarkable removes from st.Markable the item of the event (eventID,
// session) and returns it (a copy) with its cursor; ok is false when st
// holds none. The session is compared too because event ids are chosen by
// the SDKs.
func takeMarkable(st *livetabv1.AccountState, eventID, session string) (cursor uint64, item []byte, ok bool) {
	for v, start, end, ok := nextEntry(st.Markable, 0); ok; v, start, end, ok = nextEntry(st.Markable, end) {
		if it := readStoredItem(v); string(it.eventID) == eventID && string(it.session) == session {
			item = slices.Clone(v)
			st.Markable = deleteBytes(st.Markable, start, end)
			return it.cursor, item, true
		}
	}
	return 0, nil, false
}

// takePending removes from st.Pending the mark of the event (eventID,
// session) and returns it; nil when none waits for it.
func takePending(st *livetabv1.AccountState, eventID, session string) *livetabv1.ConvertedWith {
	for v, start, end, ok := nextEntry(st.Pending, 0); ok; v, start, end, ok = nextEntry(st.Pending, end) {
		if m := readPendingMark(v); string(m.eventID) == eventID && string(m.appSession) == session {
			with := &livetabv1.ConvertedWith{Session: string(m.hitSession), Method: m.method, HitId: string(m.hitID), TimeUs: m.timeUs}
			st.Pending = deleteBytes(st.Pending, start, end)
			return with
		}
	}
	return nil
}

// deleteBytes removes b[i:j] in place, and is nil once nothing is left,
// as a decoded state's empty bytes are.
func deleteBytes(b []byte, i, j int) []byte {
	b = slices.Delete(b, i, j)
	if len(b) == 0 {
		return nil
	}
	return b
}

// remember appends fp to st.Recent, keeping the newest Window. It shifts
// in place so that an st that lives on (a test, a benchmark) does not grow
// its array.
func remember(st *livetabv1.AccountState, fp uint64) {
	if len(st.Recent) < Window {
		st.Recent = append(st.Recent, fp)
		return
	}
	extra := len(st.Recent) - Window + 1
	n := copy(st.Recent, st.Recent[extra:])
	st.Recent = append(st.Recent[:n], fp)
}

// addPending keeps c in st.Pending, once, with only the fields that a mark
// needs; the oldest go beyond MaxPendingMarks.
func addPending(st *livetabv1.AccountState, c *livetabv1.Conversion) {
	marks := 0
	for v, _, end, ok := nextEntry(st.Pending, 0); ok; v, _, end, ok = nextEntry(st.Pending, end) {
		if string(readPendingMark(v).id) == c.GetId() {
			return
		}
		marks++
	}
	st.Pending = appendPendingMark(st.Pending, c)
	off := 0
	for range marks + 1 - MaxPendingMarks {
		_, _, end, ok := nextEntry(st.Pending, off)
		if !ok {
			break
		}
		off = end
	}
	st.Pending = deleteBytes(st.Pending, 0, off)
}
