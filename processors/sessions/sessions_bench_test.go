package sessions_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

// The sessions processor's per-message work, for `go test -bench .
// -benchmem ./processors/sessions`: each hit or event is inserted into its
// session's timeline, which goka decodes from the table and encodes back,
// so the cost grows with the session's length (at most
// sessions.MaxEntries entries).

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

func benchTimeline(entries int) *livetabv1.Timeline {
	tl := &livetabv1.Timeline{Session: "s", Account: "acct-0001"}
	for i := range entries {
		sessions.Insert(tl, benchEntry("s", i), benchT0)
	}
	return tl
}

// benchSizes are session lengths: a typical app session of the bench's
// load, a long one, and the bound.
func benchSizes() []int { return []int{0, 20, 100, sessions.MaxEntries} }

// BenchmarkInsert is the pure part: one new entry, newest, into a
// timeline of n entries.
func BenchmarkInsert(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			base := benchTimeline(n)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				tl := &livetabv1.Timeline{Session: base.Session, Account: base.Account, Entries: base.Entries[:len(base.Entries):len(base.Entries)]}
				if !sessions.Insert(tl, benchEntry("s", n+i), benchT0) {
					b.Fatal("not inserted")
				}
				i++
			}
		})
	}
}

// BenchmarkEventMessage is the callback's work per event around Insert:
// decode the stored timeline, insert, encode it back.
func BenchmarkEventMessage(b *testing.B) {
	for _, n := range benchSizes() {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			stored, err := codecs.TimelineCodec{}.Encode(benchTimeline(n))
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				v, err := codecs.TimelineCodec{}.Decode(stored)
				if err != nil {
					b.Fatal(err)
				}
				tl := v.(*livetabv1.Timeline)
				sessions.Insert(tl, benchEntry("s", 1_000_000), benchT0)
				if _, err := (codecs.TimelineCodec{}).Encode(tl); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(stored)), "stored-bytes")
		})
	}
}

// BenchmarkProcessorEvent runs the processor in goka's tester: app
// sessions of 20 events, each event consumed from topics.Events.
func BenchmarkProcessorEvent(b *testing.B) {
	tt := tester.New(b)
	p, err := goka.NewProcessor(nil, sessions.Graph(), goka.WithTester(tt), goka.WithLogger(log.New(io.Discard, "", 0)))
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Errorf("processor: %v", err)
		}
	}()
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		session := fmt.Sprintf("s%d", i/20)
		ev := benchEntry(session, i).GetEvent()
		data, err := proto.Marshal(ev)
		if err != nil {
			b.Fatal(err)
		}
		tt.Consume(string(topics.Events), session, data, tester.WithTime(benchT0))
		if i%500 == 499 {
			// Keep the tester's storage small: it re-sorts its keys on
			// every new key. Sessions here are 20 events, so clearing at
			// a multiple of 20 cuts none.
			b.StopTimer()
			tt.ClearValues()
			b.StartTimer()
		}
		i++
	}
}
