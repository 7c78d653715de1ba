package sessions

import (
	"errors"
	"fmt"
	"sync"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// The processor reads its hit and event records with protowire: a record
// becomes a stored entry (livetabv1.Timeline_Stored) without being decoded
// into a message nor encoded from one. A TimelineEntry holding a hit or an
// event is the tag of its oneof field and the length of the record followed
// by the record itself, so the entry is the record's bytes behind a prefix.
// The field numbers below are those of codecs/proto/livetab/v1/livetab.proto
// (TestFieldNumbers checks them).

// Fields of TimelineEntry.
const (
	entryHit   protowire.Number = 1
	entryEvent protowire.Number = 2
)

// Fields of Hit and Event that the processor reads.
const (
	recordID      protowire.Number = 1 // Hit, Event
	recordAccount protowire.Number = 2 // Hit, Event

	hitReceivedUs protowire.Number = 7

	eventTimeUs     protowire.Number = 5
	eventReceivedUs protowire.Number = 6
)

// Record is a hit's or an event's record as the processor reads it.
type Record struct {
	// ID and Account are the hit's or event's (empty when it has none).
	ID, Account string
	// Entry is the record as a timeline stores it: its dedupe id, its time
	// (EntryTime) and the encoded TimelineEntry holding it.
	Entry *livetabv1.Timeline_Stored
}

// ReadHit reads raw, an encoded Hit. It fails (an error wrapping
// codecs.ErrDecode) exactly when proto.Unmarshal of raw into a Hit would,
// so that no entry is stored that Read could not decode; but it reads only
// the hit's id, account and received time. The Record shares no memory
// with raw.
func ReadHit(raw []byte) (Record, error) {
	return readRecord(raw, entryHit)
}

// ReadEvent reads raw, an encoded Event, as ReadHit reads a hit: it reads
// only the event's id, account, time and received time.
func ReadEvent(raw []byte) (Record, error) {
	return readRecord(raw, entryEvent)
}

// readRecord reads raw, a Hit (field entryHit) or an Event (entryEvent), in
// one pass: it checks every field, and keeps the last occurrence of those
// it reads, as proto.Unmarshal does.
func readRecord(raw []byte, field protowire.Number) (Record, error) {
	s, prefix, what := wireSchemas().hit, "h:", "hit"
	if field == entryEvent {
		s, prefix, what = wireSchemas().event, "e:", "event"
	}
	var (
		id, account       []byte
		timeUs, receiveUs int64
	)
	for b := raw; len(b) > 0; {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return Record{}, fmt.Errorf("%w %s: %w", codecs.ErrDecode, what, protowire.ParseError(n))
		}
		b = b[n:]
		r := s.rule(num)
		switch {
		case r.takesBytes(typ):
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return Record{}, fmt.Errorf("%w %s: field %d: %w", codecs.ErrDecode, what, num, protowire.ParseError(n))
			}
			b = b[n:]
			if err := r.checkBytes(v); err != nil {
				return Record{}, fmt.Errorf("%w %s: field %d: %w", codecs.ErrDecode, what, num, err)
			}
			switch num {
			case recordID:
				id = v
			case recordAccount:
				account = v
			}
		case r.known && typ == protowire.VarintType && r.wire == protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return Record{}, fmt.Errorf("%w %s: field %d: %w", codecs.ErrDecode, what, num, protowire.ParseError(n))
			}
			b = b[n:]
			switch {
			case field == entryHit && num == hitReceivedUs, field == entryEvent && num == eventReceivedUs:
				receiveUs = int64(v)
			case field == entryEvent && num == eventTimeUs:
				timeUs = int64(v)
			}
		default:
			// Unknown fields, known ones of another wire type (which
			// proto.Unmarshal keeps as unknown), and fixed-size numbers.
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return Record{}, fmt.Errorf("%w %s: field %d: %w", codecs.ErrDecode, what, num, protowire.ParseError(n))
			}
			b = b[n:]
		}
	}
	// EntryTime: an event's device time when it has one.
	at := receiveUs
	if field == entryEvent && timeUs > 0 {
		at = timeUs
	}
	entry := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeBytes(len(raw)))
	entry = protowire.AppendTag(entry, field, protowire.BytesType)
	entry = protowire.AppendBytes(entry, raw)
	key := prefix + string(id)
	return Record{
		ID:      key[len(prefix):],
		Account: string(account),
		Entry:   &livetabv1.Timeline_Stored{Id: key, TimeUs: at, Entry: entry},
	}, nil
}

// errCodeFieldNumber is protowire's error code (for protowire.ParseError)
// of an invalid field number.
const errCodeFieldNumber = -2

// consumeTag is protowire.ConsumeTag with proto.Unmarshal's range check of
// the field number, which ConsumeTag checks only from below.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, errCodeFieldNumber
	}
	return num, typ, n
}

