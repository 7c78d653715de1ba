package processors_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/topics"
)

// running is one run of the processors, stopped when the test ends if it
// was not stopped before.
type running struct {
	p      *processors.Processors
	ctx    context.Context
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
	err    error
}

func startProcessors(t *testing.T, opts processors.Options) *running {
	t.Helper()
	r := launchProcessors(t, opts)
	r.waitReady(t)
	return r
}

// launchProcessors starts a run without waiting for it to be ready.
func launchProcessors(t *testing.T, opts processors.Options) *running {
	t.Helper()
	p, err := processors.New(opts)
	if err != nil {
		t.Fatalf("new processors: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{p: p, ctx: ctx, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) waitReady(t *testing.T) {
	t.Helper()
	wctx, wcancel := context.WithTimeout(r.ctx, 30*time.Second)
	defer wcancel()
	begin := time.Now()
	if err := r.p.WaitReady(wctx); err != nil {
		t.Fatalf("processors not ready: %v", err)
	}
	t.Logf("processors ready after %v", time.Since(begin).Round(time.Millisecond))
}

// stop cancels the run and checks that Run returned nil.
func (r *running) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case r.err = <-r.done:
		case <-time.After(30 * time.Second):
			r.err = errors.New("Run did not return within 30s of cancelling")
		}
	})
	if r.err != nil {
		t.Errorf("processors run: %v", r.err)
	}
}

// topicReader reads every partition of a topic from the oldest offset.
type topicReader struct {
	msgs chan *sarama.ConsumerMessage
}

func readTopic(t *testing.T, k topics.Kafka, topic string) *topicReader {
	t.Helper()
	c, err := sarama.NewConsumer(k.Brokers, k.SaramaConfig("test-reader"))
	if err != nil {
		t.Fatal(err)
	}
	parts, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	r := &topicReader{msgs: make(chan *sarama.ConsumerMessage)}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, part := range parts {
		pc, err := c.ConsumePartition(topic, part, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case m, ok := <-pc.Messages():
					if !ok {
						return
					}
					select {
					case r.msgs <- m:
					case <-stop:
						return
					}
				case <-stop:
					return
				}
			}
		}()
		t.Cleanup(func() { pc.Close() })
	}
	// Cleanups run last-in first-out: stop the goroutines, then close the
	// partition consumers (registered above), then the consumer.
	t.Cleanup(func() { c.Close() })
	t.Cleanup(func() { close(stop); wg.Wait() })
	return r
}

// waitFor reads until match accepts a record, failing the test after
// timeout.
func (r *topicReader) waitFor(t *testing.T, timeout time.Duration, what string, match func(*sarama.ConsumerMessage) bool) {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case m := <-r.msgs:
			if match(m) {
				return
			}
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

func send(t *testing.T, p sarama.SyncProducer, topic goka.Stream, key string, m proto.Message) {
	t.Helper()
	data, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(topic), Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder(data)}); err != nil {
		t.Fatalf("produce to %s: %v", topic, err)
	}
}

func decodeItem(t *testing.T, m *sarama.ConsumerMessage) *livetabv1.ViewItem {
	t.Helper()
	it := &livetabv1.ViewItem{}
	if err := proto.Unmarshal(m.Value, it); err != nil {
		t.Fatalf("view record %q does not decode: %v", m.Key, err)
	}
	if want := topics.ViewKey(it.GetAccount(), it.GetCursor()); string(m.Key) != want {
		t.Errorf("view item %d keyed %q, want %q", it.GetCursor(), m.Key, want)
	}
	return it
}

