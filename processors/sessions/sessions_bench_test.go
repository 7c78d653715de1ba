package sessions_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

// The sessions processor's per-message work, for `go test -bench .
// -benchmem ./processors/sessions`: each hit or event record is read into
// an entry and added to its session's open chunk, which goka decodes from
// the table and encodes back; every ChunkSize entries the chunk is sealed,
// looped to its own key and stored there. The cost per entry is bounded by
// ChunkSize, whatever the session's length (at most sessions.MaxEntries
// entries are kept), and entries stay encoded, so that it is mostly copying.

var benchT0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func benchEntry(session string, i int) *livetabv1.TimelineEntry {
	us := benchT0.Add(time.Duration(i) * time.Millisecond).UnixMicro()
	return &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: &livetabv1.Event{
		Id: fmt.Sprintf("%s-%d", session, i), Account: "acct-0001", Session: session, Name: "purchase",
		TimeUs: us, ReceivedUs: us, Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
		DeviceIds: []string{"d-0123456789abcdef01234567"},
		Params:    map[string]string{"screen": "home", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		Request: &livetabv1.Request{Ip: "10.1.2.3", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
			Os: "ios", OsVersion: "17.4", Device: "iphone"},
	}}}
}

// benchRecord is the record of event i of session, as topics.Events
// carries it.
func benchRecord(b *testing.B, session string, i int) []byte {
	raw, err := proto.Marshal(benchEntry(session, i).GetEvent())
	if err != nil {
		b.Fatal(err)
	}
	return raw
}

// benchStored is event i of session as a timeline stores it.
func benchStored(b *testing.B, session string, i int) *livetabv1.Timeline_Stored {
	rec, err := sessions.ReadEvent(benchRecord(b, session, i))
	if err != nil {
		b.Fatal(err)
	}
	return rec.Entry
}

// benchSession is the stored value of a session after n events.
func benchSession(b *testing.B, n int) *livetabv1.Timeline {
	tl := &livetabv1.Timeline{Session: "s", Account: "acct-0001"}
	for i := range n {
		sessions.Add(tl, benchStored(b, "s", i), benchT0)
	}
	return tl
}

// benchSizes are session lengths: a typical app session of the bench's
// load, a long one, and the bound.
func benchSizes() []int { return []int{0, 20, 100, sessions.MaxEntries} }

// BenchmarkAdd is the pure part: the events n to n+ChunkSize-1 of a
// session, one per op, each added to the session's value after the one
// before (so one in ChunkSize seals the open chunk).
func BenchmarkAdd(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			base := benchSession(b, n)
			var next []*livetabv1.Timeline_Stored
			for i := range sessions.ChunkSize {
				next = append(next, benchStored(b, "s", n+i))
			}
			var tl *livetabv1.Timeline
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%sessions.ChunkSize == 0 {
					tl = &livetabv1.Timeline{Session: base.Session, Account: base.Account, Chunks: base.Chunks,
						Stored: base.Stored[:len(base.Stored):len(base.Stored)]}
				}
				if _, changed := sessions.Add(tl, next[i%sessions.ChunkSize], benchT0); !changed {
					b.Fatal("not added")
				}
				i++
			}
		})
	}
}

// BenchmarkEventMessage is the callbacks' work per event, for the events n
// to n+ChunkSize-1 of a session, one per op: read the event's record
// (ReadEvent), decode the stored value, add, encode it back; and when the
// open chunk is sealed, the
// loopback of the chunk, its decoding by the loop callback and the encoding
// of the chunk for its own key (the drop beyond MaxChunks is one more small
// loopback). stored-bytes is the mean size of the session's value written.
func BenchmarkEventMessage(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			initial, err := codecs.TimelineCodec{}.Encode(benchSession(b, n))
			if err != nil {
				b.Fatal(err)
			}
			var records [][]byte
			for i := range sessions.ChunkSize {
				records = append(records, benchRecord(b, "s", n+i))
			}
			var stored []byte
			written, seals := 0, 0
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				if i%sessions.ChunkSize == 0 {
					stored = initial
				}
				rec, err := sessions.ReadEvent(records[i%sessions.ChunkSize])
				if err != nil {
					b.Fatal(err)
				}
				v, err := codecs.TimelineCodec{}.Decode(stored)
				if err != nil {
					b.Fatal(err)
				}
				tl := v.(*livetabv1.Timeline)
				sealed, _ := sessions.Add(tl, rec.Entry, benchT0)
				if stored, err = (codecs.TimelineCodec{}).Encode(tl); err != nil {
					b.Fatal(err)
				}
				written += len(stored)
				if sealed != nil {
					seals++
					loop, err := proto.Marshal(&livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Chunk{Chunk: sealed}})
					if err != nil {
						b.Fatal(err)
					}
					in, err := codecs.Typed[livetabv1.SessionsInput](loop)
					if err != nil {
						b.Fatal(err)
					}
					if _, err := (codecs.TimelineCodec{}).Encode(in.GetChunk()); err != nil {
						b.Fatal(err)
					}
				}
				i++
			}
			b.ReportMetric(float64(written)/float64(i), "stored-bytes")
			b.ReportMetric(float64(seals)/float64(i), "seals/op")
		})
	}
}

