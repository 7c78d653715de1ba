package codecs

import "google.golang.org/protobuf/encoding/protowire"

// Field numbers of the messages of codecs/proto/livetab/v1/livetab.proto,
// named <Message><Field>. The hot paths (the collector's encoders, the
// sessions and liveview processors' record readers, the attribution
// processor's loop records) read and write records with protowire rather
// than decoding them into messages and encoding them again, and so name
// fields by number: these constants are those numbers, in one place.
// TestFieldNumbers pins each to the generated descriptors (package
// livetabv1), so a change of the schema that moves a field fails there
// rather than corrupting records. A message lists the fields some code
// reads or writes by number, not necessarily all of its fields.

// Fields of livetab.v1.Request.
const (
	RequestIP             protowire.Number = 1
	RequestUserAgent      protowire.Number = 2
	RequestReferrer       protowire.Number = 3
	RequestAcceptLanguage protowire.Number = 4
	RequestParams         protowire.Number = 5
	RequestOS             protowire.Number = 6
	RequestOSVersion      protowire.Number = 7
	RequestDevice         protowire.Number = 8
	RequestBrowser        protowire.Number = 9
)

// Fields of livetab.v1.Hit.
const (
	HitID          protowire.Number = 1
	HitAccount     protowire.Number = 2
	HitLink        protowire.Number = 3
	HitCampaign    protowire.Number = 4
	HitClickID     protowire.Number = 5
	HitSession     protowire.Number = 6
	HitReceivedUs  protowire.Number = 7
	HitRequest     protowire.Number = 8
	HitDestination protowire.Number = 9
	HitPlatform    protowire.Number = 10
	HitDeviceID    protowire.Number = 11
	HitDeepLink    protowire.Number = 12
)

// Fields of livetab.v1.Event.
const (
	EventID         protowire.Number = 1
	EventAccount    protowire.Number = 2
	EventSession    protowire.Number = 3
	EventName       protowire.Number = 4
	EventTimeUs     protowire.Number = 5
	EventReceivedUs protowire.Number = 6
	EventPlatform   protowire.Number = 7
	EventAppVersion protowire.Number = 8
	EventDeviceIDs  protowire.Number = 9
	EventClickID    protowire.Number = 10
	EventParams     protowire.Number = 11
	EventRequest    protowire.Number = 12
)

// Fields of livetab.v1.Conversion that are read or written by number.
const (
	ConversionID         protowire.Number = 1
	ConversionAccount    protowire.Number = 2
	ConversionHitSession protowire.Number = 3
	ConversionAppSession protowire.Number = 4
	ConversionHitID      protowire.Number = 5
	ConversionEventID    protowire.Number = 6
	ConversionTimeUs     protowire.Number = 8
	ConversionMethod     protowire.Number = 9
)

// Fields of livetab.v1.TimelineEntry.
const (
	TimelineEntryHit   protowire.Number = 1
	TimelineEntryEvent protowire.Number = 2
)

// Fields of livetab.v1.AttributionInput that are read or written by
// number.
const (
	AttributionInputHit protowire.Number = 1
)

// Fields of livetab.v1.MatchState and livetab.v1.MatchHit that are read or
// written by number: each entry of a match key's hit_entries is encoded as
// field hits.
const (
	MatchStateHits protowire.Number = 4

	MatchHitID         protowire.Number = 1
	MatchHitReceivedUs protowire.Number = 2
	MatchHitAccount    protowire.Number = 3
	MatchHitMatch      protowire.Number = 4
	MatchHitHit        protowire.Number = 5
)

// Fields of livetab.v1.TimerState that are read or written by number:
// each entry of a bucket's entries is encoded as field keys.
const (
	TimerStateKeys protowire.Number = 3
)

// Fields of livetab.v1.ConvertedWith.
const (
	ConvertedWithSession protowire.Number = 1
	ConvertedWithMethod  protowire.Number = 2
	ConvertedWithHitID   protowire.Number = 3
	ConvertedWithTimeUs  protowire.Number = 4
)

// Fields of livetab.v1.Counters.
const (
	CountersHits        protowire.Number = 1
	CountersEvents      protowire.Number = 2
	CountersConversions protowire.Number = 3
)

// Fields of livetab.v1.ViewItem.
const (
	ViewItemCursor        protowire.Number = 1
	ViewItemAccount       protowire.Number = 2
	ViewItemKind          protowire.Number = 3
	ViewItemSession       protowire.Number = 4
	ViewItemReceivedUs    protowire.Number = 5
	ViewItemConvertedWith protowire.Number = 6
	ViewItemCounters      protowire.Number = 7
	ViewItemEmittedUs     protowire.Number = 8
	ViewItemHit           protowire.Number = 10
	ViewItemEvent         protowire.Number = 11
	ViewItemConversion    protowire.Number = 12
)

// Fields of livetab.v1.SessionsInput that are read or written by
// protowire.
const (
	SessionsInputHit    protowire.Number = 4
	SessionsInputEvent  protowire.Number = 5
	SessionsInputEvents protowire.Number = 6
)

// SessionEventsEvents is livetab.v1.SessionEvents' only field; no field of
// Event has its number, which tells a SessionEvents record of
// livetab.events from a single Event (EventRecords).
const SessionEventsEvents protowire.Number = 16

// Fields of livetab.v1.ViewInput.
const (
	ViewInputHit        protowire.Number = 1
	ViewInputEvent      protowire.Number = 2
	ViewInputConversion protowire.Number = 3
)

// Fields of livetab.v1.AccountState.MarkableItems and
// livetab.v1.AccountState.PendingMarks, the forms of AccountState's
// markable and pending lists.
const (
	AccountStateMarkableItemsItems protowire.Number = 1
	AccountStatePendingMarksMarks  protowire.Number = 1
)
