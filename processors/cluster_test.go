package processors_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/internal/workload"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

// manualClock is a processors.Clock the test sets.
type manualClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// offsets reads high watermarks and a group's committed offsets.
type offsets struct {
	client sarama.Client
	admin  sarama.ClusterAdmin
}

func newOffsets(t *testing.T, k topics.Kafka) *offsets {
	t.Helper()
	c, err := sarama.NewClient(k.Brokers, k.SaramaConfig("test-offsets"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	a, err := sarama.NewClusterAdminFromClient(c)
	if err != nil {
		t.Fatal(err)
	}
	return &offsets{client: c, admin: a}
}

// highWatermarks are the next offsets of every partition of topic.
func (o *offsets) highWatermarks(t *testing.T, topic string) map[int32]int64 {
	t.Helper()
	parts, err := o.client.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	out := map[int32]int64{}
	for _, p := range parts {
		off, err := o.client.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			t.Fatalf("high watermark of %s/%d: %v", topic, p, err)
		}
		out[p] = off
	}
	return out
}

// committed are group's committed offsets of topic's partitions (-1: none).
func (o *offsets) committed(t *testing.T, group goka.Group, topic string, parts map[int32]int64) map[int32]int64 {
	t.Helper()
	var ps []int32
	for p := range parts {
		ps = append(ps, p)
	}
	resp, err := o.admin.ListConsumerGroupOffsets(string(group), map[string][]int32{topic: ps})
	if err != nil {
		t.Fatalf("offsets of %s: %v", group, err)
	}
	out := map[int32]int64{}
	for _, p := range ps {
		out[p] = -1
		if b := resp.GetBlock(topic, p); b != nil && b.Err == sarama.ErrNoError {
			out[p] = b.Offset
		}
	}
	return out
}

// lag is how far group is behind on each of tps, described, and the high
// watermarks it was measured against.
func (o *offsets) lag(t *testing.T, group goka.Group, tps []string) (int64, string, string) {
	t.Helper()
	var (
		total int64
		desc  []string
		marks []string
	)
	for _, topic := range tps {
		hwm := o.highWatermarks(t, topic)
		com := o.committed(t, group, topic, hwm)
		for p, h := range hwm {
			marks = append(marks, fmt.Sprintf("%s/%d@%d", topic, p, h))
			c := max(com[p], 0)
			if h > c {
				total += h - c
				desc = append(desc, fmt.Sprintf("%s/%d: %d behind", topic, p, h-c))
			}
		}
	}
	sort.Strings(marks)
	return total, strings.Join(desc, ", "), strings.Join(marks, " ")
}

// waitNoLag waits until group has committed every record of tps, in two
// polls in a row that saw the same high watermarks: then nothing it
// processed is still producing records for them.
func (o *offsets) waitNoLag(t *testing.T, group goka.Group, timeout time.Duration, tps ...string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	prev := ""
	for {
		n, desc, marks := o.lag(t, group, tps)
		if n == 0 && marks == prev {
			return
		}
		if n == 0 {
			prev = marks
		} else {
			prev = ""
		}
		if time.Now().After(deadline) {
			t.Fatalf("group %s still lags after %v: %s", group, timeout, desc)
		}
		time.Sleep(100 * time.Millisecond) // polling interval, not synchronisation
	}
}

// waitCommitted waits until group committed at least to on each partition
// of topic.
func (o *offsets) waitCommitted(t *testing.T, group goka.Group, topic string, to map[int32]int64, timeout time.Duration) {
	t.Helper()
	waitFor(t, timeout, fmt.Sprintf("%s to consume %s up to %v", group, topic, to), func() bool {
		com := o.committed(t, group, topic, to)
		for p, off := range to {
			if com[p] < off {
				return false
			}
		}
		return true
	})
}

// waitFor polls cond until it holds, failing after timeout.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, not synchronisation
	}
}

