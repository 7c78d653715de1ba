package sessions_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/sessions"
)

// fullHit and fullEvent fill every kind of field the records have.
func fullHit() *livetabv1.Hit {
	return &livetabv1.Hit{
		Id: "h-1", Account: "acme", Link: "go", Campaign: "spring", ClickId: "c-1", Session: "web-1",
		ReceivedUs: us(time.Minute), Destination: "https://example.com/app", Platform: livetabv1.Platform_PLATFORM_IOS,
		DeviceId: "d-1", DeepLink: "app://promo/42",
		Request: &livetabv1.Request{Ip: "10.0.0.1", UserAgent: "Mozilla/5.0 (iPhone)", Referrer: "https://news.example.com",
			AcceptLanguage: "en", Params: map[string]string{"utm_source": "x", "ünï": "çödé"}, Os: "ios", OsVersion: "17.4",
			Device: "iphone", Browser: "safari"},
	}
}

func fullEvent() *livetabv1.Event {
	return &livetabv1.Event{
		Id: "e-1", Account: "acme", Session: "app-1", Name: "purchase", TimeUs: us(time.Hour), ReceivedUs: us(2 * time.Hour),
		Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: "2.3.0", DeviceIds: []string{"d-1", "d-2"}, ClickId: "c-1",
		Params: map[string]string{"screen": "home", "": ""}, Request: &livetabv1.Request{Ip: "10.0.0.2", Params: map[string]string{"a": "b"}},
	}
}

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Wire helpers: a field appended to a record as it is.
func stringField(num protowire.Number, v string) []byte {
	return protowire.AppendString(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func bytesField(num protowire.Number, v []byte) []byte {
	return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), v)
}

func varintField(num protowire.Number, v uint64) []byte {
	return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
}

func join(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// unknownFields are fields no Hit or Event declares, of every wire type.
func unknownFields() []byte {
	group := protowire.AppendTag(nil, 103, protowire.StartGroupType)
	group = append(group, varintField(1, 5)...)
	group = protowire.AppendTag(group, 103, protowire.EndGroupType)
	return join(
		varintField(99, 42),
		stringField(100, "future field"),
		protowire.AppendFixed32(protowire.AppendTag(nil, 101, protowire.Fixed32Type), 7),
		protowire.AppendFixed64(protowire.AppendTag(nil, 102, protowire.Fixed64Type), 8),
		group,
	)
}

// recordCase is a record of a hit (event false) or an event.
type recordCase struct {
	name  string
	event bool
	raw   []byte
}

func validRecords(t testing.TB) []recordCase {
	noTime := fullEvent()
	noTime.TimeUs = 0
	request := marshal(t, &livetabv1.Request{Ip: "10.0.0.3"})
	return []recordCase{
		{"hit", false, marshal(t, fullHit())},
		{"event", true, marshal(t, fullEvent())},
		{"event without device time", true, marshal(t, noTime)},
		{"empty hit", false, nil},
		{"empty event", true, nil},
		{"hit with unknown fields", false, join(marshal(t, fullHit()), unknownFields())},
		{"event with unknown fields", true, join(unknownFields(), marshal(t, fullEvent()))},
		// The last occurrence of a field wins.
		{"hit with its id and time twice", false, join(marshal(t, fullHit()), stringField(1, "h-2"), varintField(7, uint64(us(time.Second))))},
		{"event with its account and times twice", true, join(marshal(t, fullEvent()), stringField(2, "other"),
			varintField(5, uint64(us(3*time.Hour))), varintField(6, uint64(us(4*time.Hour))))},
		// Fields in any order.
		{"hit fields reversed", false, join(varintField(7, uint64(us(time.Minute))), stringField(2, "acme"), stringField(1, "h-3"))},
		// A known field of another wire type is an unknown field.
		{"hit id as a number", false, join(stringField(1, "h-4"), varintField(1, 9), stringField(2, "acme"))},
		{"event time as bytes", true, join(stringField(1, "e-2"), stringField(2, "acme"), stringField(5, "not a number"), varintField(6, 77))},
		// Message fields met twice are merged.
		{"hit request twice", false, join(marshal(t, fullHit()), bytesField(8, request))},
		{"event with unknown fields in its request", true, join(stringField(1, "e-3"), bytesField(12, join(request, unknownFields())))},
		{"negative time", false, join(stringField(1, "h-5"), varintField(7, uint64(1<<64-1000)))},
	}
}

func readRecord(raw []byte, event bool) (sessions.Record, error) {
	if event {
		return sessions.ReadEvent(raw)
	}
	return sessions.ReadHit(raw)
}

// straightforward is the entry of a record built the straightforward way:
// the record decoded and set in a TimelineEntry.
func straightforward(raw []byte, event bool) (*livetabv1.TimelineEntry, error) {
	if event {
		ev := &livetabv1.Event{}
		if err := proto.Unmarshal(raw, ev); err != nil {
			return nil, err
		}
		return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: ev}}, nil
	}
	h := &livetabv1.Hit{}
	if err := proto.Unmarshal(raw, h); err != nil {
		return nil, err
	}
	return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{Hit: h}}, nil
}

