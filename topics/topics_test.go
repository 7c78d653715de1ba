package topics_test

import (
	"bytes"
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/topics"
)

func startEmbedded(t *testing.T, dir string) *topics.Embedded {
	t.Helper()
	e, err := topics.StartEmbedded(topics.EmbeddedOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestEnsureCreatesAndChecks(t *testing.T) {
	e := startEmbedded(t, "")
	k := topics.Kafka{Brokers: e.Addrs(), Topics: topics.Config{Partitions: 4}}
	ctx := context.Background()
	if err := topics.EnsureAll(ctx, k); err != nil {
		t.Fatalf("first ensure: %v", err)
	}
	if err := topics.EnsureAll(ctx, k); err != nil {
		t.Fatalf("second ensure must accept what the first created: %v", err)
	}
	admin, err := k.NewClusterAdmin()
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	got, err := admin.ListTopics()
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range topics.Catalog(k.Topics) {
		d, ok := got[s.Name]
		if !ok {
			t.Errorf("topic %s not created", s.Name)
			continue
		}
		if d.NumPartitions != 4 {
			t.Errorf("%s: %d partitions, want 4", s.Name, d.NumPartitions)
		}
		if p := d.ConfigEntries["cleanup.policy"]; p == nil || *p != s.Policy {
			t.Errorf("%s: cleanup.policy %v, want %s", s.Name, p, s.Policy)
		}
	}
}

func TestEnsureRejectsMismatch(t *testing.T) {
	tests := []struct {
		name       string
		topic      string
		partitions int32
		policy     string
		wantInErr  string
	}{
		{"view not compacted", string(topics.View), 8, "delete", "cleanup.policy=delete"},
		{"fewer partitions", string(topics.Hits), 2, "delete", "has 2 partitions, declared 8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEmbedded(t, "")
			k := topics.Kafka{Brokers: e.Addrs()}
			admin, err := k.NewClusterAdmin()
			if err != nil {
				t.Fatal(err)
			}
			defer admin.Close()
			policy := tt.policy
			if err := admin.CreateTopic(tt.topic, &sarama.TopicDetail{NumPartitions: tt.partitions, ReplicationFactor: 1,
				ConfigEntries: map[string]*string{"cleanup.policy": &policy}}, false); err != nil {
				t.Fatal(err)
			}
			err = topics.EnsureAll(context.Background(), k)
			if !errors.Is(err, topics.ErrMismatch) {
				t.Fatalf("err = %v, want ErrMismatch", err)
			}
			if !strings.Contains(err.Error(), tt.topic) || !strings.Contains(err.Error(), tt.wantInErr) {
				t.Fatalf("error %q should name topic %q and %q", err, tt.topic, tt.wantInErr)
			}
		})
	}
}

func TestEmbeddedKeepsDataAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	e := startEmbedded(t, dir)
	k := topics.Kafka{Brokers: e.Addrs()}
	if err := topics.EnsureAll(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	p, err := k.NewSyncProducer("test")
	if err != nil {
		t.Fatal(err)
	}
	part, off, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(topics.Hits), Key: sarama.StringEncoder("s1"), Value: sarama.StringEncoder("hello")})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	e.Close()

	e2 := startEmbedded(t, dir)
	k2 := topics.Kafka{Brokers: e2.Addrs()}
	if err := topics.EnsureAll(context.Background(), k2); err != nil {
		t.Fatalf("ensure after restart: %v", err)
	}
	c, err := sarama.NewConsumer(k2.Brokers, k2.SaramaConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(string(topics.Hits), part, off)
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if string(m.Value) != "hello" || string(m.Key) != "s1" {
			t.Fatalf("got %q=%q after restart", m.Key, m.Value)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("message written before the restart was not read back")
	}
}

func TestHasherPartitionsByPrefix(t *testing.T) {
	sum := func(key string) uint32 {
		h := topics.Hasher()
		h.Write([]byte(key))
		return h.Sum32()
	}
	for _, key := range []string{"demo", "acme", "0195a3c4-session"} {
		f := fnv.New32a()
		f.Write([]byte(key))
		if sum(key) != f.Sum32() {
			t.Errorf("%q: a key without separator must hash like goka's default", key)
		}
		for _, slot := range []uint64{0, 7, 99, 1234} {
			if got := sum(topics.ViewKey(key, slot)); got != sum(key) {
				t.Errorf("ViewKey(%q, %d) hashes apart from its account", key, slot)
			}
		}
		if sum(topics.LinkKey(key, "spring")) != sum(key) {
			t.Errorf("LinkKey(%q) hashes apart from its account", key)
		}
	}
}