// readAll reads every record of topic up to the high watermarks.
func readAll(t *testing.T, k topics.Kafka, o *offsets, topic string) []*sarama.ConsumerMessage {
	t.Helper()
	c, err := sarama.NewConsumer(k.Brokers, k.SaramaConfig("test-read"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var out []*sarama.ConsumerMessage
	for p, hwm := range o.highWatermarks(t, topic) {
		oldest, err := o.client.GetOffset(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		if oldest >= hwm {
			continue
		}
		pc, err := c.ConsumePartition(topic, p, oldest)
		if err != nil {
			t.Fatal(err)
		}
		for off := oldest; off < hwm; {
			select {
			case m := <-pc.Messages():
				out = append(out, m)
				off = m.Offset + 1
			case <-time.After(10 * time.Second):
				pc.Close()
				t.Fatalf("reading %s/%d: nothing at offset %d of %d", topic, p, off, hwm)
			}
		}
		pc.Close()
	}
	return out
}

// TestAttributionAcrossInstances replays a generated workload into a
// three-broker cluster worked by three processors instances, one of which
// stops in the middle, and checks that the conversions are exactly those
// of the reference: what one instance alone must produce too.
func TestAttributionAcrossInstances(t *testing.T) {
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{Brokers: 3})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	k := topics.Kafka{Brokers: broker.Addrs(), Topics: topics.Config{Partitions: 6}}
	if err := topics.EnsureAll(context.Background(), k); err != nil {
		t.Fatal(err)
	}

	// The workload starts an hour after the clock, so that no grace
	// period ends while it is delivered, whatever the instances' pace.
	base := time.Now().Truncate(time.Second).Add(time.Hour)
	clock := &manualClock{now: base.Add(-time.Hour)}
	wl := workload.Generate(7, base)
	want := workload.Reference(attribution.Config{}, wl)

	var logs gokatest.Logs
	opts := func() processors.Options {
		return processors.Options{Kafka: k, StorageDir: t.TempDir(), Logger: logs.Logger(), Clock: clock, TickInterval: 50 * time.Millisecond}
	}
	begin := time.Now()
	// Started together, so that they join the groups at about the same
	// time (one rebalance rather than three).
	instances := make([]*running, 3)
	for i := range instances {
		instances[i] = launchProcessors(t, opts())
	}
	for _, r := range instances {
		r.waitReady(t)
	}
	t.Logf("three instances ready after %v", time.Since(begin).Round(time.Millisecond))

	prod, err := k.NewSyncProducer("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	recs := wl.Shuffled(rand.New(rand.NewPCG(7, 1)))
	for i, r := range recs {
		if i == len(recs)/2 {
			stop := time.Now()
			instances[1].stop(t)
			t.Logf("stopped instance 1 after %d of %d records in %v", i, len(recs), time.Since(stop).Round(time.Millisecond))
		}
		send(t, prod, r.Topic, r.Key, r.Msg)
	}

	o := newOffsets(t, k)
	inputs := []string{string(topics.Hits), string(topics.Events), string(topics.GroupLoop(topics.AttributionGroup))}
	o.waitNoLag(t, topics.AttributionGroup, 40*time.Second, inputs...)
	before := len(readAll(t, k, o, string(topics.Conversions)))
	t.Logf("delivered %d records; %d conversions before the grace periods ended (click ids), %d expected in all; after %v",
		len(recs), before, len(want), time.Since(begin).Round(time.Millisecond))

	// Let time pass every grace period, and wait until both remaining
	// instances ticked it (two ticks each after the change: the first
	// may have read the clock before it) and attribution consumed it.
	clockTopic := string(topics.Clock)
	marks := o.highWatermarks(t, clockTopic)
	clock.Set(time.UnixMicro(wl.LastReceivedUs()).Add(attribution.DefaultGrace + time.Second))
	for p := range marks {
		marks[p] += 4
	}
	waitFor(t, 10*time.Second, "ticks with the new time", func() bool {
		now := o.highWatermarks(t, clockTopic)
		for p, m := range marks {
			if now[p] < m {
				return false
			}
		}
		return true
	})
	o.waitCommitted(t, topics.AttributionGroup, clockTopic, marks, 20*time.Second)
	o.waitNoLag(t, topics.AttributionGroup, 20*time.Second, inputs...)

	got := map[string]*livetabv1.Conversion{}
	for _, m := range readAll(t, k, o, string(topics.Conversions)) {
		c := &livetabv1.Conversion{}
		if err := proto.Unmarshal(m.Value, c); err != nil {
			t.Fatalf("conversion %q does not decode: %v", m.Key, err)
		}
		if prev, dup := got[string(m.Key)]; dup {
			t.Errorf("second conversion for app session %s:\n  first  %v\n  second %v", m.Key, prev, c)
		}
		got[string(m.Key)] = c
	}
	if d := workload.Diff(got, want); d != "" {
		t.Fatalf("conversions differ from the reference:\n%s", d)
	}
	t.Logf("%d conversions equal the reference after %v", len(got), time.Since(begin).Round(time.Millisecond))
	if line, ok := logs.Find("level=WARN", "skipping record"); ok {
		t.Errorf("processors skipped a record of a clean run: %s", line)
	}
}

// TestSessionsRetentionSweep sweeps the sessions table at a chosen time:
// an idle session is deleted (a tombstone on the table topic) and the old
// entries of a live one are trimmed.
func TestSessionsRetentionSweep(t *testing.T) {
	now := time.Now()
	clock := &manualClock{now: now}
	p, k, prod := runWithClock(t, processors.Options{Clock: clock})
	ctx := context.Background()
	// Received times matter, the records' own timestamps are now.
	idle := &livetabv1.Hit{Id: "h-idle", Account: "acme", Session: "idle", ReceivedUs: now.UnixMicro()}
	liveOld := &livetabv1.Hit{Id: "h-old", Account: "acme", Session: "live", ReceivedUs: now.UnixMicro()}
	liveNew := &livetabv1.Hit{Id: "h-new", Account: "acme", Session: "live", ReceivedUs: now.Add(30 * 24 * time.Hour).UnixMicro()}
	for _, h := range []*livetabv1.Hit{idle, liveOld, liveNew} {
		send(t, prod, topics.Hits, h.Session, h)
	}
	table := readTopic(t, k, string(goka.GroupTable(topics.SessionsGroup)))
	entries := func(m *sarama.ConsumerMessage) []string {
		tl := &livetabv1.Timeline{}
		if err := proto.Unmarshal(m.Value, tl); err != nil {
			t.Fatalf("table record %q does not decode: %v", m.Key, err)
		}
		es, err := sessions.Entries(tl)
		if err != nil {
			t.Fatalf("table record %q: %v", m.Key, err)
		}
		var ids []string
		for _, e := range es {
			ids = append(ids, e.GetHit().GetId())
		}
		return ids
	}
	seen := map[string]int{}
	table.waitFor(t, 20*time.Second, "both sessions in the table", func(m *sarama.ConsumerMessage) bool {
		seen[string(m.Key)] = len(entries(m))
		return seen["idle"] == 1 && seen["live"] == 2
	})

	// A sweep now changes nothing; sixty days and an hour on, idle goes.
	if err := p.SweepSessions(ctx, clock.Now()); err != nil {
		t.Fatal(err)
	}
	later := now.Add(60*24*time.Hour + time.Hour)
	if err := p.SweepSessions(ctx, later); err != nil {
		t.Fatal(err)
	}
	var tombstone, trimmed bool
	table.waitFor(t, 20*time.Second, "a tombstone for idle and live trimmed to its new entry", func(m *sarama.ConsumerMessage) bool {
		switch string(m.Key) {
		case "idle":
			if m.Value != nil {
				t.Errorf("idle rewritten with %v instead of deleted", entries(m))
			}
			tombstone = true
		case "live":
			if ids := entries(m); len(ids) != 1 || ids[0] != "h-new" {
				t.Errorf("live rewritten with %v, want [h-new]", ids)
			}
			trimmed = true
		}
		return tombstone && trimmed
	})
}

// TestAttributionCleanupSweep lets Run's sweeper find a match key past its
// window: the key is deleted by a tombstone on the table topic. A hit sets
// no clean-up timer.
func TestAttributionCleanupSweep(t *testing.T) {
	now := time.Now()
	clock := &manualClock{now: now}
	_, k, prod := runWithClock(t, processors.Options{Clock: clock, SweepInterval: 100 * time.Millisecond})

	h := &livetabv1.Hit{Id: "h1", Account: "acme", Session: "web", ClickId: "c1", ReceivedUs: now.UnixMicro()}
	send(t, prod, topics.Hits, h.Account, h)
	key := attribution.ClickKey("c1")
	table := readTopic(t, k, string(goka.GroupTable(topics.AttributionGroup)))
	table.waitFor(t, 20*time.Second, "the click key in the table", func(m *sarama.ConsumerMessage) bool {
		if strings.HasPrefix(string(m.Key), "t:") {
			t.Errorf("a hit wrote timer key %q", m.Key)
		}
		if string(m.Key) == key && m.Value == nil {
			t.Fatal("the click key was deleted within its window")
		}
		return string(m.Key) == key
	})
	// Sweeps keep running every 100 ms; the clock moving past the window
	// lets the next one delete the key.
	cfg := attribution.Config{}.WithDefaults()
	clock.Set(now.Add(cfg.ClickWindow + cfg.Grace + time.Minute))
	table.waitFor(t, 20*time.Second, "a tombstone for the click key", func(m *sarama.ConsumerMessage) bool {
		return string(m.Key) == key && m.Value == nil
	})
}

// runWithClock runs the processors with opts (its Kafka replaced by an
// embedded broker's, topics of 2 partitions) until the test ends, and
// returns them once ready, with the broker's Kafka and a producer to it.
func runWithClock(t *testing.T, opts processors.Options) (*processors.Processors, topics.Kafka, sarama.SyncProducer) {
	t.Helper()
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	opts.Kafka = topics.Kafka{Brokers: broker.Addrs(), Topics: topics.Config{Partitions: 2}}
	if err := topics.EnsureAll(context.Background(), opts.Kafka); err != nil {
		t.Fatal(err)
	}
	p, err := processors.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("run: %v", err)
		}
	})
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := p.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	prod, err := opts.Kafka.NewSyncProducer("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })
	return p, opts.Kafka, prod
}
