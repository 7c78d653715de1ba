package liveview

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// The loop reads its records and writes the items it emits with protowire,
// so that a hit or event, the bulk of the traffic, is never decoded into a
// message nor encoded from one: its bytes go from the loop record into the
// view item as they came. The field numbers are codecs' (codecs/fields.go).

// listEntry is the field of AccountState.MarkableItems and
// AccountState.PendingMarks that holds their entries: nextEntry and
// appendEntry read and write both lists alike.
const listEntry = codecs.AccountStateMarkableItemsItems

// Both lists must hold their entries in the same field: this does not
// compile otherwise (an index out of [0, 1)).
func _() {
	var x [1]struct{}
	_ = x[listEntry-codecs.AccountStatePendingMarksMarks]
}

// Input is one loop record as Apply reads it: the kind of its payload, the
// few fields Apply needs, and the payload itself, still encoded, which the
// emitted item carries as it came.
type Input struct {
	Kind    livetabv1.Kind
	ID      string
	Account string
	// Session is the hit's or event's session, or the conversion's app
	// session.
	Session    string
	ReceivedUs int64
	// Name is an event's name.
	Name string
	// Payload is the encoded Hit, Event or Conversion.
	Payload []byte
	// Conversion is Payload decoded, for a conversion: conversions are
	// rare, and what they mark needs most of their fields.
	Conversion *livetabv1.Conversion
}

// ReadInput reads a loop record, an encoded ViewInput. It fails (an error
// wrapping codecs.ErrDecode) exactly when proto.Unmarshal of the record
// into a ViewInput would, so that a record the view topic's readers could
// not decode is never emitted; but it decodes only a conversion, and only
// reads the fields of a hit or an event that Input holds. A record with no
// payload reads as an Input of Kind KIND_UNSPECIFIED.
//
// The Input's Payload shares data's memory.
func ReadInput(data []byte) (Input, error) {
	var (
		field   protowire.Number // the payload's, 0 while none
		payload []byte
	)
	check := viewInputChecker()
	for b := data; len(b) > 0; {
		num, typ, n := codecs.ConsumeTag(b)
		if n < 0 {
			return Input{}, fmt.Errorf("%w view input: %w", codecs.ErrDecode, protowire.ParseError(n))
		}
		b = b[n:]
		// Each occurrence of a payload is checked, even one that a later
		// field replaces, as proto.Unmarshal decodes each.
		n, err := check.ConsumeFieldValue(num, typ, b)
		if err != nil {
			return Input{}, err
		}
		if (num == codecs.ViewInputHit || num == codecs.ViewInputEvent || num == codecs.ViewInputConversion) && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(b[:n])
			if num == field {
				// A message field met twice is the two merged, as
				// proto.Unmarshal does: their bytes one after the
				// other. Copied, so as not to write over data.
				payload = append(payload[:len(payload):len(payload)], v...)
			} else {
				// Another field of the oneof replaces it.
				field, payload = num, v
			}
		}
		b = b[n:]
	}
	switch field {
	case codecs.ViewInputHit:
		return readHitOrEvent(livetabv1.Kind_KIND_HIT, payload), nil
	case codecs.ViewInputEvent:
		return readHitOrEvent(livetabv1.Kind_KIND_EVENT, payload), nil
	case codecs.ViewInputConversion:
		c := &livetabv1.Conversion{}
		if err := proto.Unmarshal(payload, c); err != nil {
			// Checked already: this does not happen.
			return Input{}, fmt.Errorf("%w conversion: %w", codecs.ErrDecode, err)
		}
		return Input{Kind: livetabv1.Kind_KIND_CONVERSION, ID: c.GetId(), Account: c.GetAccount(), Session: c.GetAppSession(),
			ReceivedUs: c.GetReceivedUs(), Payload: payload, Conversion: c}, nil
	}
	return Input{}, nil
}

// readHitOrEvent reads what Input holds of payload, a Hit or an Event by
// kind, checked already.
func readHitOrEvent(kind livetabv1.Kind, payload []byte) Input {
	id, account, session, received := codecs.HitID, codecs.HitAccount, codecs.HitSession, codecs.HitReceivedUs
	if kind == livetabv1.Kind_KIND_EVENT {
		id, account, session, received = codecs.EventID, codecs.EventAccount, codecs.EventSession, codecs.EventReceivedUs
	}
	in := Input{Kind: kind, Payload: payload}
	// The payload checked, only its framing is read; the last occurrence
	// of a field wins, as in proto.Unmarshal.
	for b := payload; len(b) > 0; {
		num, typ, n := protowire.ConsumeTag(b)
		b = b[n:]
		switch {
		case typ == protowire.BytesType && (num == id || num == account || num == session ||
			(num == codecs.EventName && kind == livetabv1.Kind_KIND_EVENT)):
			v, n := protowire.ConsumeBytes(b)
			b = b[n:]
			switch num {
			case id:
				in.ID = string(v)
			case account:
				in.Account = string(v)
			case session:
				in.Session = string(v)
			default:
				in.Name = string(v)
			}
		case typ == protowire.VarintType && num == received:
			v, n := protowire.ConsumeVarint(b)
			b = b[n:]
			in.ReceivedUs = int64(v)
		default:
			b = b[protowire.ConsumeFieldValue(num, typ, b):]
		}
	}
	return in
}