var errNotUTF8 = errors.New("string field is not valid UTF-8")

// wireSchema is what checking a message's encoding needs of its type,
// built from the generated descriptors: by field number, the wire type a
// known field takes and what its value must be. It checks what
// proto.Unmarshal checks (framing, field numbers, UTF-8 of proto3 strings,
// nested and map messages, packed values) without building anything.
type wireSchema struct {
	fields []fieldRule // by field number
}

type fieldRule struct {
	known bool
	// wire is the wire type of one value; a value of another wire type
	// is an unknown field, as in proto.Unmarshal.
	wire protowire.Type
	utf8 bool
	msg  *wireSchema
	// packed: a repeated number, which may also come packed (BytesType).
	packed bool
}

// recordSchemas are the schemas of the records the processor reads.
type recordSchemas struct{ hit, event *wireSchema }

// wireSchemas are built once: they derive from the generated descriptors
// only, and never change.
var wireSchemas = sync.OnceValue(func() recordSchemas {
	seen := map[protoreflect.FullName]*wireSchema{}
	return recordSchemas{
		hit:   newWireSchema((&livetabv1.Hit{}).ProtoReflect().Descriptor(), seen),
		event: newWireSchema((&livetabv1.Event{}).ProtoReflect().Descriptor(), seen),
	}
})

// newWireSchema builds md's schema; seen holds those built already, so
// that a recursive type ends.
func newWireSchema(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*wireSchema) *wireSchema {
	if s, ok := seen[md.FullName()]; ok {
		return s
	}
	s := &wireSchema{}
	seen[md.FullName()] = s
	fields := md.Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		r := fieldRule{known: true}
		switch fd.Kind() {
		case protoreflect.BoolKind, protoreflect.EnumKind, protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Uint32Kind,
			protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Uint64Kind:
			r.wire, r.packed = protowire.VarintType, fd.IsList()
		case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
			r.wire, r.packed = protowire.Fixed32Type, fd.IsList()
		case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
			r.wire, r.packed = protowire.Fixed64Type, fd.IsList()
		case protoreflect.StringKind:
			// proto3 (and editions by default) reject invalid UTF-8.
			r.wire, r.utf8 = protowire.BytesType, fd.ParentFile().Syntax() != protoreflect.Proto2
		case protoreflect.BytesKind:
			r.wire = protowire.BytesType
		case protoreflect.MessageKind:
			// A map field's message is its entry (key 1, value 2).
			r.wire, r.msg = protowire.BytesType, newWireSchema(fd.Message(), seen)
		default:
			// Groups: proto3 has none; checked as unknown fields.
			r.known = false
		}
		num := int(fd.Number())
		if num >= len(s.fields) {
			s.fields = append(s.fields, make([]fieldRule, num+1-len(s.fields))...)
		}
		s.fields[num] = r
	}
	return s
}

// rule is the rule of field num; the zero rule (unknown) for a number the
// message does not declare.
func (s *wireSchema) rule(num protowire.Number) fieldRule {
	if int(num) < len(s.fields) {
		return s.fields[num]
	}
	return fieldRule{}
}

// takesBytes reports whether a value of wire type typ is a value of the
// known field of rule r that is length-delimited: a string, bytes or a
// message, or numbers packed.
func (r fieldRule) takesBytes(typ protowire.Type) bool {
	return r.known && typ == protowire.BytesType && (r.wire == protowire.BytesType || r.packed)
}

// check reports whether b is a valid encoding of the schema's message.
func (s *wireSchema) check(b []byte) error {
	for len(b) > 0 {
		num, typ, n := consumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		if r := s.rule(num); r.takesBytes(typ) {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
			}
			b = b[n:]
			if err := r.checkBytes(v); err != nil {
				return fmt.Errorf("field %d: %w", num, err)
			}
			continue
		}
		// A number of its wire type is read like an unknown field.
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return fmt.Errorf("field %d: %w", num, protowire.ParseError(n))
		}
		b = b[n:]
	}
	return nil
}

// checkBytes checks the value of a length-delimited field of rule r.
func (r fieldRule) checkBytes(v []byte) error {
	switch {
	case r.utf8:
		if !utf8.Valid(v) {
			return errNotUTF8
		}
	case r.msg != nil:
		return r.msg.check(v)
	case r.packed && r.wire == protowire.VarintType:
		for len(v) > 0 {
			_, n := protowire.ConsumeVarint(v)
			if n < 0 {
				return protowire.ParseError(n)
			}
			v = v[n:]
		}
	case r.packed && r.wire == protowire.Fixed32Type:
		if len(v)%4 != 0 {
			return protowire.ParseError(-1)
		}
	case r.packed && r.wire == protowire.Fixed64Type:
		if len(v)%8 != 0 {
			return protowire.ParseError(-1)
		}
	}
	return nil
}
