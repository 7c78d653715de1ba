package liveview

import (
	"encoding/binary"
	"hash/fnv"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/topics"
)

// Window is how many of an account's newest items its state remembers:
// their fingerprints (AccountState.recent), so that a redelivered input
// emits nothing, and the install-like event items among them
// (AccountState.items), so that a conversion can still mark them. It is
// exactly the slots the view topic keeps per account, so that every item
// that may be re-emitted still owns its slot (topics.ViewKey(account,
// cursor)) and a re-emission never overwrites a newer item.
const Window = topics.ViewSlots

// MaxPendingMarks bounds the conversions an account keeps while their event
// item has not arrived; the oldest go first.
const MaxPendingMarks = 100

// Input is what one ViewInput carries, flattened.
type Input struct {
	Kind    livetabv1.Kind
	ID      string
	Account string
	// Session is the hit's or event's session, or the conversion's app
	// session.
	Session    string
	ReceivedUs int64
}

// Describe flattens in. A ViewInput with no payload has Kind
// KIND_UNSPECIFIED.
func Describe(in *livetabv1.ViewInput) Input {
	switch {
	case in.GetHit() != nil:
		h := in.GetHit()
		return Input{livetabv1.Kind_KIND_HIT, h.GetId(), h.GetAccount(), h.GetSession(), h.GetReceivedUs()}
	case in.GetEvent() != nil:
		e := in.GetEvent()
		return Input{livetabv1.Kind_KIND_EVENT, e.GetId(), e.GetAccount(), e.GetSession(), e.GetReceivedUs()}
	case in.GetConversion() != nil:
		c := in.GetConversion()
		return Input{livetabv1.Kind_KIND_CONVERSION, c.GetId(), c.GetAccount(), c.GetAppSession(), c.GetReceivedUs()}
	}
	return Input{}
}

// Fingerprint is what AccountState.recent holds for an item: the 64-bit
// FNV-1a hash of its kind (as a varint, so that kind and id cannot run
// into each other) and its payload's id. It must not change between
// versions or processes: the states that hold it outlive both.
func Fingerprint(kind livetabv1.Kind, id string) uint64 {
	var buf [binary.MaxVarintLen64]byte
	h := fnv.New64a()
	h.Write(binary.AppendUvarint(buf[:0], uint64(kind)))
	h.Write([]byte(id))
	return h.Sum64()
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

// marks reports whether conversion c converted event e. The session is
// compared too because event ids are chosen by the SDKs.
func marks(c *livetabv1.Conversion, e *livetabv1.Event) bool {
	return c.GetEventId() == e.GetId() && c.GetAppSession() == e.GetSession()
}

// Apply adds in to an account's state st and returns the items to emit to
// the view topic, in order; none when in is among the account's newest
// Window items already (a redelivery, told by its fingerprint in
// st.Recent) or has no payload. nowUs is the emission time (wall clock).
//
// The new item gets the next cursor and the account's counters after
// counting it; it is always the last item returned. Only conversions mark
// items, and only install-like events (attribution.InstallLike), so st
// keeps the unmarked install-like event items among the newest Window
// cursors and no other item: those live on the view topic only. A
// conversion marks the event item it converted, which is emitted again
// (same cursor) before the conversion item, so that the last item emitted
// always carries the latest counters, and leaves st (an event is marked
// once). When that event item is not in st, the mark waits in
// st.PendingMarks and is applied if the event arrives later; a mark whose
// event has passed (aged out, already marked, or not install-like) waits
// there until MaxPendingMarks newer ones push it out.
//
// st shares no memory with in or with the returned items, so either may be
// changed afterwards; the returned items share in's payload.
func Apply(st *livetabv1.AccountState, in *livetabv1.ViewInput, nowUs int64) []*livetabv1.ViewItem {
	d := Describe(in)
	if d.Kind == livetabv1.Kind_KIND_UNSPECIFIED {
		return nil
	}
	fp := Fingerprint(d.Kind, d.ID)
	if slices.Contains(st.Recent, fp) {
		return nil
	}
	if st.Counters == nil {
		st.Counters = &livetabv1.Counters{}
	}
	switch d.Kind {
	case livetabv1.Kind_KIND_HIT:
		st.Counters.Hits++
	case livetabv1.Kind_KIND_EVENT:
		st.Counters.Events++
	case livetabv1.Kind_KIND_CONVERSION:
		st.Counters.Conversions++
	}
	st.Seq++
	item := &livetabv1.ViewItem{
		Cursor:     st.Seq,
		Account:    d.Account,
		Kind:       d.Kind,
		Session:    d.Session,
		ReceivedUs: d.ReceivedUs,
		Counters:   &livetabv1.Counters{Hits: st.Counters.Hits, Events: st.Counters.Events, Conversions: st.Counters.Conversions},
		EmittedUs:  nowUs,
	}
	var out []*livetabv1.ViewItem
	markable := false
	switch d.Kind {
	case livetabv1.Kind_KIND_HIT:
		item.Payload = &livetabv1.ViewItem_Hit{Hit: in.GetHit()}
	case livetabv1.Kind_KIND_EVENT:
		ev := in.GetEvent()
		item.Payload = &livetabv1.ViewItem_Event{Event: ev}
		if attribution.InstallLike(ev.GetName()) {
			if i := slices.IndexFunc(st.PendingMarks, func(c *livetabv1.Conversion) bool { return marks(c, ev) }); i >= 0 {
				item.ConvertedWith = Mark(st.PendingMarks[i])
				st.PendingMarks = slices.Delete(st.PendingMarks, i, i+1)
			} else {
				markable = true
			}
		}
	case livetabv1.Kind_KIND_CONVERSION:
		c := in.GetConversion()
		item.Payload = &livetabv1.ViewItem_Conversion{Conversion: c}
		// Looked up before the items of cursor Seq-Window leave st: that
		// item's re-emission still precedes the conversion item, the next
		// owner of its slot.
		if i := slices.IndexFunc(st.Items, func(it *livetabv1.ViewItem) bool { return marks(c, it.GetEvent()) }); i >= 0 {
			ev := st.Items[i]
			st.Items = slices.Delete(st.Items, i, i+1)
			ev.ConvertedWith = Mark(c)
			ev.EmittedUs = nowUs
			out = append(out, ev)
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
	st.Items = slices.DeleteFunc(st.Items, func(it *livetabv1.ViewItem) bool { return st.Seq-it.GetCursor() >= Window })
	if markable {
		st.Items = append(st.Items, proto.CloneOf(item))
	}
	return append(out, item)
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

// addPending keeps c in st.PendingMarks, once, with only the fields that
// Apply reads from a pending mark (marks, Mark, the id that dedupes): the
// list may be full for long and is decoded and encoded with every item.
func addPending(st *livetabv1.AccountState, c *livetabv1.Conversion) {
	if slices.ContainsFunc(st.PendingMarks, func(p *livetabv1.Conversion) bool { return p.GetId() == c.GetId() }) {
		return
	}
	st.PendingMarks = append(st.PendingMarks, &livetabv1.Conversion{
		Id:         c.GetId(),
		AppSession: c.GetAppSession(),
		EventId:    c.GetEventId(),
		HitSession: c.GetHitSession(),
		HitId:      c.GetHitId(),
		Method:     c.GetMethod(),
		TimeUs:     c.GetTimeUs(),
	})
	if extra := len(st.PendingMarks) - MaxPendingMarks; extra > 0 {
		st.PendingMarks = slices.Clone(st.PendingMarks[extra:])
	}
}
