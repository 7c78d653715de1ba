package collector

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// decodedRecord is a message of eventMessages, read as the processors read
// it.
type decodedRecord struct {
	key    string
	batch  bool     // a SessionEvents, else one Event
	value  []byte   // the record's value
	events [][]byte // the encoded events it holds
	ids    []string
}

// readRecords reads msgs as records of livetab.events, failing the test
// unless each goes to the topic and decodes.
func readRecords(t *testing.T, msgs []*sarama.ProducerMessage) []decodedRecord {
	t.Helper()
	var recs []decodedRecord
	for i, m := range msgs {
		key, err := m.Key.Encode()
		if err != nil {
			t.Fatal(err)
		}
		value, err := m.Value.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if m.Topic != string(topics.Events) {
			t.Errorf("record %d goes to %s, want %s", i, m.Topic, topics.Events)
		}
		evs, err := codecs.EventRecords(value)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		r := decodedRecord{key: string(key), batch: codecs.IsSessionEvents(value), value: value, events: evs}
		for _, raw := range evs {
			ev, err := codecs.Typed[livetabv1.Event](raw)
			if err != nil {
				t.Fatalf("record %d: event does not decode: %v", i, err)
			}
			if ev.Account != r.key {
				t.Errorf("record %d keyed %q holds event %s of account %q", i, key, ev.Id, ev.Account)
			}
			r.ids = append(r.ids, ev.Id)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkEventBytes fails unless each event of recs is encoded exactly as the
// record of that event alone was before events were grouped: appendEvent
// with the request. byID holds the events sent.
func checkEventBytes(t *testing.T, recs []decodedRecord, byID map[string]*livetabv1.Event, req *livetabv1.Request) {
	t.Helper()
	reqWire, err := appendRequest(nil, req)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		for j, raw := range r.events {
			ev := byID[r.ids[j]]
			want, err := appendEvent(nil, ev, reqWire)
			if err != nil {
				t.Fatal(err)
			}
			// Params are maps, written in whatever order they are walked.
			if len(ev.Params) <= 1 && len(req.Params) <= 1 && !bytes.Equal(raw, want) {
				t.Errorf("event %s is\n %x\nwant its record of one event\n %x", ev.Id, raw, want)
			}
			got, err := codecs.Typed[livetabv1.Event](raw)
			if err != nil {
				t.Fatal(err)
			}
			full := proto.Clone(ev).(*livetabv1.Event)
			full.Request = req
			if !proto.Equal(got, full) {
				t.Errorf("event %s decodes to\n %v\nwant\n %v", ev.Id, got, full)
			}
		}
	}
}

// recordIDs renders records as "key:id,id" ("key:[id,id]" for a
// SessionEvents), which shows the kind of each.
func recordIDs(recs []decodedRecord) []string {
	var s []string
	for _, r := range recs {
		ids := strings.Join(r.ids, ",")
		if r.batch {
			ids = "[" + ids + "]"
		}
		s = append(s, r.key+":"+ids)
	}
	return s
}

func TestEventMessages(t *testing.T) {
	c := &Collector{log: slog.New(slog.DiscardHandler)}
	req := &livetabv1.Request{Ip: "192.0.2.1", UserAgent: benchUA, Params: map[string]string{"a": "b"}}
	// ev is a valid event; "-" is one rejected before (nil), and a name
	// of "bad" one that does not encode.
	ev := func(id, account, session string) *livetabv1.Event {
		if id == "-" {
			return nil
		}
		e := &livetabv1.Event{Id: id, Account: account, Session: session, Name: "open", TimeUs: 1, ReceivedUs: 2,
			Platform: livetabv1.Platform_PLATFORM_IOS, DeviceIds: []string{"d1"}, Params: map[string]string{"k": "v"}}
		if strings.HasPrefix(id, "bad") {
			e.Name = "op\xffen"
		}
		return e
	}
	var many []*livetabv1.Event
	var manyWant []string
	const sessions = 2*linearSessions + 3
	for i := range 3 * sessions {
		many = append(many, ev("m"+strconv.Itoa(i), "acme", "s"+strconv.Itoa(i%sessions)))
	}
	for s := range sessions {
		manyWant = append(manyWant, fmt.Sprintf("acme:[m%d,m%d,m%d]", s, s+sessions, s+2*sessions))
	}
	tests := []struct {
		name     string
		evs      []*livetabv1.Event
		want     []string // recordIDs
		rejected []string // ids that do not encode
	}{
		{name: "one event", evs: []*livetabv1.Event{ev("e1", "acme", "s1")}, want: []string{"acme:e1"}},
		{name: "one session", evs: []*livetabv1.Event{ev("e1", "acme", "s1"), ev("e2", "acme", "s1"), ev("e3", "acme", "s1")},
			want: []string{"acme:[e1,e2,e3]"}},
		{name: "sessions interleaved", evs: []*livetabv1.Event{ev("e1", "acme", "s1"), ev("e2", "acme", "s2"), ev("e3", "acme", "s1"),
			ev("e4", "acme", "s3"), ev("e5", "acme", "s2"), ev("e6", "acme", "s1")},
			want: []string{"acme:[e1,e3,e6]", "acme:[e2,e5]", "acme:e4"}},
		{name: "a session id in two accounts", evs: []*livetabv1.Event{ev("e1", "acme", "s1"), ev("e2", "other", "s1"), ev("e3", "acme", "s1"),
			ev("e4", "other", "s1"), ev("e5", "other", "s2")},
			want: []string{"acme:[e1,e3]", "other:[e2,e4]", "other:e5"}},
		{name: "rejected events left out", evs: []*livetabv1.Event{ev("-", "", ""), ev("e2", "acme", "s1"), ev("-", "", ""),
			ev("e4", "acme", "s2"), ev("e5", "acme", "s1"), ev("-", "", "")},
			want: []string{"acme:[e2,e5]", "acme:e4"}},
		{name: "nothing valid", evs: []*livetabv1.Event{ev("-", "", ""), ev("-", "", "")}},
		{name: "events that do not encode", evs: []*livetabv1.Event{ev("bad1", "acme", "s1"), ev("e2", "acme", "s1"), ev("bad3", "acme", "s2"),
			ev("e4", "acme", "s2"), ev("e5", "acme", "s2"), ev("bad6", "acme", "s3"), ev("e7", "acme", "s4"), ev("bad8", "acme", "s4")},
			want: []string{"acme:e2", "acme:[e4,e5]", "acme:e7"}, rejected: []string{"bad1", "bad3", "bad6", "bad8"}},
		{name: "more sessions than are compared one by one", evs: many, want: manyWant},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			results := make([]eventResult, len(tt.evs))
			byID := map[string]*livetabv1.Event{}
			for _, e := range tt.evs {
				if e != nil {
					byID[e.Id] = e
				}
			}
			// The body the events came in, as short as it can be: the
			// encodings outgrow the buffer's first guess.
			msgs, accepted := c.eventMessages(results, tt.evs, req, 10)
			recs := readRecords(t, msgs)
			if got := recordIDs(recs); !slices.Equal(got, tt.want) {
				t.Errorf("records %q, want %q", got, tt.want)
			}
			checkEventBytes(t, recs, byID, req)
			if want := len(byID) - len(tt.rejected); accepted != want {
				t.Errorf("%d events accepted, want %d", accepted, want)
			}
			var rejected []string
			for i, r := range results {
				switch {
				case r.Status == StatusRejected && r.Code == RejectMalformed && r.ID == tt.evs[i].GetId():
					rejected = append(rejected, r.ID)
				case r != (eventResult{}):
					t.Errorf("result %d set to %+v", i, r)
				}
			}
			if !slices.Equal(rejected, tt.rejected) {
				t.Errorf("rejected %q, want %q", rejected, tt.rejected)
			}
		})
	}
}