func TestProcessorsEndToEnd(t *testing.T) {
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	k := topics.Kafka{Brokers: broker.Addrs(), Topics: topics.Config{Partitions: 4}}
	ctx := context.Background()
	if err := topics.EnsureAll(ctx, k); err != nil {
		t.Fatal(err)
	}
	var logs gokatest.Logs
	opts := processors.Options{Kafka: k, StorageDir: t.TempDir(), Logger: logs.Logger()}
	first := startProcessors(t, opts)

	prod, err := k.NewSyncProducer("test")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prod.Close() })

	now := time.Now().UnixMicro()
	hit := &livetabv1.Hit{Id: "h1", Account: "acme", Session: "web1", ClickId: "click1", Link: "spring", ReceivedUs: now}
	install := &livetabv1.Event{Id: "e1", Account: "acme", Session: "app1", Name: "install", ClickId: "click1",
		TimeUs: now + 500_000, ReceivedUs: now + 1_000_000}
	send(t, prod, topics.Hits, hit.Session, hit)
	send(t, prod, topics.Events, install.Session, install)

	view := readTopic(t, k, string(topics.View))
	items := map[uint64]*livetabv1.ViewItem{} // latest version of each cursor
	readItem := func(m *sarama.ConsumerMessage) {
		it := decodeItem(t, m)
		items[it.GetCursor()] = it
	}
	// The three items may come in any order: the hit, the event and the
	// conversion reach liveview through different topics and partitions.
	view.waitFor(t, 30*time.Second, "the hit, the install marked converted and the conversion", func(m *sarama.ConsumerMessage) bool {
		readItem(m)
		var hitSeen, marked, converted bool
		for _, it := range items {
			hitSeen = hitSeen || it.GetHit().GetId() == "h1"
			cw := it.GetConvertedWith()
			marked = marked || (it.GetEvent().GetId() == "e1" && cw.GetSession() == "web1" && cw.GetHitId() == "h1" &&
				cw.GetMethod() == livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID)
			converted = converted || it.GetConversion().GetId() == "cv-app1"
		}
		return hitSeen && marked && converted
	})
	if len(items) != 3 || items[1] == nil || items[2] == nil || items[3] == nil {
		t.Fatalf("view items %v, want cursors 1-3 for a hit, an event and a conversion", items)
	}

	// Both sessions are paired in the sessions table.
	table := readTopic(t, k, string(goka.GroupTable(topics.SessionsGroup)))
	paired := map[string]string{}
	table.waitFor(t, 30*time.Second, "both sessions paired in the sessions table", func(m *sarama.ConsumerMessage) bool {
		tl := &livetabv1.Timeline{}
		if err := proto.Unmarshal(m.Value, tl); err != nil {
			t.Fatalf("table record %q does not decode: %v", m.Key, err)
		}
		if tl.GetPairedSession() != "" {
			paired[string(m.Key)] = tl.GetPairedSession()
		}
		return paired["web1"] == "app1" && paired["app1"] == "web1"
	})

	// Restart on the same storage: the account's sequence continues.
	first.stop(t)
	startProcessors(t, opts)
	open := &livetabv1.Event{Id: "e2", Account: "acme", Session: "app2", Name: "purchase", ReceivedUs: now + 2_000_000}
	send(t, prod, topics.Events, open.Session, open)
	view.waitFor(t, 30*time.Second, "the view item of the event sent after the restart", func(m *sarama.ConsumerMessage) bool {
		it := decodeItem(t, m)
		if it.GetEvent().GetId() != "e2" {
			return false
		}
		if it.GetCursor() != 4 {
			t.Errorf("cursor after restart %d, want 4", it.GetCursor())
		}
		if want := (&livetabv1.Counters{Hits: 1, Events: 2, Conversions: 1}); !proto.Equal(it.GetCounters(), want) {
			t.Errorf("counters after restart %v, want %v", it.GetCounters(), want)
		}
		return true
	})

	if line, ok := logs.Find("level=WARN"); ok {
		t.Errorf("processors skipped a record of a clean run: %s", line)
	}
}

func TestNewNeedsTopics(t *testing.T) {
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	k := topics.Kafka{Brokers: broker.Addrs()}
	_, err = processors.New(processors.Options{Kafka: k})
	if err == nil {
		t.Fatal("New succeeded on a broker without livetab's topics")
	}
	t.Logf("New without topics: %v", err)
}

func TestRunStopsAndRunsOnce(t *testing.T) {
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(broker.Close)
	k := topics.Kafka{Brokers: broker.Addrs(), Topics: topics.Config{Partitions: 2}}
	if err := topics.EnsureAll(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	p, err := processors.New(processors.Options{Kafka: k})
	if err != nil {
		t.Fatal(err)
	}

	// WaitReady before Run waits, and gives up with its context.
	wctx, wcancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer wcancel()
	if err := p.WaitReady(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitReady before Run = %v, want the context's deadline", err)
	}
	// Before Run no table holds a partition.
	for _, tp := range p.Progress(context.Background()) {
		if tp.Partitions != 0 || tp.Recovered != 0 || tp.Remaining != 0 {
			t.Errorf("progress before Run: %+v, want nothing held", tp)
		}
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	rctx, rcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer rcancel()
	if err := p.WaitReady(rctx); err != nil {
		t.Fatalf("WaitReady: %v", err)
	}
	// Ready: every table holds both partitions, recovered, nothing left.
	progress := p.Progress(rctx)
	if len(progress) != 3 {
		t.Fatalf("progress of %d tables, want 3: %+v", len(progress), progress)
	}
	for _, tp := range progress {
		if tp.Partitions != 2 || tp.Recovered != 2 || tp.Remaining != 0 {
			t.Errorf("progress when ready: %+v, want 2 of 2 partitions recovered, 0 remaining", tp)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel = %v, want nil", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if err := p.WaitReady(rctx); err == nil {
		t.Error("WaitReady on stopped processors = nil, want an error")
	}
	if err := p.Run(context.Background()); err == nil {
		t.Error("second Run = nil, want an error")
	}
}
