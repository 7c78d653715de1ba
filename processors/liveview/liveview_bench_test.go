package liveview_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/liveview"
	"github.com/livetab/livetab/topics"
)

// The liveview processor's per-item work, for `go test -bench . -benchmem
// ./processors/liveview`. Every item loops to its account, whose state
// (counters, the fingerprints of the newest liveview.Window items, the
// install items among them that a conversion may mark, pending marks) goka
// decodes from the table, the callback changes and goka encodes and writes
// back (local storage and the table topic). The benchmarks run on an
// account in steady state: Window items applied, one event in 20 an
// install (each session's first).

const benchNowUs = int64(1_790_000_000_000_000)

func benchEvent(i int) *livetabv1.Event {
	name := "purchase"
	if i%20 == 0 {
		name = "install"
	}
	return &livetabv1.Event{
		Id: fmt.Sprintf("run-s%d-%d", i/20, i%20), Account: "acct-0001", Session: fmt.Sprintf("run-s%d", i/20), Name: name,
		TimeUs: benchNowUs + int64(i), ReceivedUs: benchNowUs + int64(i), Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
		DeviceIds: []string{"d-0123456789abcdef01234567"},
		Params:    map[string]string{"screen": "home", "pad": "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"},
		Request: &livetabv1.Request{Ip: "10.1.2.3", UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
			Os: "ios", OsVersion: "17.4", Device: "iphone"},
	}
}

func benchInput(i int) *livetabv1.ViewInput {
	return &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Event{Event: benchEvent(i)}}
}

// benchRecord is the loop record of benchInput(i).
func benchRecord(b *testing.B, i int) []byte {
	return marshal(b, benchInput(i))
}

// benchFullAccount is an account in steady state: Window items applied,
// and pending conversions whose events never come.
func benchFullAccount(b *testing.B, pending int) *livetabv1.AccountState {
	st := &livetabv1.AccountState{}
	for i := range pending {
		e := benchEvent(-20 * (i + 1))
		apply(b, st, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Conversion{Conversion: &livetabv1.Conversion{
			Id: "cv-" + e.Session, Account: e.Account, HitSession: "web-" + e.Session, AppSession: e.Session, HitId: "hit-" + e.Session,
			EventId: e.Id, ClickId: "click-" + e.Session, TimeUs: e.TimeUs, Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID,
			HitTimeUs: e.TimeUs - 1e6, EventTimeUs: e.TimeUs, WindowUs: 7 * 24 * 3600e6, Link: "acct-0001/summer", Campaign: "summer",
			DeepLink: "app://promo/summer", ReceivedUs: e.ReceivedUs, HitToInstallUs: 1e6,
		}}})
	}
	for i := range liveview.Window {
		apply(b, st, benchInput(i))
	}
	return st
}

// benchStates are the states the benchmarks run on: an account with no
// pending marks (conversions find their installs), and one whose pending
// marks are full (conversions arrive after their installs left the
// window, or before them).
var benchStates = []struct {
	name    string
	pending int
}{{"steady", 0}, {"pending-full", liveview.MaxPendingMarks}}

// BenchmarkApply is the pure part: one new event on a full account.
func BenchmarkApply(b *testing.B) {
	st := benchFullAccount(b, 0)
	ins := make([]liveview.Input, 1024)
	for i := range ins {
		ins[i] = read(b, benchInput(1_000_000+i))
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if len(liveview.Apply(st, ins[i%len(ins)], benchNowUs)) == 0 {
			ins[i%len(ins)] = read(b, benchInput(2_000_000+i)) // already applied: make a new one
		}
		i++
	}
}