// bigParams are n params of the longest value.
func bigParams(n int) map[string]string {
	p := map[string]string{}
	for i := range n {
		p[fmt.Sprintf("%0*d", MaxParamKeyLen, i)] = strings.Repeat("v", MaxParamValueLen)
	}
	return p
}

// largestRequest is the longest Request the collector writes: every
// header cut at its limit, MaxRequestParams parameters of the longest
// name and value, the longest IP address.
func largestRequest() *livetabv1.Request {
	long := strings.Repeat("h", MaxHeaderLen)
	params := map[string]string{}
	for i := range MaxRequestParams {
		params[fmt.Sprintf("%0*d", MaxParamKeyLen, i)] = strings.Repeat("q", MaxParamValueLen)
	}
	return &livetabv1.Request{Ip: "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", UserAgent: long, Referrer: long, AcceptLanguage: long,
		Params: params, Os: long, OsVersion: long, Device: long, Browser: long}
}

// largestEvent is the longest event the limits let through.
func largestEvent(id string) *livetabv1.Event {
	ids := make([]string, MaxDeviceIDs)
	for i := range ids {
		ids[i] = strings.Repeat("d", MaxDeviceIDLen)
	}
	return &livetabv1.Event{Id: id + strings.Repeat("i", MaxEventIDLen-len(id)), Account: strings.Repeat("a", MaxNameLen),
		Session: strings.Repeat("s", MaxEventIDLen), Name: strings.Repeat("n", MaxEventNameLen), TimeUs: -1, ReceivedUs: -1,
		Platform: livetabv1.Platform_PLATFORM_OTHER, AppVersion: strings.Repeat("v", MaxAppVersionLen), DeviceIds: ids,
		ClickId: strings.Repeat("c", MaxEventIDLen), Params: bigParams(MaxEventParams)}
}

