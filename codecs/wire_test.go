package codecs_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/prototext"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// Wire helpers: fields appended as they are, valid or not.
func tag(num protowire.Number, typ protowire.Type) []byte { return protowire.AppendTag(nil, num, typ) }

func field(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func varint(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// testFiles declare messages of every kind of field livetab's schema lacks
// (fixed32, float, sint, enums, a field numbered 2^29-1, recursion), in
// proto3 and in proto2, whose strings may be any bytes. They hold no map:
// proto.Unmarshal of a dynamic message (protobuf-go v1.36.12) panics on a
// map entry whose key comes again with another wire type, where that of a
// generated one does not; livetab's messages test maps.
const testFiles = `
file {
  name: "checker/kinds.proto" package: "checker" syntax: "proto3"
  enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 } value { name: "COLOR_RED" number: 1 } }
  message_type {
    name: "Kinds"
    field { name: "b" number: 1 label: LABEL_OPTIONAL type: TYPE_BOOL }
    field { name: "i32" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 }
    field { name: "s32" number: 3 label: LABEL_OPTIONAL type: TYPE_SINT32 }
    field { name: "u32" number: 4 label: LABEL_OPTIONAL type: TYPE_UINT32 }
    field { name: "i64" number: 5 label: LABEL_OPTIONAL type: TYPE_INT64 }
    field { name: "s64" number: 6 label: LABEL_OPTIONAL type: TYPE_SINT64 }
    field { name: "u64" number: 7 label: LABEL_OPTIONAL type: TYPE_UINT64 }
    field { name: "f32" number: 8 label: LABEL_OPTIONAL type: TYPE_FIXED32 }
    field { name: "sf32" number: 9 label: LABEL_OPTIONAL type: TYPE_SFIXED32 }
    field { name: "fl" number: 10 label: LABEL_OPTIONAL type: TYPE_FLOAT }
    field { name: "f64" number: 11 label: LABEL_OPTIONAL type: TYPE_FIXED64 }
    field { name: "sf64" number: 12 label: LABEL_OPTIONAL type: TYPE_SFIXED64 }
    field { name: "d" number: 13 label: LABEL_OPTIONAL type: TYPE_DOUBLE }
    field { name: "str" number: 14 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "raw" number: 15 label: LABEL_OPTIONAL type: TYPE_BYTES }
    field { name: "child" number: 16 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".checker.Kinds" }
    field { name: "color" number: 17 label: LABEL_OPTIONAL type: TYPE_ENUM type_name: ".checker.Color" }
    field { name: "rs32" number: 18 label: LABEL_REPEATED type: TYPE_SINT32 }
    field { name: "ru64" number: 19 label: LABEL_REPEATED type: TYPE_UINT64 }
    field { name: "rf32" number: 20 label: LABEL_REPEATED type: TYPE_FIXED32 }
    field { name: "rfl" number: 21 label: LABEL_REPEATED type: TYPE_FLOAT }
    field { name: "rsf64" number: 22 label: LABEL_REPEATED type: TYPE_SFIXED64 }
    field { name: "rd" number: 23 label: LABEL_REPEATED type: TYPE_DOUBLE }
    field { name: "rcolor" number: 24 label: LABEL_REPEATED type: TYPE_ENUM type_name: ".checker.Color" }
    field { name: "rstr" number: 25 label: LABEL_REPEATED type: TYPE_STRING }
    field { name: "children" number: 26 label: LABEL_REPEATED type: TYPE_MESSAGE type_name: ".checker.Kinds" }
    field { name: "far" number: 536870911 label: LABEL_OPTIONAL type: TYPE_STRING }
  }
}
file {
  name: "checker/legacy.proto" package: "checker" syntax: "proto2" dependency: "checker/kinds.proto"
  message_type {
    name: "Legacy"
    field { name: "str" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING }
    field { name: "ri32" number: 2 label: LABEL_REPEATED type: TYPE_INT32 }
    field { name: "rf64" number: 3 label: LABEL_REPEATED type: TYPE_FIXED64 options { packed: true } }
    field { name: "kinds" number: 4 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".checker.Kinds" }
    field { name: "next" number: 5 label: LABEL_OPTIONAL type: TYPE_MESSAGE type_name: ".checker.Legacy" }
  }
}`

// testTypes are the messages of testFiles.
func testTypes(t testing.TB) (kinds, legacy protoreflect.MessageDescriptor) {
	t.Helper()
	set := &descriptorpb.FileDescriptorSet{}
	if err := prototext.Unmarshal([]byte(testFiles), set); err != nil {
		t.Fatal(err)
	}
	files, err := protodesc.NewFiles(set)
	if err != nil {
		t.Fatal(err)
	}
	find := func(name protoreflect.FullName) protoreflect.MessageDescriptor {
		d, err := files.FindDescriptorByName(name)
		if err != nil {
			t.Fatal(err)
		}
		return d.(protoreflect.MessageDescriptor)
	}
	return find("checker.Kinds"), find("checker.Legacy")
}

// newMessage is an empty message of md: of its generated type where it has
// one, as the processors decode, dynamic otherwise.
func newMessage(md protoreflect.MessageDescriptor) proto.Message {
	if mt, err := protoregistry.GlobalTypes.FindMessageByName(md.FullName()); err == nil {
		return mt.New().Interface()
	}
	return dynamicpb.NewMessage(md)
}

// fromText is the encoding of md's message written in text format.
func fromText(t testing.TB, md protoreflect.MessageDescriptor, text string) []byte {
	t.Helper()
	m := newMessage(md)
	if err := prototext.Unmarshal([]byte(text), m); err != nil {
		t.Fatalf("%s: %v", text, err)
	}
	return marshal(t, m)
}

// checkCase is an encoding, valid or not, of a message of type md.
type checkCase struct {
	name string
	md   protoreflect.MessageDescriptor
	raw  []byte
}

// checkCases probe what proto.Unmarshal accepts, for the messages the
// processors read and for testTypes.
func checkCases(t testing.TB) []checkCase {
	viewInput := (&livetabv1.ViewInput{}).ProtoReflect().Descriptor()
	hitMD := (&livetabv1.Hit{}).ProtoReflect().Descriptor()
	eventMD := (&livetabv1.Event{}).ProtoReflect().Descriptor()
	kinds, legacy := testTypes(t)

	ev := &livetabv1.Event{Id: "e1", Account: "acme", Session: "app", Name: "install", TimeUs: 4, ReceivedUs: 5,
		DeviceIds: []string{"d", "d2"}, Params: map[string]string{"k": "v", "ünï": "çödé"},
		Request: &livetabv1.Request{Ip: "1", Params: map[string]string{"a": "b"}}}
	h := &livetabv1.Hit{Id: "h1", Account: "acme", Session: "web", ReceivedUs: 7, Platform: livetabv1.Platform_PLATFORM_IOS,
		Request: &livetabv1.Request{UserAgent: "ua", Params: map[string]string{"utm": "x"}}}
	c := &livetabv1.Conversion{Id: "c1", Account: "acme", HitSession: "web", AppSession: "app", EventId: "e1", TimeUs: 9}
	hit, event := marshal(t, h), marshal(t, ev)
	inHit := marshal(t, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Hit{Hit: h}})
	inEvent := marshal(t, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Event{Event: ev}})
	inConv := marshal(t, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Conversion{Conversion: c}})
	bad := []byte{'a', 0xff}
	idAndAccount := cat(field(1, []byte("e1")), field(2, []byte("acme")))
	tooLarge := protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3)
	overlong := []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}
	unknown := cat(varint(99, 42), field(100, []byte("future field")),
		protowire.AppendFixed32(tag(101, protowire.Fixed32Type), 7), protowire.AppendFixed64(tag(102, protowire.Fixed64Type), 8),
		tag(103, protowire.StartGroupType), varint(1, 5), tag(103, protowire.EndGroupType))
	allKinds := fromText(t, kinds, `b: true i32: -1 s32: -2 u32: 3 i64: -4 s64: -5 u64: 6 f32: 7 sf32: -8 fl: 9.5 f64: 10
		sf64: -11 d: 12.5 str: "ünï" raw: "\xff" color: COLOR_RED rs32: [1, -1] ru64: [1, 2] rf32: [3] rfl: [4.5] rsf64: [-5]
		rd: [6.5] rcolor: [COLOR_RED, COLOR_UNSPECIFIED] rstr: ["a", "b"] child { str: "c" child { i32: 1 } }
		children { u64: 1 } far: "far"`)

	type raws = map[string][]byte
	var cases []checkCase
	add := func(md protoreflect.MessageDescriptor, rs raws) {
		for name, raw := range rs {
			cases = append(cases, checkCase{string(md.Name()) + ": " + name, md, raw})
		}
	}
	add(viewInput, raws{
		"empty":                               nil,
		"hit":                                 inHit,
		"event":                               inEvent,
		"conversion":                          inConv,
		"empty hit":                           field(1, nil),
		"payload field as varint":             varint(1, 1),
		"unknown group":                       cat(inHit, tag(9, protowire.StartGroupType), field(1, []byte("x")), tag(9, protowire.EndGroupType)),
		"group in the event":                  field(2, cat(idAndAccount, tag(9, protowire.StartGroupType), tag(9, protowire.EndGroupType))),
		"unmatched group end":                 field(2, cat(idAndAccount, tag(9, protowire.StartGroupType), tag(8, protowire.EndGroupType))),
		"end group":                           cat(inHit, tag(9, protowire.EndGroupType)),
		"end group in the event":              field(2, cat(idAndAccount, tag(9, protowire.EndGroupType))),
		"field number 0":                      cat(inHit, []byte{0x02, 0x00}),
		"largest field number":                cat(inHit, varint(protowire.MaxValidNumber, 1)),
		"field number too large":              cat(inHit, tooLarge, []byte{1}),
		"field number too large in the event": field(2, cat(idAndAccount, tooLarge, []byte{1})),
		"reserved wire type":                  cat(inHit, []byte{0x0e}),
		"truncated":                           inEvent[:20],
		"truncated payload":                   cat(tag(2, protowire.BytesType), []byte{50}, idAndAccount),
		"overlong varint":                     field(1, cat(tag(7, protowire.VarintType), overlong)),
		"varint overflow":                     field(1, cat(tag(7, protowire.VarintType), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02})),
		"ten-byte varint":                     field(1, cat(tag(7, protowire.VarintType), []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})),
		"id not UTF-8":                        field(2, field(1, bad)),
		"name not UTF-8":                      field(2, cat(idAndAccount, field(4, bad))),
		"device id not UTF-8":                 field(2, cat(idAndAccount, field(9, bad))),
		"param key not UTF-8":                 field(2, cat(idAndAccount, field(11, field(1, bad)))),
		"param value not UTF-8":               field(2, cat(idAndAccount, field(11, field(2, bad)))),
		"param entry extra field":             field(2, cat(idAndAccount, field(11, cat(field(1, []byte("k")), field(3, bad))))),
		"param key as varint":                 field(2, cat(idAndAccount, field(11, varint(1, 1)))),
		"request ip not UTF-8":                field(1, cat(idAndAccount, field(8, field(1, bad)))),
		"request param not UTF-8":             field(1, cat(idAndAccount, field(8, field(5, field(2, bad))))),
		"request garbage":                     field(1, cat(idAndAccount, field(8, []byte{0xff, 0xff}))),
		"string as varint":                    field(2, cat(idAndAccount, varint(4, 1))),
		"number as bytes":                     field(2, cat(idAndAccount, field(6, []byte{1, 2}))),
		"number as fixed64":                   field(2, cat(idAndAccount, protowire.AppendFixed64(tag(6, protowire.Fixed64Type), 9))),
		"request as varint":                   field(2, cat(idAndAccount, varint(12, 1))),
		"unknown bytes not UTF-8":             field(2, cat(idAndAccount, field(77, bad))),
		"conversion not UTF-8":                field(3, cat(idAndAccount, field(4, bad))),
		"conversion truncated":                field(3, cat(idAndAccount, tag(8, protowire.VarintType))),
		"record field not UTF-8":              cat(inHit, field(20, bad)),
		"merged hit, bad second":              cat(field(1, idAndAccount), field(1, field(6, bad))),
		"bad hit replaced by event":           cat(field(1, field(6, bad)), inEvent),
	})
	add(hitMD, raws{
		"hit":                              hit,
		"with unknown fields":              cat(hit, unknown),
		"id and time twice":                cat(hit, field(1, []byte("h-2")), varint(7, 1)),
		"id as a number":                   cat(field(1, []byte("h-4")), varint(1, 9)),
		"request twice":                    cat(hit, field(8, field(1, []byte("10.0.0.3")))),
		"negative time":                    varint(7, 1<<64-1000),
		"garbage":                          {0xff, 0xff, 0xff},
		"truncated":                        hit[:len(hit)-3],
		"length past the end":              cat(field(1, []byte("h")), []byte{0x12, 0x7f, 'a'}),
		"account not UTF-8 (surrogate)":    cat(field(1, []byte("x")), field(2, []byte("a\xed\xa0\x80"))),
		"field number 0":                   cat(hit, []byte{0x00, 0x01}),
		"group not ended":                  cat(hit, tag(99, protowire.StartGroupType)),
		"varint too long":                  cat(tag(15, protowire.VarintType), overlong),
		"unknown field truncated":          cat(hit, field(100, []byte("abc"))[:3]),
		"request params entry truncated":   cat(hit, field(8, field(5, field(1, []byte("k"))[:2]))),
		"request field not UTF-8":          cat(hit, field(8, field(2, []byte("bad \xff agent")))),
		"id in a two-byte tag":             {0x8a, 0x00, 0x00},
		"id in a two-byte tag, not UTF-8":  {0x8a, 0x00, 0x01, 0xff},
		"field number 0 in a two-byte tag": {0x80, 0x00, 0x01},
	})
	add(eventMD, raws{
		"event":                       event,
		"unknown fields first":        cat(unknown, event),
		"time as bytes":               cat(idAndAccount, field(5, []byte("not a number")), varint(6, 77)),
		"unknown fields in request":   cat(field(1, []byte("e-3")), field(12, cat(field(1, []byte("10.0.0.3")), unknown))),
		"end group alone":             cat(event, tag(99, protowire.EndGroupType)),
		"wire type 6":                 cat(event, []byte{0x0e}),
		"params key not UTF-8":        cat(event, field(11, field(1, []byte("key \xc0")))),
		"params value not UTF-8":      cat(event, field(11, field(2, []byte{0xfe}))),
		"device id not UTF-8":         cat(event, field(9, []byte{0xff})),
		"request field not UTF-8":     cat(event, field(12, field(2, []byte("bad \xff agent")))),
		"field number past the limit": cat(event, tooLarge, []byte{0x01}),
	})
	add(kinds, raws{
		"every kind":                     allKinds,
		"numbers unpacked":               cat(varint(18, 1), varint(18, 3), protowire.AppendFixed32(tag(20, protowire.Fixed32Type), 5)),
		"packed varints":                 field(19, cat(protowire.AppendVarint(nil, 1), protowire.AppendVarint(nil, 1<<63))),
		"packed varints truncated":       field(19, []byte{0x01, 0x80}),
		"packed varint overlong":         field(18, overlong),
		"packed fixed32":                 field(20, make([]byte, 8)),
		"packed fixed32 of 5 bytes":      field(21, make([]byte, 5)),
		"packed fixed64 of 7 bytes":      field(22, make([]byte, 7)),
		"packed fixed64 of 16 bytes":     field(23, make([]byte, 16)),
		"packed enums":                   field(24, []byte{1, 0, 7}),
		"singular number as bytes":       field(8, []byte{1, 2, 3}),
		"float as varint":                varint(10, 1),
		"fixed64 truncated":              cat(tag(11, protowire.Fixed64Type), []byte{1, 2}),
		"bytes not UTF-8":                field(15, []byte{0xff}),
		"string not UTF-8":               field(14, []byte{0xff}),
		"repeated string not UTF-8":      cat(field(25, []byte("a")), field(25, []byte{0xc3})),
		"deep child not UTF-8":           field(16, field(16, field(16, field(14, []byte{0xff})))),
		"deep child packed bad":          field(26, field(16, field(22, make([]byte, 3)))),
		"field numbered 2^29-1":          field(protowire.MaxValidNumber, []byte("far")),
		"field numbered 2^29-1 not UTF8": field(protowire.MaxValidNumber, []byte{0xff}),
		"unknown field 2^29-2 not UTF-8": field(protowire.MaxValidNumber-1, []byte{0xff}),
		"enum out of range":              varint(17, 1<<40),
	})
	add(legacy, raws{
		"proto2 string not UTF-8":     field(1, []byte{0xff}),
		"proto2 unpacked fixed64":     protowire.AppendFixed64(tag(3, protowire.Fixed64Type), 1),
		"proto2 packed int32s":        field(2, []byte{1, 2, 3}),
		"proto2 packed fixed64 short": field(3, make([]byte, 4)),
		"proto3 inside proto2":        field(4, allKinds),
		"proto3 string inside proto2": field(5, field(4, field(14, []byte{0xff}))),
		"proto2 in itself not UTF-8":  field(5, field(5, field(1, []byte{0xff}))),
	})
	return cases
}