// lockedBuffer is a log destination the broker's goroutines write to while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func TestEmbeddedCompactsOnItsInterval(t *testing.T) {
	var logs lockedBuffer
	log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e, err := topics.StartEmbedded(topics.EmbeddedOptions{CompactInterval: 50 * time.Millisecond, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	k := topics.Kafka{Brokers: e.Addrs(), Topics: topics.Config{Partitions: 1}}
	if err := topics.EnsureAll(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	p, err := k.NewSyncProducer("test")
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	// Three batches: compaction keeps the last batch whatever it holds, so
	// the first version of "a" is the one that must go.
	for _, kv := range [][2]string{{"a", "v1"}, {"a", "v2"}, {"b", "v3"}} {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{Topic: string(topics.View), Key: sarama.StringEncoder(kv[0]), Value: sarama.StringEncoder(kv[1])}); err != nil {
			t.Fatal(err)
		}
	}
	client, err := sarama.NewClient(k.Brokers, k.SaramaConfig("test"))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := sarama.NewConsumerFromClient(client)
		if err != nil {
			t.Fatal(err)
		}
		pc, err := c.ConsumePartition(string(topics.View), 0, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		var first string
		select {
		case m, ok := <-pc.Messages():
			if ok {
				first = string(m.Value)
			}
		case err := <-pc.Errors():
			t.Logf("consume: %v", err)
		case <-time.After(5 * time.Second):
		}
		pc.Close()
		c.Close()
		if first == "v2" {
			// v1 was compacted away, by a pass that was timed.
			if !strings.Contains(logs.String(), "embedded broker compacted its topics") || !strings.Contains(logs.String(), "took=") {
				t.Errorf("no timed compaction pass in the log:\n%s", logs.String())
			}
			e.Close() // twice, with the cleanup: the second does nothing
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("oldest record still %q 10 s after a newer version of its key was written", first)
		}
		time.Sleep(20 * time.Millisecond) // polling the broker's state, not synchronising
	}
}

func TestPace(t *testing.T) {
	live := topics.Kafka{Brokers: []string{"127.0.0.1:1"}}
	c := live.SaramaConfig("x")
	if c.Consumer.Fetch.Min != 1 || c.Producer.Flush.Frequency != 0 || c.Producer.Flush.Bytes != 0 {
		t.Errorf("live part: fetch min %d, flush every %v / %d bytes; want 1, 0, 0", c.Consumer.Fetch.Min, c.Producer.Flush.Frequency, c.Producer.Flush.Bytes)
	}
	liveWait := c.Consumer.MaxWaitTime

	bg := live.Background().SaramaConfig("x")
	if bg.Consumer.MaxWaitTime != topics.DefaultBackgroundFetchWait || bg.Consumer.Fetch.Min != topics.DefaultBackgroundFetchBytes ||
		bg.Producer.Flush.Frequency != topics.DefaultBackgroundLinger {
		t.Errorf("background part: wait %v, min %d, linger %v; want the defaults", bg.Consumer.MaxWaitTime, bg.Consumer.Fetch.Min, bg.Producer.Flush.Frequency)
	}
	if err := bg.Validate(); err != nil {
		t.Errorf("background config invalid: %v", err)
	}

	tuned := live
	tuned.BackgroundPace = topics.Pace{FetchWait: 5 * time.Millisecond, FetchBytes: 1024, Linger: time.Millisecond}
	c = tuned.Background().SaramaConfig("x")
	if c.Consumer.MaxWaitTime != 5*time.Millisecond || c.Consumer.Fetch.Min != 1024 || c.Producer.Flush.Frequency != time.Millisecond {
		t.Errorf("tuned background part: wait %v, min %d, linger %v", c.Consumer.MaxWaitTime, c.Consumer.Fetch.Min, c.Producer.Flush.Frequency)
	}

	eager := live
	eager.BackgroundPace = topics.Pace{FetchBytes: 1}
	c = eager.Background().SaramaConfig("x")
	if c.Consumer.MaxWaitTime != liveWait || c.Consumer.Fetch.Min != 1 || c.Producer.Flush.Frequency != 0 {
		t.Errorf("eager background part: wait %v, min %d, linger %v; want the live part's", c.Consumer.MaxWaitTime, c.Consumer.Fetch.Min, c.Producer.Flush.Frequency)
	}
	if live.Pace != (topics.Pace{}) {
		t.Error("Background changed the Kafka it was called on")
	}
}
