package attribution_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/topics"
)

// The attribution processor's per-message work in goka's tester, for `go
// test -bench . -benchmem ./processors/attribution`: a hit loops to each
// of its match keys (click id, fingerprint, device id), an install to its
// app session and its match keys, and a click-id match decides at once.

var benchT0 = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)

func benchRequest(i int) *livetabv1.Request {
	return &livetabv1.Request{
		Ip:        fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
		Os:        "ios", OsVersion: "17.4", Device: "iphone", Browser: "safari",
	}
}

func benchHit(i int) *livetabv1.Hit {
	us := benchT0.Add(time.Duration(i) * time.Millisecond).UnixMicro()
	return &livetabv1.Hit{
		Id: fmt.Sprintf("hit-%d", i), Account: "acct-0001", Link: "go", Campaign: "spring", ClickId: fmt.Sprintf("click-%d", i),
		Session: fmt.Sprintf("web-%d", i), ReceivedUs: us, Request: benchRequest(i), Destination: "https://apps.example.com/app/id123",
		Platform: livetabv1.Platform_PLATFORM_IOS, DeepLink: "benchapp://promo/42",
	}
}

func benchInstall(i int) *livetabv1.Event {
	us := benchT0.Add(time.Duration(i)*time.Millisecond + time.Minute).UnixMicro()
	return &livetabv1.Event{
		Id: fmt.Sprintf("app-%d-0", i), Account: "acct-0001", Session: fmt.Sprintf("app-%d", i), Name: "install",
		TimeUs: us, ReceivedUs: us, Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
		ClickId: fmt.Sprintf("click-%d", i), Request: benchRequest(i),
	}
}

func benchStart(b *testing.B) *tester.Tester {
	return gokatest.Start(b, attribution.NewGraph(attribution.Options{}))
}

// benchClear empties the tables every 500 iterations, timer stopped: the
// tester's in-memory storage re-sorts its keys on every new key, which
// would otherwise make the benchmark measure the tester.
func benchClear(b *testing.B, tt *tester.Tester, i int) {
	if i%500 == 499 {
		b.StopTimer()
		tt.ClearValues()
		b.StartTimer()
	}
}

func benchConsume(b *testing.B, tt *tester.Tester, topic goka.Stream, key string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		b.Fatal(err)
	}
	tt.Consume(string(topic), key, data, tester.WithTime(benchT0))
}

// BenchmarkProcessorHit is one hit: decoded, looped to its click-id and
// fingerprint keys, each of which stores it and sets its clean-up time.
// The spacing of the hits' receive times is the traffic's rate (it used to
// fill the per-second timer buckets of the keys' clean-up; the sweep took
// their place, and the two spacings should now cost the same).
func BenchmarkProcessorHit(b *testing.B) {
	for _, spacing := range []time.Duration{time.Millisecond, time.Second} {
		b.Run("spacing="+spacing.String(), func(b *testing.B) {
			tt := benchStart(b)
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				h := benchHit(i)
				h.ReceivedUs = benchT0.Add(time.Duration(i) * spacing).UnixMicro()
				benchConsume(b, tt, topics.Hits, h.Session, h)
				benchClear(b, tt, i)
				i++
			}
		})
	}
}

// BenchmarkProcessorClickInstall is a visitor who clicks and installs: the
// hit, then the install carrying its click id, which converts at once.
func BenchmarkProcessorClickInstall(b *testing.B) {
	tt := benchStart(b)
	conversions := tt.NewQueueTracker(string(topics.Conversions))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		h, e := benchHit(i), benchInstall(i)
		benchConsume(b, tt, topics.Hits, h.Session, h)
		benchConsume(b, tt, topics.Events, e.Session, e)
		benchClear(b, tt, i)
		i++
	}
	b.StopTimer()
	n := 0
	for {
		if _, _, ok := conversions.NextRaw(); !ok {
			break
		}
		n++
	}
	if n != i {
		b.Fatalf("%d conversions for %d click-id installs", n, i)
	}
}

// BenchmarkProcessorInAppEvent is an event that is not install-like: the
// processor only decodes it.
func BenchmarkProcessorInAppEvent(b *testing.B) {
	tt := benchStart(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		e := benchInstall(i)
		e.Name, e.Id, e.ClickId = "purchase", fmt.Sprintf("app-%d-1", i), ""
		benchConsume(b, tt, topics.Events, e.Session, e)
		i++
	}
}

// BenchmarkLoopMatchHit is the loop callback on one fingerprint key in
// steady state: the key holds attribution.MaxHits hits (and a clean-up
// time), and each looped hit is stored, pushes out the oldest and
// writes the state back.
func BenchmarkLoopMatchHit(b *testing.B) {
	tt := benchStart(b)
	loop := string(topics.GroupLoop(topics.AttributionGroup))
	key := "f:acct-0001:10.0.0.1|ios|17.4|iphone"
	consume := func(i int) {
		h := benchHit(i)
		h.Request = benchRequest(1)
		benchConsume(b, tt, goka.Stream(loop), key, &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Hit{Hit: h}})
	}
	i := 0
	for ; i < attribution.MaxHits; i++ {
		consume(i)
	}
	b.ReportAllocs()
	for b.Loop() {
		consume(i)
		i++
	}
}

// BenchmarkCleanupSweep is one clean-up sweep (CleanupVisitor) over a table
// of the match keys of 2,000 hits, none of them due: what the hourly sweep
// costs for each key it reads (goka's tester, in memory; ns/key).
func BenchmarkCleanupSweep(b *testing.B) {
	tt := tester.New(b)
	p := gokatest.RunProcessor(b, tt, attribution.NewGraph(attribution.Options{}))
	for i := range 2000 {
		benchConsume(b, tt, topics.Hits, "acct-0001", benchHit(i))
	}
	keys := len(tt.GetTableKeys(goka.GroupTable(attribution.Group)))
	if keys < 2000 {
		b.Fatalf("%d table keys after 2,000 hits, want at least their click keys", keys)
	}
	ctx := context.Background()
	for b.Loop() {
		if err := p.VisitAll(ctx, attribution.CleanupVisitor, benchT0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*keys), "ns/key")
}
