package sessions

import (
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/procutil"
	"github.com/livetab/livetab/topics"
)

// benchRuntime runs the group's callbacks the way goka does, on a table
// of encoded values and a FIFO loop topic, without the rest of goka or its
// tester (whose own cost per record is several times the callbacks'), so
// that a benchmark measures the processor's work: reading records, the
// table's codec, Add, the loop records.
type benchRuntime struct {
	h     handler
	table map[string][]byte
	loops []benchLoop
}

type benchLoop struct {
	key   string
	value []byte
}

// consume hands a record of topic to its callback, then every loop
// record that it caused, in order.
func (r *benchRuntime) consume(b *testing.B, topic goka.Stream, key string, value []byte, at time.Time) {
	cb := map[goka.Stream]func(goka.Context, any){topics.Hits: r.h.hit, topics.Events: r.h.event}[topic]
	cb(&benchContext{r: r, b: b, topic: topic, key: key, at: at}, value)
	for len(r.loops) > 0 {
		l := r.loops[0]
		r.loops = r.loops[1:]
		// goka's tester, like a real loop record, gives it no timestamp of
		// the record it came from.
		r.h.loop(&benchContext{r: r, b: b, topic: topics.GroupLoop(Group), key: l.key}, l.value)
	}
}

type gokaContext = goka.Context

// benchContext is the goka.Context of one callback; methods the
// processor does not call are left to the nil embedded interface (under
// another name than Context, one of its methods).
type benchContext struct {
	gokaContext
	r     *benchRuntime
	b     *testing.B
	topic goka.Stream
	key   string
	at    time.Time
}

func (c *benchContext) Key() string          { return c.key }
func (c *benchContext) Topic() goka.Stream   { return c.topic }
func (c *benchContext) Partition() int32     { return 0 }
func (c *benchContext) Offset() int64        { return 0 }
func (c *benchContext) Group() goka.Group    { return Group }
func (c *benchContext) Timestamp() time.Time { return c.at }
func (c *benchContext) Fail(err error)       { c.b.Fatal(err) }

func (c *benchContext) Value() any {
	data, ok := c.r.table[c.key]
	if !ok {
		return nil
	}
	v, err := codecs.TimelineCodec{}.Decode(data)
	if err != nil {
		c.b.Fatal(err)
	}
	return v
}

func (c *benchContext) SetValue(value any, _ ...goka.ContextOption) {
	data, err := codecs.TimelineCodec{}.Encode(value)
	if err != nil {
		c.b.Fatal(err)
	}
	c.r.table[c.key] = data
}

func (c *benchContext) Delete(...goka.ContextOption) { delete(c.r.table, c.key) }

func (c *benchContext) Loopback(key string, value any, _ ...goka.ContextOption) {
	c.r.loops = append(c.r.loops, benchLoop{key, value.([]byte)})
}

// BenchmarkCallbacksSessionEvents is the callbacks' work for app sessions
// of 20 events keyed by account, one session per op, as
// BenchmarkProcessorSessionEvents in goka's tester but without it:
// records=single is a record per event, records=batch one SessionEvents.
// B/op and allocs/op are per session; ns/event is per event.
func BenchmarkCallbacksSessionEvents(b *testing.B) {
	const length = 20
	at := time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, batch := range []bool{false, true} {
		name := "records=single"
		if batch {
			name = "records=batch"
		}
		b.Run(name, func(b *testing.B) {
			const sessionsAhead = 100
			records := make([][][]byte, sessionsAhead)
			for s := range records {
				var all []byte
				for i := range length {
					us := at.Add(time.Duration(i) * time.Millisecond).UnixMicro()
					raw, err := proto.Marshal(&livetabv1.Event{
						Id: fmt.Sprintf("s%d-%d", s, i), Account: "acct-0001", Session: fmt.Sprintf("s%d", s), Name: "purchase",
						TimeUs: us, ReceivedUs: us, Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
						DeviceIds: []string{"d-0123456789abcdef01234567"},
						Params:    map[string]string{"screen": "home", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
						Request: &livetabv1.Request{Ip: "10.1.2.3", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
							Os: "ios", OsVersion: "17.4", Device: "iphone"},
					})
					if err != nil {
						b.Fatal(err)
					}
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
			r := &benchRuntime{h: handler{log: procutil.Discard()}, table: map[string][]byte{}}
			b.ReportAllocs()
			ops := 0
			for b.Loop() {
				if ops%sessionsAhead == 0 {
					// The sessions new again.
					b.StopTimer()
					clear(r.table)
					b.StartTimer()
				}
				for _, rec := range records[ops%sessionsAhead] {
					r.consume(b, topics.Events, "acct-0001", rec, at)
				}
				ops++
			}
			tl, err := Read(func(key string) (*livetabv1.Timeline, error) {
				data, ok := r.table[key]
				if !ok {
					return nil, nil
				}
				return codecs.Typed[livetabv1.Timeline](data)
			}, "s0")
			if err != nil || len(tl.GetEntries()) != length || tl.GetChunks() != length/ChunkSize {
				b.Fatalf("session s0: %d entries in %d chunks, %v; want %d in %d", len(tl.GetEntries()), tl.GetChunks(), err, length, length/ChunkSize)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(ops*length), "ns/event")
		})
	}
}