// TestEventRecordBound checks maxEventRecord against the limits on both
// sides: the largest event fits in it, framed, and a record that size,
// with the longest key, fits what the producer and the broker take.
func TestEventRecordBound(t *testing.T) {
	reqWire, err := appendRequest(nil, largestRequest())
	if err != nil {
		t.Fatal(err)
	}
	ev := largestEvent("e")
	if _, err := checkEvent(proto.Clone(ev).(*livetabv1.Event), fuzzReceived); err != nil {
		// Not the largest then: it breaks a limit.
		t.Fatalf("the largest event is rejected: %v", err)
	}
	enc, err := appendEvent(nil, ev, reqWire)
	if err != nil {
		t.Fatal(err)
	}
	if size := codecs.SessionEventSize(len(enc)); size > maxEventRecord {
		t.Errorf("the largest event takes %d bytes in a SessionEvents, over maxEventRecord (%d)", size, maxEventRecord)
	}
	t.Logf("largest event: %d bytes, its Request %d", len(enc), len(reqWire))

	// A record of maxEventRecord bytes and the longest account as key, as
	// sarama counts it, in a batch of its own (61 bytes of header), is
	// refused neither by the producer nor by a broker's default
	// message.max.bytes (1048588).
	const batchHeader, brokerMax = 61, 1048588
	msg := &sarama.ProducerMessage{Key: sarama.ByteEncoder(make([]byte, MaxNameLen)), Value: sarama.ByteEncoder(make([]byte, maxEventRecord))}
	producerMax := producerConfig(topics.Kafka{Brokers: []string{"127.0.0.1:9092"}}).Producer.MaxMessageBytes
	if size := msg.ByteSize(2); size >= producerMax || size+batchHeader > brokerMax {
		t.Errorf("a record of maxEventRecord takes %d bytes, over the producer's MaxMessageBytes (%d) or the broker's %d",
			size, producerMax, brokerMax)
	}

	// Yet one record could not hold a request's events, which is why a
	// session's are split: a body of the largest events, each taking in it
	// about what it takes without the Request, is several times that once
	// each carries the Request.
	bare, err := appendEvent(nil, ev, nil)
	if err != nil {
		t.Fatal(err)
	}
	perBody := MaxEventsBody / len(bare)
	if total := perBody * len(enc); total <= producerMax {
		t.Errorf("%d events of %d bytes take %d bytes, which would fit one record", perBody, len(enc), total)
	}
}

