package codecs

import (
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
)

// A record of livetab.events is either one Event or a SessionEvents: the
// events of one app session that came in one request. EventRecords reads
// either; AppendSessionEvent builds the latter.

// IsSessionEvents reports whether rec, a record of livetab.events, is a
// SessionEvents: whether its first field is SessionEventsEvents, which no
// field of Event numbers.
func IsSessionEvents(rec []byte) bool {
	num, _, n := protowire.ConsumeTag(rec)
	return n > 0 && num == SessionEventsEvents
}

// EventRecords returns the encoded events of rec, a record of
// livetab.events: each event of a SessionEvents, or rec itself when it is
// one Event. The events share rec's memory. Only a SessionEvents' own
// framing is checked: it fails (wrapping ErrDecode) when a field of it is
// not a length-delimited SessionEventsEvents or runs past the end; the
// events are left to their readers, which check them as they would a
// record of their own.
func EventRecords(rec []byte) ([][]byte, error) {
	if !IsSessionEvents(rec) {
		return [][]byte{rec}, nil
	}
	// One pass to count, so that the slice is allocated once.
	n, err := eachSessionEvent(rec, nil)
	if err != nil {
		return nil, err
	}
	out := make([][]byte, 0, n)
	_, err = eachSessionEvent(rec, func(ev []byte) { out = append(out, ev) })
	return out, err
}

// eachSessionEvent calls fn (when not nil) with each event of a
// SessionEvents and returns how many there are.
func eachSessionEvent(rec []byte, fn func([]byte)) (int, error) {
	count := 0
	for off := 0; off < len(rec); {
		num, typ, n := ConsumeTag(rec[off:])
		if n < 0 {
			return 0, fmt.Errorf("%w session events at byte %d: %w", ErrDecode, off, protowire.ParseError(n))
		}
		if num != SessionEventsEvents || typ != protowire.BytesType {
			return 0, fmt.Errorf("%w session events at byte %d: field %d of wire type %d, want only field %d (events)", ErrDecode, off, num, typ, SessionEventsEvents)
		}
		v, m := protowire.ConsumeBytes(rec[off+n:])
		if m < 0 {
			return 0, fmt.Errorf("%w session events at byte %d: %w", ErrDecode, off, protowire.ParseError(m))
		}
		if fn != nil {
			fn(v)
		}
		count++
		off += n + m
	}
	return count, nil
}

// AppendSessionEvent appends event, an encoded Event, to b, a
// SessionEvents being built (empty at first).
func AppendSessionEvent(b, event []byte) []byte {
	b = protowire.AppendTag(b, SessionEventsEvents, protowire.BytesType)
	return protowire.AppendBytes(b, event)
}

// SessionEventsOf is the SessionEvents record of events, encoded Events.
func SessionEventsOf(events ...[]byte) []byte {
	n := 0
	for _, ev := range events {
		n += SessionEventSize(len(ev))
	}
	b := make([]byte, 0, n)
	for _, ev := range events {
		b = AppendSessionEvent(b, ev)
	}
	return b
}

// SessionEventSize is how many bytes AppendSessionEvent adds for an event
// of n bytes.
func SessionEventSize(n int) int {
	return protowire.SizeTag(SessionEventsEvents) + protowire.SizeBytes(n)
}
