package sessions

import (
	"fmt"
	"sync"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// The processor reads its hit and event records with protowire: a record
// becomes a stored entry (livetabv1.Timeline_Stored) without being decoded
// into a message nor encoded from one. A TimelineEntry holding a hit or an
// event is the tag of its oneof field and the length of the record followed
// by the record itself, so the entry is the record's bytes behind a prefix.
// The field numbers are codecs' (codecs/fields.go).

// Record is a hit's or an event's record as the processor reads it.
type Record struct {
	// ID, Account and Session are the hit's or event's (empty when it has
	// none).
	ID, Account, Session string
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
	return readRecord(raw, codecs.TimelineEntryHit)
}

// ReadEvent reads raw, an encoded Event, as ReadHit reads a hit: it reads
// only the event's id, account, time and received time.
func ReadEvent(raw []byte) (Record, error) {
	return readRecord(raw, codecs.TimelineEntryEvent)
}

// readRecord reads raw, a Hit (field codecs.TimelineEntryHit) or an Event
// (codecs.TimelineEntryEvent), in one pass: it checks every field, and
// keeps the last occurrence of those it reads, as proto.Unmarshal does.
func readRecord(raw []byte, field protowire.Number) (Record, error) {
	isEvent := field == codecs.TimelineEntryEvent
	check, prefix, what := checkers().hit, "h:", "hit"
	idField, accountField, sessionField, receivedField := codecs.HitID, codecs.HitAccount, codecs.HitSession, codecs.HitReceivedUs
	if isEvent {
		check, prefix, what = checkers().event, "e:", "event"
		idField, accountField, sessionField, receivedField = codecs.EventID, codecs.EventAccount, codecs.EventSession, codecs.EventReceivedUs
	}
	var (
		id, account, session []byte
		timeUs, receiveUs    int64
	)
	for b := raw; len(b) > 0; {
		num, typ, n := codecs.ConsumeTag(b)
		if n < 0 {
			return Record{}, fmt.Errorf("%w %s: %w", codecs.ErrDecode, what, protowire.ParseError(n))
		}
		b = b[n:]
		n, err := check.ConsumeFieldValue(num, typ, b)
		if err != nil {
			return Record{}, err
		}
		// The value is checked: only its framing is read. A known field
		// of another wire type is an unknown field, as in proto.Unmarshal.
		switch typ {
		case protowire.BytesType:
			switch num {
			case idField:
				id, _ = protowire.ConsumeBytes(b[:n])
			case accountField:
				account, _ = protowire.ConsumeBytes(b[:n])
			case sessionField:
				session, _ = protowire.ConsumeBytes(b[:n])
			}
		case protowire.VarintType:
			switch {
			case num == receivedField:
				v, _ := protowire.ConsumeVarint(b[:n])
				receiveUs = int64(v)
			case isEvent && num == codecs.EventTimeUs:
				v, _ := protowire.ConsumeVarint(b[:n])
				timeUs = int64(v)
			}
		}
		b = b[n:]
	}
	// EntryTime: an event's device time when it has one.
	at := receiveUs
	if isEvent && timeUs > 0 {
		at = timeUs
	}
	entry := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeBytes(len(raw)))
	entry = protowire.AppendTag(entry, field, protowire.BytesType)
	entry = protowire.AppendBytes(entry, raw)
	key := prefix + string(id)
	return Record{
		ID:      key[len(prefix):],
		Account: string(account),
		Session: string(session),
		Entry:   &livetabv1.Timeline_Stored{Id: key, TimeUs: at, Entry: entry},
	}, nil
}

// recordCheckers check the records the processor reads.
type recordCheckers struct{ hit, event *codecs.Checker }

// checkers are built once: they derive from the generated descriptors
// only, and never change.
var checkers = sync.OnceValue(func() recordCheckers {
	return recordCheckers{
		hit:   codecs.NewChecker((&livetabv1.Hit{}).ProtoReflect().Descriptor()),
		event: codecs.NewChecker((&livetabv1.Event{}).ProtoReflect().Descriptor()),
	}
})