// checkRecord checks rec, read from a record, against want, the entry
// built the straightforward way.
func checkRecord(t *testing.T, rec sessions.Record, want *livetabv1.TimelineEntry) {
	t.Helper()
	got := &livetabv1.TimelineEntry{}
	if err := proto.Unmarshal(rec.Entry.GetEntry(), got); err != nil {
		t.Fatalf("stored entry does not decode: %v", err)
	}
	if !proto.Equal(got, want) {
		t.Errorf("stored entry decodes to %v, want %v", got, want)
	}
	// Unknown fields included: proto.Equal compares them, but only where
	// the message has them, so check each level that may.
	if g, w := got.GetHit().ProtoReflect().GetUnknown(), want.GetHit().ProtoReflect().GetUnknown(); !bytes.Equal(g, w) {
		t.Errorf("hit's unknown fields %x, want %x", g, w)
	}
	if g, w := got.GetEvent().ProtoReflect().GetUnknown(), want.GetEvent().ProtoReflect().GetUnknown(); !bytes.Equal(g, w) {
		t.Errorf("event's unknown fields %x, want %x", g, w)
	}
	id, account, session := want.GetHit().GetId(), want.GetHit().GetAccount(), want.GetHit().GetSession()
	if want.GetEvent() != nil {
		id, account, session = want.GetEvent().GetId(), want.GetEvent().GetAccount(), want.GetEvent().GetSession()
	}
	if rec.ID != id || rec.Account != account || rec.Session != session {
		t.Errorf("read id %q account %q session %q, want %q %q %q", rec.ID, rec.Account, rec.Session, id, account, session)
	}
	if rec.Entry.GetId() != idOf(want) || rec.Entry.GetTimeUs() != sessions.EntryTime(want) {
		t.Errorf("stored entry id %q time %d, want %q %d", rec.Entry.GetId(), rec.Entry.GetTimeUs(), idOf(want), sessions.EntryTime(want))
	}
	// NewEntry, from the decoded entry, stores the same.
	if s, err := sessions.NewEntry(want); err != nil || s.GetId() != rec.Entry.GetId() || s.GetTimeUs() != rec.Entry.GetTimeUs() {
		t.Errorf("NewEntry = %v, %v; want id %q time %d", s, err, rec.Entry.GetId(), rec.Entry.GetTimeUs())
	}
}

func TestReadRecordIsTheEntry(t *testing.T) {
	for _, tc := range validRecords(t) {
		t.Run(tc.name, func(t *testing.T) {
			want, err := straightforward(tc.raw, tc.event)
			if err != nil {
				t.Fatalf("the case's record does not decode: %v", err)
			}
			raw := bytes.Clone(tc.raw)
			rec, err := readRecord(raw, tc.event)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			// The entry is a copy: the record's buffer may be reused.
			for i := range raw {
				raw[i] = 0xff
			}
			checkRecord(t, rec, want)
		})
	}
}

// invalidRecords fail at each level readRecord checks: a tag, a field's
// framing, a value read, a value nested deeper. codecs' tests of
// codecs.Checker probe in full what proto.Unmarshal refuses.
func invalidRecords(t testing.TB) []recordCase {
	hit := marshal(t, fullHit())
	event := marshal(t, fullEvent())
	var out []recordCase
	for _, c := range []struct {
		name string
		raw  []byte
	}{
		{"garbage", []byte{0xff, 0xff, 0xff}},
		{"field number past the maximum", join(event, protowire.AppendVarint(nil, uint64(protowire.MaxValidNumber+1)<<3), []byte{0x01})},
		{"length past the end", join(stringField(1, "h"), []byte{0x12, 0x7f, 'a'})},
		{"id not UTF-8", join(stringField(1, "\xff"), stringField(2, "acme"))},
		{"varint too long", join(protowire.AppendTag(nil, 15, protowire.VarintType), bytes.Repeat([]byte{0xff}, 10), []byte{0x01})},
		{"unknown field truncated", join(event, stringField(100, "abc")[:3])},
	} {
		out = append(out, recordCase{c.name + " (hit)", false, c.raw}, recordCase{c.name + " (event)", true, c.raw})
	}
	return append(out,
		recordCase{"hit with a request field not UTF-8", false, join(hit, bytesField(8, stringField(2, "bad \xff agent")))},
		recordCase{"event with a params key not UTF-8", true, join(event, bytesField(11, stringField(1, "key \xc0")))},
	)
}

func TestReadRecordFailsAsUnmarshal(t *testing.T) {
	for _, tc := range invalidRecords(t) {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := straightforward(tc.raw, tc.event); err == nil {
				t.Fatal("the case's record decodes")
			}
			rec, err := readRecord(tc.raw, tc.event)
			if !errors.Is(err, codecs.ErrDecode) {
				t.Errorf("read = %+v, %v; want an error wrapping codecs.ErrDecode", rec, err)
			}
		})
	}
}

// FuzzReadRecord: a record reads exactly when it decodes, into the entry
// built from it decoded. `go test -fuzz FuzzReadRecord
// ./processors/sessions` explores beyond the seeds.
func FuzzReadRecord(f *testing.F) {
	for _, tc := range append(validRecords(f), invalidRecords(f)...) {
		f.Add(tc.raw, tc.event)
	}
	f.Fuzz(func(t *testing.T, raw []byte, event bool) {
		want, wantErr := straightforward(raw, event)
		rec, err := readRecord(raw, event)
		if (err == nil) != (wantErr == nil) {
			t.Fatalf("read error %v, proto.Unmarshal error %v", err, wantErr)
		}
		if err == nil {
			checkRecord(t, rec, want)
		}
	})
}