// checkAgrees fails t unless Check, and a walk of raw's fields with
// ConsumeTag and ConsumeFieldValue, fail exactly where proto.Unmarshal
// does, with errors that wrap codecs.ErrDecode.
func checkAgrees(t *testing.T, name string, c *codecs.Checker, md protoreflect.MessageDescriptor, raw []byte) {
	t.Helper()
	uerr := proto.Unmarshal(raw, newMessage(md))
	err := c.Check(raw)
	if (err == nil) != (uerr == nil) {
		t.Fatalf("%s (%x): Check error %v, proto.Unmarshal error %v", name, raw, err, uerr)
	}
	if err != nil && !errors.Is(err, codecs.ErrDecode) {
		t.Errorf("%s: Check error %v does not wrap codecs.ErrDecode", name, err)
	}
	var werr error
	for b := raw; len(b) > 0 && werr == nil; {
		num, typ, n := codecs.ConsumeTag(b)
		if n < 0 {
			werr = protowire.ParseError(n)
			break
		}
		b = b[n:]
		n, werr = c.ConsumeFieldValue(num, typ, b)
		if werr == nil {
			if want := protowire.ConsumeFieldValue(num, typ, b); n != want {
				t.Errorf("%s: ConsumeFieldValue of field %d is %d bytes, protowire's %d", name, num, n, want)
			}
			b = b[n:]
		} else if !errors.Is(werr, codecs.ErrDecode) {
			t.Errorf("%s: ConsumeFieldValue error %v does not wrap codecs.ErrDecode", name, werr)
		}
	}
	if (werr == nil) != (err == nil) {
		t.Errorf("%s (%x): a walk with ConsumeFieldValue errs %v, Check %v", name, raw, werr, err)
	}
}