// viewInputChecker checks loop records, built once: it derives from the
// generated descriptors only, and never changes.
var viewInputChecker = sync.OnceValue(func() *codecs.Checker {
	return codecs.NewChecker((&livetabv1.ViewInput{}).ProtoReflect().Descriptor())
})

// appendItem appends the encoded ViewItem of in at cursor, with mark
// with (nil: none) and counters c, but without emitted_us: appendEmitted
// adds it, last, so that the state can keep the item without it.
func appendItem(b []byte, cursor uint64, in *Input, with *livetabv1.ConvertedWith, c *livetabv1.Counters) []byte {
	b = appendVarintField(b, codecs.ViewItemCursor, cursor)
	b = appendStringField(b, codecs.ViewItemAccount, in.Account)
	b = appendVarintField(b, codecs.ViewItemKind, uint64(in.Kind))
	b = appendStringField(b, codecs.ViewItemSession, in.Session)
	b = appendVarintField(b, codecs.ViewItemReceivedUs, uint64(in.ReceivedUs))
	if with != nil {
		b = appendConvertedWith(b, with)
	}
	// Counters are a message: present, if empty, whenever set.
	b = protowire.AppendTag(b, codecs.ViewItemCounters, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(countersSize(c)))
	b = appendVarintField(b, codecs.CountersHits, c.GetHits())
	b = appendVarintField(b, codecs.CountersEvents, c.GetEvents())
	b = appendVarintField(b, codecs.CountersConversions, c.GetConversions())
	// The payload is a message of the oneof: present, if empty.
	field := codecs.ViewItemHit
	switch in.Kind {
	case livetabv1.Kind_KIND_EVENT:
		field = codecs.ViewItemEvent
	case livetabv1.Kind_KIND_CONVERSION:
		field = codecs.ViewItemConversion
	}
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, in.Payload)
}

// itemSizeBound bounds the size of in's item, for one allocation.
func itemSizeBound(in *Input, with *livetabv1.ConvertedWith) int {
	// A dozen tags (one byte: fields below 16) and varints (10 bytes at
	// most).
	n := 12*11 + len(in.Account) + len(in.Session) + len(in.Payload)
	if with != nil {
		n += 2*11 + convertedWithSize(with)
	}
	return n
}

// appendEmitted appends ViewItem.emitted_us.
func appendEmitted(b []byte, nowUs int64) []byte {
	return appendVarintField(b, codecs.ViewItemEmittedUs, uint64(nowUs))
}

// remark is a stored markable item (encoded without emitted_us and without
// a mark) emitted again with mark with at nowUs. Fields may come in any
// order: a decoder reads the item as if they came in field order.
func remark(stored []byte, with *livetabv1.ConvertedWith, nowUs int64) []byte {
	b := make([]byte, 0, len(stored)+3*11+convertedWithSize(with))
	b = append(b, stored...)
	b = appendConvertedWith(b, with)
	return appendEmitted(b, nowUs)
}

func appendConvertedWith(b []byte, w *livetabv1.ConvertedWith) []byte {
	b = protowire.AppendTag(b, codecs.ViewItemConvertedWith, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(convertedWithSize(w)))
	b = appendStringField(b, codecs.ConvertedWithSession, w.GetSession())
	b = appendVarintField(b, codecs.ConvertedWithMethod, uint64(w.GetMethod()))
	b = appendStringField(b, codecs.ConvertedWithHitID, w.GetHitId())
	return appendVarintField(b, codecs.ConvertedWithTimeUs, uint64(w.GetTimeUs()))
}

func convertedWithSize(w *livetabv1.ConvertedWith) int {
	return stringFieldSize(w.GetSession()) + varintFieldSize(uint64(w.GetMethod())) +
		stringFieldSize(w.GetHitId()) + varintFieldSize(uint64(w.GetTimeUs()))
}

func countersSize(c *livetabv1.Counters) int {
	return varintFieldSize(c.GetHits()) + varintFieldSize(c.GetEvents()) + varintFieldSize(c.GetConversions())
}