// TestEventMessagesSplit checks that a session whose events outgrow
// maxEventRecord goes on in further records, each as full as it can be,
// in order, one event alone written as that Event.
func TestEventMessagesSplit(t *testing.T) {
	c := &Collector{log: slog.New(slog.DiscardHandler)}
	req := &livetabv1.Request{Ip: "192.0.2.1", UserAgent: benchUA}
	// Events of 1096 bytes per param (and some 200 more): 3 of 50 params
	// and 2 of 40 take 253,100 bytes of a record, framed, and leave too
	// little for one of 10; 4 of 50 take 220 kB.
	big := func(id string, params int) *livetabv1.Event {
		return &livetabv1.Event{Id: id, Account: "acme", Session: "big", Name: "open", Params: bigParams(params)}
	}
	small := func(id, session string) *livetabv1.Event {
		return &livetabv1.Event{Id: id, Account: "acme", Session: session, Name: "open"}
	}
	largest := func(id string) *livetabv1.Event {
		e := largestEvent(id)
		e.Id, e.Account, e.Session = id, "acme", "largest"
		return e
	}
	tests := []struct {
		name string
		req  *livetabv1.Request
		evs  []*livetabv1.Event
		want []string
	}{
		{name: "one event past the bound", req: req,
			evs:  []*livetabv1.Event{big("b1", 50), small("x1", "x"), big("b2", 50), big("b3", 50), big("b4", 40), big("b5", 40), big("b6", 10), small("x2", "x")},
			want: []string{"acme:[b1,b2,b3,b4,b5]", "acme:b6", "acme:[x1,x2]"}},
		{name: "several full records", req: req,
			evs: []*livetabv1.Event{big("b1", 50), big("b2", 50), big("b3", 50), big("b4", 50), big("b5", 50), big("b6", 50), big("b7", 50),
				big("b8", 50), big("b9", 2)},
			want: []string{"acme:[b1,b2,b3,b4]", "acme:[b5,b6,b7,b8,b9]"}},
		{name: "the largest events", req: largestRequest(),
			evs:  []*livetabv1.Event{largest("l1"), largest("l2"), largest("l3"), small("x1", "x"), largest("l4"), largest("l5")},
			want: []string{"acme:l1", "acme:l2", "acme:l3", "acme:l4", "acme:l5", "acme:x1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			byID := map[string]*livetabv1.Event{}
			for _, e := range tt.evs {
				byID[e.Id] = e
			}
			body := 0
			for _, e := range tt.evs {
				body += proto.Size(e)
			}
			msgs, accepted := c.eventMessages(make([]eventResult, len(tt.evs)), tt.evs, tt.req, body)
			if accepted != len(tt.evs) {
				t.Errorf("%d events accepted, want %d", accepted, len(tt.evs))
			}
			recs := readRecords(t, msgs)
			t.Logf("records %q", recordIDs(recs))
			checkEventBytes(t, recs, byID, tt.req)
			for i, r := range recs {
				if len(r.events) == 1 && r.batch {
					t.Errorf("record %d holds one event as a SessionEvents", i)
				}
				if len(r.events) > 1 && len(r.value) > maxEventRecord {
					t.Errorf("record %d of %d events takes %d bytes, over maxEventRecord", i, len(r.events), len(r.value))
				}
				// Each record is as full as it can be: the next of its
				// session's events would not have fitted.
				if i+1 < len(recs) && byID[recs[i+1].ids[0]].Session == byID[r.ids[0]].Session {
					framed := 0
					for _, e := range r.events {
						framed += codecs.SessionEventSize(len(e))
					}
					if next := codecs.SessionEventSize(len(recs[i+1].events[0])); framed+next <= maxEventRecord {
						t.Errorf("record %d ends at %d bytes, but the next event (%d) would have fitted", i, framed, next)
					}
				}
			}
			if got := recordIDs(recs); !slices.Equal(got, tt.want) {
				t.Errorf("records %q, want %q", got, tt.want)
			}
		})
	}
}
