package codecs

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Readers that take a record apart with protowire, to use a few of its
// fields or to pass its bytes on without decoding it into a message, must
// still refuse exactly the records that proto.Unmarshal refuses: a record
// that they let through would otherwise fail later, in a reader that does
// decode it. Checker is that check, built once from a message's generated
// descriptor, and ConsumeTag the tag reader that goes with it.

// errCodeFieldNumber is protowire's error code (for protowire.ParseError)
// of an invalid field number.
const errCodeFieldNumber = -2

// errNotUTF8 is the error of a string field that is not valid UTF-8, which
// proto3 rejects.
var errNotUTF8 = errors.New("string field is not valid UTF-8")

// ConsumeTag is protowire.ConsumeTag with proto.Unmarshal's range check of
// the field number, which protowire.ConsumeTag makes only from below: it
// parses a field's tag and returns its number, its wire type and its
// length, or a negative length (an error code for protowire.ParseError)
// where proto.Unmarshal would fail.
func ConsumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	// Most tags are one byte (fields 1 to 15): read inline.
	if len(b) > 0 && b[0] >= 1<<3 && b[0] < 0x80 {
		return protowire.Number(b[0] >> 3), protowire.Type(b[0] & 7), 1
	}
	return consumeTag(b)
}

// consumeTag is ConsumeTag of a tag of any length.
func consumeTag(b []byte) (protowire.Number, protowire.Type, int) {
	num, typ, n := protowire.ConsumeTag(b)
	if n >= 0 && num > protowire.MaxValidNumber {
		return 0, 0, errCodeFieldNumber
	}
	return num, typ, n
}

// Checker checks that bytes are an encoding of one message type that
// proto.Unmarshal accepts, without building the message: the framing of
// every field, field numbers, the UTF-8 of proto3 strings, nested and map
// messages and packed numbers, the nested messages checked each time they
// occur. It is exact for proto3 messages, livetab's. Of proto2 and
// editions it does not check required fields nor the contents of groups
// and of extensions (checked as unknown fields), and it takes the UTF-8
// rule of a string from the syntax of its file, not from editions
// features; nor does it refuse messages nested deeper than
// proto.Unmarshal's recursion limit.
//
// A Checker never changes once built: one may serve any number of
// goroutines.
type Checker struct {
	name protoreflect.FullName
	// fields are the rules of the fields numbered below denseFields, by
	// number; far those of the others, which are rare.
	fields []fieldRule
	far    map[protowire.Number]fieldRule
}

// denseFields bounds the field numbers whose rules a Checker keeps in a
// slice: a field numbered up to 2^29-1 must not cost a slice that long.
const denseFields = 1 << 10

type fieldRule struct {
	known bool
	// wire is the wire type of one value; a value of another wire type
	// is an unknown field, as in proto.Unmarshal.
	wire protowire.Type
	utf8 bool
	msg  *Checker
	// packed: a repeated number, which may also come packed (BytesType).
	packed bool
}

// NewChecker builds the Checker of md's message type. It walks the
// descriptors of every message md holds, so callers build one per type
// and keep it.
func NewChecker(md protoreflect.MessageDescriptor) *Checker {
	return newChecker(md, map[protoreflect.FullName]*Checker{})
}

// newChecker builds md's Checker; seen holds those built already, so that
// a recursive type ends.
func newChecker(md protoreflect.MessageDescriptor, seen map[protoreflect.FullName]*Checker) *Checker {
	if c, ok := seen[md.FullName()]; ok {
		return c
	}
	c := &Checker{name: md.FullName()}
	seen[md.FullName()] = c
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
			r.wire, r.msg = protowire.BytesType, newChecker(fd.Message(), seen)
		default:
			// Groups: proto3 has none; checked as unknown fields.
			r.known = false
		}
		num := fd.Number()
		switch {
		case num >= denseFields:
			if c.far == nil {
				c.far = map[protowire.Number]fieldRule{}
			}
			c.far[num] = r
		case int(num) >= len(c.fields):
			c.fields = append(c.fields, make([]fieldRule, int(num)+1-len(c.fields))...)
			fallthrough
		default:
			c.fields[num] = r
		}
	}
	return c
}

// Check reports whether raw is an encoding of the checker's message that
// proto.Unmarshal accepts: it fails, with an error wrapping ErrDecode,
// exactly where proto.Unmarshal would.
func (c *Checker) Check(raw []byte) error {
	for b := raw; len(b) > 0; {
		num, typ, n := ConsumeTag(b)
		if n < 0 {
			return &checkError{msg: c.name, err: protowire.ParseError(n)}
		}
		b = b[n:]
		n, err := c.ConsumeFieldValue(num, typ, b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}

// ConsumeFieldValue is protowire.ConsumeFieldValue for field num of the
// checker's message, which also checks the value as Check does: it
// returns the length of the value of wire type typ at the start of b, or
// an error wrapping ErrDecode where proto.Unmarshal would fail on it. A
// reader that walks a record with ConsumeTag and ConsumeFieldValue checks
// it as Check would, in the same pass as it reads the fields it wants
// from b[:n].
func (c *Checker) ConsumeFieldValue(num protowire.Number, typ protowire.Type, b []byte) (int, error) {
	var r fieldRule
	if int(num) < len(c.fields) {
		r = c.fields[num]
	} else if c.far != nil {
		r = c.far[num]
	}
	if r.known && typ == protowire.BytesType && (r.wire == protowire.BytesType || r.packed) {
		v, n := protowire.ConsumeBytes(b)
		if n < 0 {
			return 0, &checkError{msg: c.name, num: num, err: protowire.ParseError(n)}
		}
		if err := r.checkBytes(v); err != nil {
			return 0, &checkError{msg: c.name, num: num, err: err}
		}
		return n, nil
	}
	// A number of its wire type is read like an unknown field, and so is
	// a known field of another wire type, which proto.Unmarshal keeps as
	// unknown.
	n := protowire.ConsumeFieldValue(num, typ, b)
	if n < 0 {
		return 0, &checkError{msg: c.name, num: num, err: protowire.ParseError(n)}
	}
	return n, nil
}

// checkBytes checks the value of a length-delimited field of rule r.
func (r fieldRule) checkBytes(v []byte) error {
	switch {
	case r.utf8:
		if !utf8.Valid(v) {
			return errNotUTF8
		}
	case r.msg != nil:
		return r.msg.Check(v)
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

// checkError is a Checker's error: err, in field num (0: in no field, a
// tag) of a message of type msg. Where err is a nested message's
// checkError, the message reads as the path of field numbers to the
// cause: "codecs: cannot decode livetab.v1.Event: field 12: field 2:
// string field is not valid UTF-8".
type checkError struct {
	msg protoreflect.FullName
	num protowire.Number
	err error
}

func (e *checkError) Error() string {
	var sb strings.Builder
	sb.WriteString(ErrDecode.Error() + " " + string(e.msg) + ": ")
	for {
		if e.num != 0 {
			fmt.Fprintf(&sb, "field %d: ", e.num)
		}
		nested, ok := e.err.(*checkError)
		if !ok {
			sb.WriteString(e.err.Error())
			return sb.String()
		}
		e = nested
	}
}

// Unwrap makes the error wrap ErrDecode and its cause.
func (e *checkError) Unwrap() []error { return []error{ErrDecode, e.err} }