// TestCheckAgreesWithUnmarshal: on crafted encodings, Check fails exactly
// where proto.Unmarshal does.
func TestCheckAgreesWithUnmarshal(t *testing.T) {
	checkers := map[protoreflect.FullName]*codecs.Checker{}
	invalid, valid := 0, 0
	for _, tc := range checkCases(t) {
		c := checkers[tc.md.FullName()]
		if c == nil {
			c = codecs.NewChecker(tc.md)
			checkers[tc.md.FullName()] = c
		}
		checkAgrees(t, tc.name, c, tc.md, tc.raw)
		if proto.Unmarshal(tc.raw, newMessage(tc.md)) != nil {
			invalid++
		} else {
			valid++
		}
	}
	if invalid < 50 || valid < 25 {
		t.Fatalf("%d crafted encodings are invalid and %d valid: the table lost its point", invalid, valid)
	}
}

// TestCheckMutated: Check agrees with proto.Unmarshal on random changes to
// valid encodings.
func TestCheckMutated(t *testing.T) {
	var valid []checkCase
	for _, tc := range checkCases(t) {
		if len(tc.raw) > 0 && proto.Unmarshal(tc.raw, newMessage(tc.md)) == nil {
			valid = append(valid, tc)
		}
	}
	checkers := map[protoreflect.FullName]*codecs.Checker{}
	for _, tc := range valid {
		checkers[tc.md.FullName()] = codecs.NewChecker(tc.md)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	n := 20000
	if testing.Short() {
		n = 2000
	}
	for range n {
		tc := valid[rng.IntN(len(valid))]
		r := append([]byte(nil), tc.raw...)
		for range 1 + rng.IntN(3) {
			switch i := rng.IntN(len(r)); rng.IntN(4) {
			case 0:
				r[i] ^= byte(1 << rng.IntN(8))
			case 1:
				r[i] = byte(rng.IntN(256))
			case 2:
				r = r[:i]
			default:
				r = append(r[:i:i], append([]byte{byte(rng.IntN(256))}, r[i:]...)...)
			}
			if len(r) == 0 {
				break
			}
		}
		checkAgrees(t, tc.name+", mutated", checkers[tc.md.FullName()], tc.md, r)
		if t.Failed() {
			return
		}
	}
}

// FuzzCheck: `go test -fuzz FuzzCheck ./codecs` looks for an encoding of
// one of the crafted cases' types on which Check and proto.Unmarshal
// disagree.
func FuzzCheck(f *testing.F) {
	cases := checkCases(f)
	var types []protoreflect.MessageDescriptor
	index := map[protoreflect.FullName]uint8{}
	for _, tc := range cases {
		if _, ok := index[tc.md.FullName()]; !ok {
			index[tc.md.FullName()] = uint8(len(types))
			types = append(types, tc.md)
		}
		f.Add(index[tc.md.FullName()], tc.raw)
	}
	checkers := make([]*codecs.Checker, len(types))
	for i, md := range types {
		checkers[i] = codecs.NewChecker(md)
	}
	f.Fuzz(func(t *testing.T, which uint8, raw []byte) {
		i := int(which) % len(types)
		checkAgrees(t, "fuzzed", checkers[i], types[i], raw)
	})
}

// TestConsumeTag: ConsumeTag is protowire.ConsumeTag, but for field
// numbers past protowire.MaxValidNumber, which it refuses.
func TestConsumeTag(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		num     protowire.Number
		typ     protowire.Type
		n       int // negative: an error
		errLike string
	}{
		{"one byte", []byte{0x0a, 0xff}, 1, protowire.BytesType, 1, ""},
		{"largest one byte", []byte{0x7f}, 15, 7, 1, ""},
		{"two bytes", []byte{0x80, 0x01}, 16, protowire.VarintType, 2, ""},
		{"field 1 in two bytes", []byte{0x8a, 0x00}, 1, protowire.BytesType, 2, ""},
		{"largest number", protowire.AppendTag(nil, protowire.MaxValidNumber, protowire.Fixed32Type), protowire.MaxValidNumber, protowire.Fixed32Type, 5, ""},
		{"number too large", protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), 0, 0, -1, "invalid field number"},
		{"largest varint", protowire.AppendVarint(nil, 1<<64-1), 0, 0, -1, "invalid field number"},
		{"number 0", []byte{0x02}, 0, 0, -1, "invalid field number"},
		{"number 0 in two bytes", []byte{0x82, 0x00}, 0, 0, -1, "invalid field number"},
		{"empty", nil, 0, 0, -1, "unexpected EOF"},
		{"truncated", []byte{0x80}, 0, 0, -1, "unexpected EOF"},
		{"overlong", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, 0, 0, -1, "variable length integer overflow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			num, typ, n := codecs.ConsumeTag(tt.b)
			if tt.n < 0 {
				if n >= 0 || !strings.Contains(protowire.ParseError(n).Error(), tt.errLike) {
					t.Fatalf("ConsumeTag(%x) = %d, %d, %d; want an error like %q", tt.b, num, typ, n, tt.errLike)
				}
				return
			}
			if num != tt.num || typ != tt.typ || n != tt.n {
				t.Fatalf("ConsumeTag(%x) = %d, %d, %d; want %d, %d, %d", tt.b, num, typ, n, tt.num, tt.typ, tt.n)
			}
			if pnum, ptyp, pn := protowire.ConsumeTag(tt.b); pnum != num || ptyp != typ || pn != n {
				t.Errorf("protowire.ConsumeTag(%x) = %d, %d, %d", tt.b, pnum, ptyp, pn)
			}
		})
	}
}

