package collector

import (
	"fmt"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// The protobuf body of POST /v1/events is a livetab.v1.EventBatch. It is
// split at the wire level rather than unmarshalled whole, so that one bad
// event is rejected on its own, as in a JSON batch, instead of failing the
// request.

// eventBatchEvents is EventBatch.events' field number.
const eventBatchEvents protowire.Number = 1

// splitProtoEvents returns the encoded events of an EventBatch. It fails,
// saying at which byte, when the body is not wire format or holds anything
// but events.
func splitProtoEvents(body []byte) ([][]byte, error) {
	var events [][]byte
	for off := 0; off < len(body); {
		num, typ, n := protowire.ConsumeTag(body[off:])
		if n < 0 {
			return nil, fmt.Errorf("malformed protobuf EventBatch at byte %d: %w", off, protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, body[off+n:])
		if m < 0 {
			return nil, fmt.Errorf("malformed protobuf EventBatch at byte %d (field %d): %w", off, num, protowire.ParseError(m))
		}
		switch {
		case num != eventBatchEvents:
			return nil, fmt.Errorf("protobuf EventBatch: unknown field %d at byte %d; the body must be a livetab.v1.EventBatch", num, off)
		case typ != protowire.BytesType:
			return nil, fmt.Errorf("protobuf EventBatch: field 1 (events) at byte %d has wire type %s, want bytes", off, wireTypeName(typ))
		}
		v, _ := protowire.ConsumeBytes(body[off+n:])
		events = append(events, v)
		off += n + m
	}
	return events, nil
}

// collectorEventFields are the Event fields that the collector fills: an
// SDK that sends them gets a clear rejection rather than having them
// silently replaced.
var collectorEventFields = map[protoreflect.Name]bool{"received_us": true, "request": true}

// decodeProtoEvent decodes one encoded livetab.v1.Event, rejecting what
// proto.Unmarshal would refuse or keep as unknown fields, with a reason
// that names the field.
func decodeProtoEvent(data []byte) (*livetabv1.Event, *eventError) {
	md := (&livetabv1.Event{}).ProtoReflect().Descriptor()
	if err := checkWire(data, md, "", 0, true); err != nil {
		return nil, err
	}
	ev := &livetabv1.Event{}
	if err := proto.Unmarshal(data, ev); err != nil {
		// checkWire has seen what Unmarshal checks; this is a backstop.
		return nil, rejectf(RejectMalformed, "malformed protobuf event: %v", err)
	}
	return ev, nil
}

// checkWire walks one message of descriptor md in wire format: every field
// must be known (and, at the top of an Event, not one the collector sets),
// have its field's wire type, and strings must be UTF-8. It recurses into
// map entries and nested messages. base is data's offset in the event, for
// the reasons; path names the enclosing field.
func checkWire(data []byte, md protoreflect.MessageDescriptor, path string, base int, top bool) *eventError {
	for off := 0; off < len(data); {
		num, typ, n := protowire.ConsumeTag(data[off:])
		if n < 0 {
			return rejectf(RejectMalformed, "malformed protobuf event at byte %d: %v", base+off, protowire.ParseError(n))
		}
		m := protowire.ConsumeFieldValue(num, typ, data[off+n:])
		if m < 0 {
			return rejectf(RejectMalformed, "malformed protobuf event at byte %d (field %d): %v", base+off, num, protowire.ParseError(m))
		}
		fd := md.Fields().ByNumber(num)
		switch {
		case fd == nil && path == "":
			return rejectf(RejectMalformed, "unknown field %d at byte %d", num, base+off)
		case fd == nil:
			return rejectf(RejectMalformed, "%s: unknown field %d at byte %d", path, num, base+off)
		}
		name := string(fd.Name())
		if path != "" {
			name = path + "." + name
		}
		if top && collectorEventFields[fd.Name()] {
			return rejectf(RejectMalformed, "%s is set by the collector; leave it out", name)
		}
		if want := wireType(fd); typ != want && !(typ == protowire.BytesType && fd.IsPacked()) {
			return rejectf(RejectMalformed, "%s: wire type %s at byte %d, want %s", name, wireTypeName(typ), base+off, wireTypeName(want))
		}
		if typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(data[off+n:])
			valueOff := base + off + n + (m - len(v))
			switch fd.Kind() {
			case protoreflect.StringKind:
				if !utf8.Valid(v) {
					return rejectf(RejectInvalidUTF8, "%s: not valid UTF-8", name)
				}
			case protoreflect.MessageKind:
				if err := checkWire(v, fd.Message(), name, valueOff, false); err != nil {
					return err
				}
			}
		}
		off += n + m
	}
	return nil
}

// wireType is how field fd is encoded when not packed.
func wireType(fd protoreflect.FieldDescriptor) protowire.Type {
	switch fd.Kind() {
	case protoreflect.StringKind, protoreflect.BytesKind, protoreflect.MessageKind:
		return protowire.BytesType
	case protoreflect.GroupKind:
		return protowire.StartGroupType
	case protoreflect.Fixed32Kind, protoreflect.Sfixed32Kind, protoreflect.FloatKind:
		return protowire.Fixed32Type
	case protoreflect.Fixed64Kind, protoreflect.Sfixed64Kind, protoreflect.DoubleKind:
		return protowire.Fixed64Type
	}
	return protowire.VarintType
}

func wireTypeName(t protowire.Type) string {
	switch t {
	case protowire.VarintType:
		return "varint"
	case protowire.Fixed32Type:
		return "fixed32"
	case protowire.Fixed64Type:
		return "fixed64"
	case protowire.BytesType:
		return "bytes"
	case protowire.StartGroupType, protowire.EndGroupType:
		return "group"
	}
	return fmt.Sprintf("%d", t)
}

// probeProtoID reads the id of an event that was rejected, when its wire
// format gets that far, so that the client can tell which one it was.
func probeProtoID(data []byte) string {
	id := ""
	for off := 0; off < len(data); {
		num, typ, n := protowire.ConsumeTag(data[off:])
		if n < 0 {
			break
		}
		m := protowire.ConsumeFieldValue(num, typ, data[off+n:])
		if m < 0 {
			break
		}
		if num == 1 && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(data[off+n:])
			id = clean(string(v), MaxEventIDLen) // the last one wins, as in proto.Unmarshal
		}
		off += n + m
	}
	return id
}