// BenchmarkLoopMessage is what the loop callback costs per item: read the
// loop record, decode the account's state from its stored bytes, apply
// (which encodes the emitted items), encode the state (goka's codec
// calls).
func BenchmarkLoopMessage(b *testing.B) {
	for _, bs := range benchStates {
		b.Run(bs.name, func(b *testing.B) {
			stored, err := codecs.AccountStateCodec{}.Encode(benchFullAccount(b, bs.pending))
			if err != nil {
				b.Fatal(err)
			}
			// More inputs than the window, so that none is a redelivery.
			ins := make([][]byte, 1024)
			for i := range ins {
				ins[i] = benchRecord(b, 1_000_000+i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				in, err := liveview.ReadInput(ins[i%len(ins)])
				if err != nil {
					b.Fatal(err)
				}
				v, err := codecs.AccountStateCodec{}.Decode(stored)
				if err != nil {
					b.Fatal(err)
				}
				st := v.(*livetabv1.AccountState)
				if out := liveview.Apply(st, in, benchNowUs); len(out) == 0 {
					b.Fatalf("input %d emitted nothing", i)
				}
				if stored, err = (codecs.AccountStateCodec{}).Encode(st); err != nil {
					b.Fatal(err)
				}
				i++
			}
			// The state goka writes back to storage and the table topic
			// per item.
			b.ReportMetric(float64(len(stored)), "state-bytes/op")
		})
	}
}

// BenchmarkProcessorEvent runs the processor in goka's tester: one event
// on topics.Events, its loop to the account, the table write and the
// emitted view item, on an account whose state is full.
func BenchmarkProcessorEvent(b *testing.B) {
	tt := gokatest.Start(b, liveview.NewGraph(liveview.Options{Now: func() time.Time { return time.UnixMicro(benchNowUs) }}))
	consume := func(i int) {
		e := benchEvent(i)
		data, err := proto.Marshal(e)
		if err != nil {
			b.Fatal(err)
		}
		tt.Consume(string(topics.Events), e.Session, data)
	}
	for i := range liveview.Window {
		consume(i)
	}
	view := tt.NewQueueTracker(string(topics.View))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		consume(1_000_000 + i)
		i++
	}
	b.StopTimer()
	n := len(gokatest.Drain(view))
	if n != i {
		b.Fatalf("%d view items for %d events", n, i)
	}
}

// benchSessionLen is how many events a session sends in one request in
// BenchmarkProcessorSessionEvents.
const benchSessionLen = 20

// BenchmarkProcessorSessionEvents runs the processor in goka's tester on
// one app session's 20 events per op, keyed by account as the collector
// writes them: as 20 records of one Event each (one state read and write
// per event), and as one SessionEvents (one per record). ns/event is the
// cost per event; the view items are counted afterwards.
func BenchmarkProcessorSessionEvents(b *testing.B) {
	// More sessions than the window holds events, so that none is a
	// redelivery when the ring comes round.
	const sessions = 64
	singles := make([][][]byte, sessions)
	batches := make([][]byte, sessions)
	for s := range sessions {
		for k := range benchSessionLen {
			data := marshal(b, benchEvent(1_000_000+s*benchSessionLen+k))
			singles[s] = append(singles[s], data)
			batches[s] = codecs.AppendSessionEvent(batches[s], data)
		}
	}
	for _, bc := range []struct {
		name    string
		consume func(tt *tester.Tester, s int)
	}{
		{"20-records", func(tt *tester.Tester, s int) {
			for _, data := range singles[s] {
				tt.Consume(string(topics.Events), "acct-0001", data)
			}
		}},
		{"session-events", func(tt *tester.Tester, s int) {
			tt.Consume(string(topics.Events), "acct-0001", batches[s])
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			tt := gokatest.Start(b, liveview.NewGraph(liveview.Options{Now: func() time.Time { return time.UnixMicro(benchNowUs) }}))
			for i := range liveview.Window {
				tt.Consume(string(topics.Events), "acct-0001", marshal(b, benchEvent(i)))
			}
			view := tt.NewQueueTracker(string(topics.View))
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				bc.consume(tt, i%sessions)
				i++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(i*benchSessionLen), "ns/event")
			b.StopTimer()
			n := len(gokatest.Drain(view))
			if n != i*benchSessionLen {
				b.Fatalf("%d view items for %d events", n, i*benchSessionLen)
			}
		})
	}
}
