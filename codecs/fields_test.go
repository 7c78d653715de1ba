package codecs_test

import (
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// TestFieldNumbers: every field number constant of fields.go is the
// schema's, so that code reading or writing records with protowire
// follows the generated descriptors.
func TestFieldNumbers(t *testing.T) {
	tests := []struct {
		msg   proto.Message
		field protoreflect.Name
		num   protowire.Number
	}{
		{&livetabv1.Request{}, "ip", codecs.RequestIP},
		{&livetabv1.Request{}, "user_agent", codecs.RequestUserAgent},
		{&livetabv1.Request{}, "referrer", codecs.RequestReferrer},
		{&livetabv1.Request{}, "accept_language", codecs.RequestAcceptLanguage},
		{&livetabv1.Request{}, "params", codecs.RequestParams},
		{&livetabv1.Request{}, "os", codecs.RequestOS},
		{&livetabv1.Request{}, "os_version", codecs.RequestOSVersion},
		{&livetabv1.Request{}, "device", codecs.RequestDevice},
		{&livetabv1.Request{}, "browser", codecs.RequestBrowser},

		{&livetabv1.Hit{}, "id", codecs.HitID},
		{&livetabv1.Hit{}, "account", codecs.HitAccount},
		{&livetabv1.Hit{}, "link", codecs.HitLink},
		{&livetabv1.Hit{}, "campaign", codecs.HitCampaign},
		{&livetabv1.Hit{}, "click_id", codecs.HitClickID},
		{&livetabv1.Hit{}, "session", codecs.HitSession},
		{&livetabv1.Hit{}, "received_us", codecs.HitReceivedUs},
		{&livetabv1.Hit{}, "request", codecs.HitRequest},
		{&livetabv1.Hit{}, "destination", codecs.HitDestination},
		{&livetabv1.Hit{}, "platform", codecs.HitPlatform},
		{&livetabv1.Hit{}, "device_id", codecs.HitDeviceID},
		{&livetabv1.Hit{}, "deep_link", codecs.HitDeepLink},

		{&livetabv1.Event{}, "id", codecs.EventID},
		{&livetabv1.Event{}, "account", codecs.EventAccount},
		{&livetabv1.Event{}, "session", codecs.EventSession},
		{&livetabv1.Event{}, "name", codecs.EventName},
		{&livetabv1.Event{}, "time_us", codecs.EventTimeUs},
		{&livetabv1.Event{}, "received_us", codecs.EventReceivedUs},
		{&livetabv1.Event{}, "platform", codecs.EventPlatform},
		{&livetabv1.Event{}, "app_version", codecs.EventAppVersion},
		{&livetabv1.Event{}, "device_ids", codecs.EventDeviceIDs},
		{&livetabv1.Event{}, "click_id", codecs.EventClickID},
		{&livetabv1.Event{}, "params", codecs.EventParams},
		{&livetabv1.Event{}, "request", codecs.EventRequest},

		{&livetabv1.Conversion{}, "id", codecs.ConversionID},
		{&livetabv1.Conversion{}, "account", codecs.ConversionAccount},
		{&livetabv1.Conversion{}, "hit_session", codecs.ConversionHitSession},
		{&livetabv1.Conversion{}, "app_session", codecs.ConversionAppSession},
		{&livetabv1.Conversion{}, "hit_id", codecs.ConversionHitID},
		{&livetabv1.Conversion{}, "event_id", codecs.ConversionEventID},
		{&livetabv1.Conversion{}, "time_us", codecs.ConversionTimeUs},
		{&livetabv1.Conversion{}, "method", codecs.ConversionMethod},

		{&livetabv1.TimelineEntry{}, "hit", codecs.TimelineEntryHit},
		{&livetabv1.TimelineEntry{}, "event", codecs.TimelineEntryEvent},

		{&livetabv1.AttributionInput{}, "hit", codecs.AttributionInputHit},
		{&livetabv1.TimerState{}, "keys", codecs.TimerStateKeys},
		{&livetabv1.MatchState{}, "hits", codecs.MatchStateHits},
		{&livetabv1.MatchHit{}, "id", codecs.MatchHitID},
		{&livetabv1.MatchHit{}, "received_us", codecs.MatchHitReceivedUs},
		{&livetabv1.MatchHit{}, "account", codecs.MatchHitAccount},
		{&livetabv1.MatchHit{}, "match", codecs.MatchHitMatch},
		{&livetabv1.MatchHit{}, "hit", codecs.MatchHitHit},

		{&livetabv1.ConvertedWith{}, "session", codecs.ConvertedWithSession},
		{&livetabv1.ConvertedWith{}, "method", codecs.ConvertedWithMethod},
		{&livetabv1.ConvertedWith{}, "hit_id", codecs.ConvertedWithHitID},
		{&livetabv1.ConvertedWith{}, "time_us", codecs.ConvertedWithTimeUs},

		{&livetabv1.Counters{}, "hits", codecs.CountersHits},
		{&livetabv1.Counters{}, "events", codecs.CountersEvents},
		{&livetabv1.Counters{}, "conversions", codecs.CountersConversions},

		{&livetabv1.ViewItem{}, "cursor", codecs.ViewItemCursor},
		{&livetabv1.ViewItem{}, "account", codecs.ViewItemAccount},
		{&livetabv1.ViewItem{}, "kind", codecs.ViewItemKind},
		{&livetabv1.ViewItem{}, "session", codecs.ViewItemSession},
		{&livetabv1.ViewItem{}, "received_us", codecs.ViewItemReceivedUs},
		{&livetabv1.ViewItem{}, "converted_with", codecs.ViewItemConvertedWith},
		{&livetabv1.ViewItem{}, "counters", codecs.ViewItemCounters},
		{&livetabv1.ViewItem{}, "emitted_us", codecs.ViewItemEmittedUs},
		{&livetabv1.ViewItem{}, "hit", codecs.ViewItemHit},
		{&livetabv1.ViewItem{}, "event", codecs.ViewItemEvent},
		{&livetabv1.ViewItem{}, "conversion", codecs.ViewItemConversion},

		{&livetabv1.SessionsInput{}, "hit", codecs.SessionsInputHit},
		{&livetabv1.SessionsInput{}, "event", codecs.SessionsInputEvent},
		{&livetabv1.SessionsInput{}, "events", codecs.SessionsInputEvents},
		{&livetabv1.SessionEvents{}, "events", codecs.SessionEventsEvents},
		{&livetabv1.ViewInput{}, "hit", codecs.ViewInputHit},
		{&livetabv1.ViewInput{}, "event", codecs.ViewInputEvent},
		{&livetabv1.ViewInput{}, "conversion", codecs.ViewInputConversion},

		{&livetabv1.AccountState_MarkableItems{}, "items", codecs.AccountStateMarkableItemsItems},
		{&livetabv1.AccountState_PendingMarks{}, "marks", codecs.AccountStatePendingMarksMarks},
	}
	for _, tt := range tests {
		md := tt.msg.ProtoReflect().Descriptor()
		fd := md.Fields().ByName(tt.field)
		if fd == nil {
			t.Errorf("%s has no field %s", md.FullName(), tt.field)
			continue
		}
		if fd.Number() != tt.num {
			t.Errorf("%s.%s is field %d, codecs says %d", md.FullName(), tt.field, fd.Number(), tt.num)
		}
	}
}