// appendVarintField appends a varint field, omitted when zero (proto3).
func appendVarintField(b []byte, num protowire.Number, v uint64) []byte {
	if v == 0 {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

// appendStringField appends a string field, omitted when empty (proto3).
func appendStringField(b []byte, num protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendString(b, s)
}

func varintFieldSize(v uint64) int {
	if v == 0 {
		return 0
	}
	return 1 + protowire.SizeVarint(v)
}

func stringFieldSize(s string) int {
	if s == "" {
		return 0
	}
	return 1 + protowire.SizeBytes(len(s))
}

// nextEntry reads the entry at offset off of one of the state's lists
// (AccountState.markable or pending): its value v, an encoded message, and
// where its field starts and ends in list. ok is false at the end, or
// where the bytes do not parse: the state wrote them, so that cannot
// happen unless its storage broke, and the entries after are lost.
func nextEntry(list []byte, off int) (v []byte, start, end int, ok bool) {
	for off < len(list) {
		b := list[off:]
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, 0, 0, false
		}
		if num != listEntry || typ != protowire.BytesType {
			skip := protowire.ConsumeFieldValue(num, typ, b[n:])
			if skip < 0 {
				return nil, 0, 0, false
			}
			off += n + skip
			continue
		}
		v, vn := protowire.ConsumeBytes(b[n:])
		if vn < 0 {
			return nil, 0, 0, false
		}
		return v, off, off + n + vn, true
	}
	return nil, 0, 0, false
}

// appendEntry appends the entry v (an encoded message) to a list of the
// state.
func appendEntry(list, v []byte) []byte {
	list = protowire.AppendTag(list, listEntry, protowire.BytesType)
	return protowire.AppendBytes(list, v)
}

// storedItem is what Apply reads of a markable item of the state.
type storedItem struct {
	cursor           uint64
	eventID, session []byte
}

// readStoredItem reads a markable item's cursor and its event's id and
// session. The state's items were encoded by appendItem: a field that does
// not parse ends the reading, and an item without cursor ages out first.
func readStoredItem(b []byte) storedItem {
	var it storedItem
	var event []byte
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch {
		case num == codecs.ViewItemCursor && typ == protowire.VarintType:
			it.cursor, n = protowire.ConsumeVarint(b)
		case num == codecs.ViewItemEvent && typ == protowire.BytesType:
			event, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			break
		}
		b = b[n:]
	}
	for len(event) > 0 {
		num, typ, n := protowire.ConsumeTag(event)
		if n < 0 {
			break
		}
		event = event[n:]
		switch {
		case num == codecs.EventID && typ == protowire.BytesType:
			it.eventID, n = protowire.ConsumeBytes(event)
		case num == codecs.EventSession && typ == protowire.BytesType:
			it.session, n = protowire.ConsumeBytes(event)
		default:
			n = protowire.ConsumeFieldValue(num, typ, event)
		}
		if n < 0 {
			break
		}
		event = event[n:]
	}
	return it
}

// pendingMark is a pending mark of the state (an encoded Conversion) as
// Apply reads it, its strings sharing the state's bytes.
type pendingMark struct {
	id, appSession, eventID, hitSession, hitID []byte
	method                                     livetabv1.MatchMethod
	timeUs                                     int64
}

func readPendingMark(b []byte) pendingMark {
	var m pendingMark
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			break
		}
		b = b[n:]
		switch typ {
		case protowire.BytesType:
			var v []byte
			v, n = protowire.ConsumeBytes(b)
			switch num {
			case codecs.ConversionID:
				m.id = v
			case codecs.ConversionAppSession:
				m.appSession = v
			case codecs.ConversionEventID:
				m.eventID = v
			case codecs.ConversionHitSession:
				m.hitSession = v
			case codecs.ConversionHitID:
				m.hitID = v
			}
		case protowire.VarintType:
			var v uint64
			v, n = protowire.ConsumeVarint(b)
			switch num {
			case codecs.ConversionMethod:
				m.method = livetabv1.MatchMethod(int32(v))
			case codecs.ConversionTimeUs:
				m.timeUs = int64(v)
			}
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			break
		}
		b = b[n:]
	}
	return m
}

// appendPendingMark appends c to the state's pending marks, with only
// what a mark needs.
func appendPendingMark(pending []byte, c *livetabv1.Conversion) []byte {
	size := stringFieldSize(c.GetId()) + stringFieldSize(c.GetHitSession()) + stringFieldSize(c.GetAppSession()) +
		stringFieldSize(c.GetHitId()) + stringFieldSize(c.GetEventId()) + varintFieldSize(uint64(c.GetTimeUs())) +
		varintFieldSize(uint64(c.GetMethod()))
	b := protowire.AppendTag(pending, codecs.AccountStatePendingMarksMarks, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(size))
	b = appendStringField(b, codecs.ConversionID, c.GetId())
	b = appendStringField(b, codecs.ConversionHitSession, c.GetHitSession())
	b = appendStringField(b, codecs.ConversionAppSession, c.GetAppSession())
	b = appendStringField(b, codecs.ConversionHitID, c.GetHitId())
	b = appendStringField(b, codecs.ConversionEventID, c.GetEventId())
	b = appendVarintField(b, codecs.ConversionTimeUs, uint64(c.GetTimeUs()))
	return appendVarintField(b, codecs.ConversionMethod, uint64(c.GetMethod()))
}
