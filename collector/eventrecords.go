package collector

import (
	"encoding/binary"
	"errors"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// A request's events go to livetab.events one record per app session, not
// one per event: Kafka's cost per record (in the producer, the broker and
// every processor that reads the topic) dominates livetab's CPU, and SDKs
// send a session's events together. A session's events (in request order)
// make a SessionEvents, whose events are each encoded exactly as a record
// of one event would be; a record that holds a single event is that Event
// itself, as before, so readers take both (codecs.EventRecords).

// maxEventRecord bounds the value of a record that holds several events: a
// session whose events take more goes on in further records. A request
// cannot be written whole in one record: its body may take 1 MiB, and each
// of its (up to MaxEventsPerRequest) events carries the request's Request,
// which a query string of MaxRequestParams long parameters makes some 77 kB
// long, so a session's events may take several MB, beyond the producer's
// Producer.MaxMessageBytes (sarama's default, 1 MiB) and the broker's
// message.max.bytes (1 MiB and 12 bytes). A quarter of those leaves room
// for the processors to wrap a batch when they loop it to its session
// (SessionsInput.events) under the same limits; a record this large costs
// little per byte anyway. The largest event the limits allow (134 kB, its
// Request included) fits, so every record keeps to this bound, a record of
// one event too (eventrecords_test.go checks both sides).
const maxEventRecord = 256 << 10

// eventOverhead bounds what an event's encoding takes beyond what it took
// in the body: received_us and time_us (a tag and up to ten bytes each),
// the request field's tag and length, and the frame of an event in a
// SessionEvents (field 16's two bytes of tag and its length).
const eventOverhead = 2*11 + 1 + binary.MaxVarintLen32 + 2 + binary.MaxVarintLen32

// eventRecord is a message of livetab.events with its key and value, in
// one slab: the message refers to the encoders in place, which spares
// boxing each in an interface of its own.
type eventRecord struct {
	msg        sarama.ProducerMessage
	key, value sarama.ByteEncoder
}

// eventMessages encodes the valid events, each with the request's Request,
// into one buffer (bodyLen, the request body's length, sizes it) and
// returns the messages for topics.Events, allocated together, and how many
// events they hold. There is one message per app session (account and
// session id), in the order the sessions first appear, keyed by the
// account; a session with several events is a SessionEvents of them in
// request order, split at maxEventRecord; one of a single event is that
// Event. An event that does not encode is rejected in results.
func (c *Collector) eventMessages(results []eventResult, evs []*livetabv1.Event, req *livetabv1.Request, bodyLen int) ([]*sarama.ProducerMessage, int) {
	// On the stack for any request parseEvents lets through.
	var runsArr [MaxEventsPerRequest]sessionRun
	var nextArr [MaxEventsPerRequest]int32
	runs, next := runsArr[:0], nextArr[:]
	if len(evs) > len(nextArr) {
		runs, next = make([]sessionRun, 0, len(evs)), make([]int32, len(evs))
	}
	runs = groupSessions(evs, runs, next)
	if len(runs) == 0 {
		return nil, 0
	}
	n, keys := 0, 0
	for _, run := range runs {
		n += int(run.n)
		keys += len(evs[run.first].Account)
	}
	reqWire, reqErr := appendRequest(make([]byte, 0, requestSize(req)), req)

	// Each message's value is its events' encoding and its key the
	// account's bytes (topics.Events), both in buf: sarama encodes a key
	// more than once, which costs a copy each time for a StringEncoder. An
	// event takes fewer bytes than in the body, JSON or protobuf, but for
	// the request, its times and its frame: buf is sized once, and should
	// it be short, appending moves on to a new array, which leaves the keys
	// and values already cut where they were. A session's key comes first,
	// then its events one after the other, so that each of its records is
	// a run of buf.
	buf := make([]byte, 0, bodyLen+n*(len(reqWire)+eventOverhead)+keys)
	// Records beyond one per session come from splits, each of which
	// leaves behind more than half of maxEventRecord on average.
	slab := make([]eventRecord, 0, len(runs)+2*cap(buf)/maxEventRecord)
	msgs := make([]*sarama.ProducerMessage, 0, cap(slab))
	add := func(key, value []byte) {
		// Should slab move on to a new array, the messages already taken
		// stay whole in the old one, their encoders with them.
		slab = append(slab, eventRecord{key: key, value: value})
		r := &slab[len(slab)-1]
		r.msg = sarama.ProducerMessage{Topic: string(topics.Events), Key: &r.key, Value: &r.value}
		msgs = append(msgs, &r.msg)
	}
	accepted := 0
	for _, run := range runs {
		// Only a session of several events is framed; one whose record
		// ends up with a single event (a split, an event that did not
		// encode) has that event's frame skipped.
		framed := run.n > 1
		k := len(buf)
		buf = append(buf, evs[run.first].Account...)
		// Capacities end with each part, so that nothing appended later
		// can reach into one.
		key := buf[k:len(buf):len(buf)]
		start, events, lone := len(buf), 0, 0
		for i := run.first; i >= 0; i = next[i] {
			ev := evs[i]
			evStart := len(buf)
			if framed {
				buf = protowire.AppendTag(buf, codecs.SessionEventsEvents, protowire.BytesType)
			}
			mark := len(buf)
			var err error
			if buf, err = appendEvent(buf, ev, reqWire); err != nil || reqErr != nil {
				// Every string was checked for UTF-8; failing here is a bug.
				c.log.Error("encode event", "id", ev.Id, "err", errors.Join(err, reqErr))
				results[i] = eventResult{ID: ev.Id, Status: StatusRejected, Code: RejectMalformed, Reason: "cannot encode event"}
				buf = buf[:evStart]
				continue
			}
			body := mark // where the event's own encoding begins
			if framed {
				size := len(buf) - mark
				buf = insertLength(buf, mark)
				body = len(buf) - size
			}
			if events > 0 && len(buf)-start > maxEventRecord {
				add(key, recordValue(buf, start, evStart, events, lone))
				start, events = evStart, 0
			}
			if events == 0 {
				lone = body
			}
			events++
			accepted++
		}
		if events > 0 {
			add(key, recordValue(buf, start, len(buf), events, lone))
		}
	}
	return msgs, accepted
}

// recordValue is the value of a record made of buf[start:end], which holds
// events framed for a SessionEvents (or one unframed): the whole run, or,
// when it holds a single event, that event alone, which begins at lone.
func recordValue(buf []byte, start, end, events, lone int) []byte {
	if events == 1 {
		start = lone
	}
	return buf[start:end:end]
}

// sessionRun is one app session of a request: the indexes in evs of its
// first and last valid events and how many it has. The events in between
// are linked by groupSessions' next.
type sessionRun struct {
	first, last, n int32
}

// sessionKey names an app session: session ids are the SDKs', so the same
// id in two accounts is two sessions (and records of two keys).
type sessionKey struct {
	account, session string
}

// linearSessions is how many sessions groupSessions looks through one by
// one before it indexes them in a map: SDKs send one session per request,
// and up to some 20 sessions comparing strings costs less than allocating
// and filling a map, whose cost grows only linearly beyond.
const linearSessions = 16

// groupSessions appends to runs the app sessions of the valid events of
// evs, in the order each first appears, and links each session's events:
// next[i] is the index of the event after evs[i] in its session, or -1.
// next has the length of evs.
func groupSessions(evs []*livetabv1.Event, runs []sessionRun, next []int32) []sessionRun {
	var index map[sessionKey]int32
	for i, ev := range evs {
		if ev == nil {
			continue
		}
		next[i] = -1
		r, found := int32(-1), false
		if index != nil {
			r, found = index[sessionKey{ev.Account, ev.Session}]
		} else {
			for j := range runs {
				if f := evs[runs[j].first]; f.Session == ev.Session && f.Account == ev.Account {
					r, found = int32(j), true
					break
				}
			}
		}
		if found {
			next[runs[r].last] = int32(i)
			runs[r].last = int32(i)
			runs[r].n++
			continue
		}
		runs = append(runs, sessionRun{first: int32(i), last: int32(i), n: 1})
		switch {
		case index != nil:
			index[sessionKey{ev.Account, ev.Session}] = int32(len(runs) - 1)
		case len(runs) > linearSessions:
			index = make(map[sessionKey]int32, len(evs)-i+len(runs))
			for j, run := range runs {
				f := evs[run.first]
				index[sessionKey{f.Account, f.Session}] = int32(j)
			}
		}
	}
	return runs
}
