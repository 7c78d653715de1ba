package liveview

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// MaxItems is how many items an account's state keeps: exactly the slots
// the view topic keeps per account, so that every item that may be
// re-emitted still owns its slot (topics.ViewKey(account, cursor)) and a
// re-emission never overwrites a newer item.
const MaxItems = topics.ViewSlots

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

// payloadID is the id of an item's hit, event or conversion.
func payloadID(it *livetabv1.ViewItem) string {
	switch {
	case it.GetHit() != nil:
		return it.GetHit().GetId()
	case it.GetEvent() != nil:
		return it.GetEvent().GetId()
	case it.GetConversion() != nil:
		return it.GetConversion().GetId()
	}
	return ""
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
// the view topic, in order; none when in is already among the stored items
// (a redelivery) or has no payload. nowUs is the emission time (wall clock).
//
// The new item gets the next cursor and the account's counters after
// counting it, and st keeps the newest MaxItems items. A conversion also
// marks the event item it converted, which is emitted again (same cursor)
// before the conversion item, so that the last item emitted always carries
// the latest counters; when that event item has not arrived yet, the mark
// waits in st.PendingMarks and is applied when it does.
//
// The returned items are copies; st may be changed further.
func Apply(st *livetabv1.AccountState, in *livetabv1.ViewInput, nowUs int64) []*livetabv1.ViewItem {
	d := Describe(in)
	if d.Kind == livetabv1.Kind_KIND_UNSPECIFIED {
		return nil
	}
	if slices.ContainsFunc(st.Items, func(it *livetabv1.ViewItem) bool {
		return it.GetKind() == d.Kind && payloadID(it) == d.ID
	}) {
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
		Counters:   proto.CloneOf(st.Counters),
		EmittedUs:  nowUs,
	}
	var out []*livetabv1.ViewItem
	switch d.Kind {
	case livetabv1.Kind_KIND_HIT:
		item.Payload = &livetabv1.ViewItem_Hit{Hit: in.GetHit()}
	case livetabv1.Kind_KIND_EVENT:
		ev := in.GetEvent()
		item.Payload = &livetabv1.ViewItem_Event{Event: ev}
		if i := slices.IndexFunc(st.PendingMarks, func(c *livetabv1.Conversion) bool { return marks(c, ev) }); i >= 0 {
			item.ConvertedWith = Mark(st.PendingMarks[i])
			st.PendingMarks = slices.Delete(st.PendingMarks, i, i+1)
		}
	case livetabv1.Kind_KIND_CONVERSION:
		c := in.GetConversion()
		item.Payload = &livetabv1.ViewItem_Conversion{Conversion: c}
		i := slices.IndexFunc(st.Items, func(it *livetabv1.ViewItem) bool {
			return it.GetEvent() != nil && marks(c, it.GetEvent())
		})
		switch {
		case i < 0:
			// The event raced ahead on another partition of the
			// conversions' topic, or has not been sent yet.
			addPending(st, c)
		case st.Items[i].ConvertedWith == nil:
			st.Items[i].ConvertedWith = Mark(c)
			st.Items[i].EmittedUs = nowUs
			out = append(out, proto.CloneOf(st.Items[i]))
		}
	}
	st.Items = append(st.Items, item)
	if extra := len(st.Items) - MaxItems; extra > 0 {
		st.Items = slices.Clone(st.Items[extra:])
	}
	return append(out, proto.CloneOf(item))
}

func addPending(st *livetabv1.AccountState, c *livetabv1.Conversion) {
	if slices.ContainsFunc(st.PendingMarks, func(p *livetabv1.Conversion) bool { return p.GetId() == c.GetId() }) {
		return
	}
	st.PendingMarks = append(st.PendingMarks, c)
	if extra := len(st.PendingMarks) - MaxPendingMarks; extra > 0 {
		st.PendingMarks = slices.Clone(st.PendingMarks[extra:])
	}
}
