package sessions

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// TestFieldNumbers: the numbers wire.go reads are the schema's.
func TestFieldNumbers(t *testing.T) {
	tests := []struct {
		msg   proto.Message
		field string
		num   protowire.Number
	}{
		{&livetabv1.TimelineEntry{}, "hit", entryHit},
		{&livetabv1.TimelineEntry{}, "event", entryEvent},
		{&livetabv1.Hit{}, "id", recordID},
		{&livetabv1.Hit{}, "account", recordAccount},
		{&livetabv1.Hit{}, "received_us", hitReceivedUs},
		{&livetabv1.Event{}, "id", recordID},
		{&livetabv1.Event{}, "account", recordAccount},
		{&livetabv1.Event{}, "time_us", eventTimeUs},
		{&livetabv1.Event{}, "received_us", eventReceivedUs},
	}
	for _, tt := range tests {
		md := tt.msg.ProtoReflect().Descriptor()
		fd := md.Fields().ByName(protoreflect.Name(tt.field))
		if fd == nil || protowire.Number(fd.Number()) != tt.num {
			t.Errorf("%s.%s: field %v, wire.go reads %d", md.FullName(), tt.field, fd, tt.num)
		}
	}
}
