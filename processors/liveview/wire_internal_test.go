package liveview

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// TestFieldNumbers: the field numbers the loop reads and writes with
// protowire are the schema's.
func TestFieldNumbers(t *testing.T) {
	fields := []struct {
		msg  proto.Message
		name protoreflect.Name
		num  protowire.Number
	}{
		{&livetabv1.ViewInput{}, "hit", viewInputHit},
		{&livetabv1.ViewInput{}, "event", viewInputEvent},
		{&livetabv1.ViewInput{}, "conversion", viewInputConversion},
		{&livetabv1.ViewItem{}, "cursor", itemCursor},
		{&livetabv1.ViewItem{}, "account", itemAccount},
		{&livetabv1.ViewItem{}, "kind", itemKind},
		{&livetabv1.ViewItem{}, "session", itemSession},
		{&livetabv1.ViewItem{}, "received_us", itemReceivedUs},
		{&livetabv1.ViewItem{}, "converted_with", itemConvertedWith},
		{&livetabv1.ViewItem{}, "counters", itemCounters},
		{&livetabv1.ViewItem{}, "emitted_us", itemEmittedUs},
		{&livetabv1.ViewItem{}, "hit", itemHit},
		{&livetabv1.ViewItem{}, "event", itemEvent},
		{&livetabv1.ViewItem{}, "conversion", itemConversion},
		{&livetabv1.Hit{}, "id", payloadID},
		{&livetabv1.Hit{}, "account", payloadAccount},
		{&livetabv1.Hit{}, "session", hitSession},
		{&livetabv1.Hit{}, "received_us", hitReceivedUs},
		{&livetabv1.Event{}, "id", payloadID},
		{&livetabv1.Event{}, "account", payloadAccount},
		{&livetabv1.Event{}, "session", eventSession},
		{&livetabv1.Event{}, "name", eventName},
		{&livetabv1.Event{}, "received_us", eventReceivedUs},
		{&livetabv1.Conversion{}, "id", payloadID},
		{&livetabv1.Conversion{}, "account", payloadAccount},
		{&livetabv1.Conversion{}, "hit_session", conversionHitSession},
		{&livetabv1.Conversion{}, "app_session", conversionAppSession},
		{&livetabv1.Conversion{}, "hit_id", conversionHitID},
		{&livetabv1.Conversion{}, "event_id", conversionEventID},
		{&livetabv1.Conversion{}, "time_us", conversionTimeUs},
		{&livetabv1.Conversion{}, "method", conversionMethod},
		{&livetabv1.ConvertedWith{}, "session", convertedWithSession},
		{&livetabv1.ConvertedWith{}, "method", convertedWithMethod},
		{&livetabv1.ConvertedWith{}, "hit_id", convertedWithHitID},
		{&livetabv1.ConvertedWith{}, "time_us", convertedWithTimeUs},
		{&livetabv1.Counters{}, "hits", countersHits},
		{&livetabv1.Counters{}, "events", countersEvents},
		{&livetabv1.Counters{}, "conversions", countersConversions},
		{&livetabv1.AccountState_MarkableItems{}, "items", listEntry},
		{&livetabv1.AccountState_PendingMarks{}, "marks", listEntry},
	}
	for _, f := range fields {
		md := f.msg.ProtoReflect().Descriptor()
		fd := md.Fields().ByName(f.name)
		if fd == nil {
			t.Errorf("%s has no field %s", md.FullName(), f.name)
			continue
		}
		if fd.Number() != f.num {
			t.Errorf("%s.%s is field %d, the code says %d", md.FullName(), f.name, fd.Number(), f.num)
		}
	}
}