// BenchmarkProcessorEvent runs the processor in goka's tester: app
// sessions of 20 and of 100 events, each event consumed from topics.Events
// (with the loopbacks of the chunks it seals).
func BenchmarkProcessorEvent(b *testing.B) {
	for _, length := range []int{20, 100} {
		b.Run(fmt.Sprintf("session=%d", length), func(b *testing.B) {
			tt := gokatest.Start(b, sessions.Graph())
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				session := fmt.Sprintf("s%d", i/length)
				ev := benchEntry(session, i).GetEvent()
				data, err := proto.Marshal(ev)
				if err != nil {
					b.Fatal(err)
				}
				tt.Consume(string(topics.Events), session, data, tester.WithTime(benchT0))
				if i%500 == 499 {
					// Keep the tester's storage small: it re-sorts its keys
					// on every new key. Clearing at a multiple of the
					// session length cuts no session.
					b.StopTimer()
					tt.ClearValues()
					b.StartTimer()
				}
				i++
			}
		})
	}
}

// BenchmarkRead is what the timeline API costs the views per session: the
// values of a session and its chunks decoded by the table's codec (as a
// goka view's Get does), and Read's merge and decoding of the entries.
func BenchmarkRead(b *testing.B) {
	for _, n := range []int{20, sessions.MaxEntries} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			table := map[string][]byte{}
			tl := &livetabv1.Timeline{Session: "s", Account: "acct-0001"}
			for i := range n {
				if sealed, _ := sessions.Add(tl, benchStored(b, "s", i), benchT0); sealed != nil {
					v, err := codecs.TimelineCodec{}.Encode(sealed)
					if err != nil {
						b.Fatal(err)
					}
					table[sessions.ChunkKey("s", tl.Chunks-1)] = v
				}
			}
			v, err := codecs.TimelineCodec{}.Encode(tl)
			if err != nil {
				b.Fatal(err)
			}
			table["s"] = v
			get := func(key string) (*livetabv1.Timeline, error) {
				data, ok := table[key]
				if !ok {
					return nil, nil
				}
				return codecs.Typed[livetabv1.Timeline](data)
			}
			b.ReportAllocs()
			for b.Loop() {
				got, err := sessions.Read(get, "s")
				if err != nil || len(got.GetEntries()) != n {
					b.Fatalf("Read: %d entries, %v; want %d", len(got.GetEntries()), err, n)
				}
			}
		})
	}
}

// BenchmarkProcessorSessionEvents runs the processor in goka's tester on
// app sessions of 20 events keyed by account, as the collector writes
// them, one session per op: records=single is one record per event, each
// looped to its session and added there; records=batch is the session's
// events in one SessionEvents, looped once and added with one read and one
// write of the session's value. B/op and allocs/op are per session;
// ns/event is per event.
func BenchmarkProcessorSessionEvents(b *testing.B) {
	const length = 20
	for _, batch := range []bool{false, true} {
		name := "records=single"
		if batch {
			name = "records=batch"
		}
		b.Run(name, func(b *testing.B) {
			tt := gokatest.Start(b, sessions.Graph())
			// The records are built before the clock runs, so that only the
			// processor is measured.
			const sessionsAhead = 100
			records := make([][][]byte, sessionsAhead)
			for s := range records {
				session := fmt.Sprintf("s%d", s)
				var all []byte
				for i := range length {
					raw := benchRecord(b, session, i)
					if batch {
						all = codecs.AppendSessionEvent(all, raw)
					} else {
						records[s] = append(records[s], raw)
					}
				}
				if batch {
					records[s] = [][]byte{all}
				}
			}
			b.ReportAllocs()
			ops := 0
			for b.Loop() {
				if ops%sessionsAhead == 0 && ops > 0 {
					// Keep the tester's storage small (it re-sorts its keys
					// on every new key), and the sessions new.
					b.StopTimer()
					tt.ClearValues()
					b.StartTimer()
				}
				for _, rec := range records[ops%sessionsAhead] {
					tt.Consume(string(topics.Events), "acct-0001", rec, tester.WithTime(benchT0))
				}
				ops++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*length), "ns/event")
		})
	}
}