// TestCheckError: an error names the message and the path of fields to
// its cause.
func TestCheckError(t *testing.T) {
	c := codecs.NewChecker((&livetabv1.ViewInput{}).ProtoReflect().Descriptor())
	tests := []struct {
		name string
		raw  []byte
		want string
	}{
		{"nested string", field(2, field(12, field(2, []byte{0xff}))),
			"codecs: cannot decode livetab.v1.ViewInput: field 2: field 12: field 2: string field is not valid UTF-8"},
		{"tag", []byte{0x00}, "codecs: cannot decode livetab.v1.ViewInput: proto: invalid field number"},
		{"nested tag", field(1, []byte{0x00}), "codecs: cannot decode livetab.v1.ViewInput: field 1: proto: invalid field number"},
		{"value", tag(1, protowire.BytesType), "codecs: cannot decode livetab.v1.ViewInput: field 1: unexpected EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := c.Check(tt.raw)
			// The protobuf module writes "proto:" with a plain or a
			// non-breaking space, chosen per build, so that nobody matches
			// its messages exactly; compare with a plain one.
			if err == nil || strings.ReplaceAll(err.Error(), "\u00a0", " ") != tt.want {
				t.Fatalf("Check(%x) = %v, want %q", tt.raw, err, tt.want)
			}
			if !errors.Is(err, codecs.ErrDecode) {
				t.Errorf("%v does not wrap codecs.ErrDecode", err)
			}
		})
	}
}

// BenchmarkCheck is the check of a loop record of liveview's benchmarks,
// an event in a ViewInput.
func BenchmarkCheck(b *testing.B) {
	ev := &livetabv1.Event{
		Id: "run-s1-3", Account: "acct-0001", Session: "run-s1", Name: "purchase",
		TimeUs: 1_790_000_000_000_000, ReceivedUs: 1_790_000_000_000_000, Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
		DeviceIds: []string{"d-0123456789abcdef01234567"},
		Params:    map[string]string{"screen": "home", "pad": strings.Repeat("x", 64)},
		Request: &livetabv1.Request{Ip: "10.1.2.3", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
			Os: "ios", OsVersion: "17.4", Device: "iphone"},
	}
	raw := marshal(b, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Event{Event: ev}})
	c := codecs.NewChecker((&livetabv1.ViewInput{}).ProtoReflect().Descriptor())
	b.ReportAllocs()
	for b.Loop() {
		if err := c.Check(raw); err != nil {
			b.Fatal(err)
		}
	}
}
