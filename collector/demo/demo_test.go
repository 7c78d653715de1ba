package demo_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/collector/demo"
	"github.com/livetab/livetab/topics"
)

var secret = []byte("demo-test-secret")

// startCollector serves a running collector against a fresh embedded
// broker and returns its URL and Kafka settings.
func startCollector(t *testing.T) (string, topics.Kafka) {
	t.Helper()
	e, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	k := topics.Kafka{Brokers: e.Addrs(), Topics: topics.Config{Partitions: 3}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topics.EnsureAll(ctx, k); err != nil {
		t.Fatal(err)
	}
	c, err := collector.New(collector.Options{Kafka: k, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("collector Run: %v", err)
		}
	})
	if err := c.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL, k
}

// tail collects every record of a topic from the start, in the
// background.
type tail struct {
	mu   sync.Mutex
	msgs []*sarama.ConsumerMessage
}

func (tl *tail) snapshot() []*sarama.ConsumerMessage {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]*sarama.ConsumerMessage(nil), tl.msgs...)
}

func follow(t *testing.T, k topics.Kafka, topic string) *tail {
	t.Helper()
	cfg := k.SaramaConfig("demo-test")
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	cons, err := sarama.NewConsumer(k.Brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	parts, err := cons.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	tl := &tail{}
	var wg sync.WaitGroup
	var pcs []sarama.PartitionConsumer
	t.Cleanup(func() {
		for _, pc := range pcs {
			pc.AsyncClose()
		}
		wg.Wait()
		cons.Close()
	})
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		pcs = append(pcs, pc)
		wg.Go(func() {
			for m := range pc.Messages() {
				tl.mu.Lock()
				tl.msgs = append(tl.msgs, m)
				tl.mu.Unlock()
			}
		})
	}
	return tl
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-time.After(50 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal("test ended")
		}
	}
}

func TestSeed(t *testing.T) {
	url, _ := startCollector(t)
	admin, err := codecs.SignToken(secret, codecs.Claims{Account: "demo", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for range 2 { // seeding twice replaces the links
		if err := demo.Seed(ctx, http.DefaultClient, url, "demo", admin); err != nil {
			t.Fatal(err)
		}
	}
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/links/demo", nil)
	req.Header.Set("Authorization", "Bearer "+admin)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list struct {
		Links []struct {
			Slug        string `json:"slug"`
			Destination string `json:"destination"`
			IOS         string `json:"ios"`
			Android     string `json:"android"`
			DeepLink    string `json:"deep_link"`
		} `json:"links"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	if len(list.Links) < 3 || len(list.Links) > 4 {
		t.Fatalf("%d demo links, want 3 or 4", len(list.Links))
	}
	for _, l := range list.Links {
		if l.Destination == "" || l.IOS == "" || l.Android == "" || l.DeepLink == "" {
			t.Errorf("demo link %+v: want web, iOS and Android destinations and a deep link", l)
		}
	}

	reader, err := codecs.SignToken(secret, codecs.Claims{Account: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(ctx, http.DefaultClient, url, "demo", reader); err == nil || !strings.Contains(err.Error(), "403") {
		t.Errorf("seeding with a read token: %v, want a 403 error", err)
	}
}

func TestSeedGivesUpWhenCancelled(t *testing.T) {
	// A collector that is never ready: Seed retries until ctx ends.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Retry-After", "1")
		http.Error(w, `{"error":"links are not loaded yet"}`, http.StatusServiceUnavailable)
	}))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	err := demo.Seed(ctx, srv.Client(), srv.URL, "demo", "token")
	if err == nil || !strings.Contains(err.Error(), "503") {
		t.Fatalf("Seed = %v, want the context's error naming the last 503", err)
	}
}

func TestRun(t *testing.T) {
	url, k := startCollector(t)
	hits, events := follow(t, k, string(topics.Hits)), follow(t, k, string(topics.Events))
	admin, err := codecs.SignToken(secret, codecs.Claims{Account: "demo", Admin: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := demo.Seed(t.Context(), http.DefaultClient, url, "demo", admin); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(t.Context())
	warnings := &warnCounter{}
	done := make(chan error, 1)
	go func() {
		done <- demo.Run(ctx, &http.Client{Timeout: 10 * time.Second}, url, "demo", demo.Options{Rate: 25, Logger: slog.New(warnings)})
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run = %v, want nil after cancel", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after its context was cancelled")
		}
	}
	t.Cleanup(stop)

	clickIDs := map[string]bool{}
	var attributed, organic, followUps int
	waitFor(t, 40*time.Second, "demo hits, attributed and organic installs, and follow-up events", func() bool {
		for _, m := range hits.snapshot() {
			h, err := codecs.Typed[livetabv1.Hit](m.Value)
			if err != nil {
				t.Fatal(err)
			}
			if h.Account != "demo" || h.ClickId == "" || h.GetRequest().GetParams()["utm_source"] == "" || h.GetRequest().GetUserAgent() == "" {
				t.Fatalf("demo hit %v: want account demo, a click id, utm params and a user agent", h)
			}
			if h.Platform == livetabv1.Platform_PLATFORM_ANDROID && !strings.Contains(h.Destination, "referrer=") {
				t.Fatalf("Android demo hit to %s: want Google Play with the click id in the referrer", h.Destination)
			}
			clickIDs[h.ClickId] = true
		}
		attributed, organic, followUps = 0, 0, 0
		for _, m := range events.snapshot() {
			// A record holds one event or a session's (a SessionEvents).
			raws, err := codecs.EventRecords(m.Value)
			if err != nil {
				t.Fatal(err)
			}
			for _, raw := range raws {
				ev, err := codecs.Typed[livetabv1.Event](raw)
				if err != nil {
					t.Fatal(err)
				}
				switch {
				case ev.Name == "install" && ev.ClickId == "":
					organic++
				case ev.Name == "install" && clickIDs[ev.ClickId]:
					attributed++
				case ev.Name != "install":
					followUps++
				}
			}
		}
		return len(clickIDs) >= 10 && attributed >= 2 && organic >= 1 && followUps >= 2
	})
	stop()
	if w := warnings.list(); len(w) > 0 {
		t.Errorf("the demo's requests to a healthy collector failed: %v", w)
	}
	t.Logf("%d hits, %d attributed installs, %d organic installs, %d other events", len(clickIDs), attributed, organic, followUps)
}

// warnCounter is a slog handler that keeps the messages of warnings and
// errors.
type warnCounter struct {
	mu   sync.Mutex
	msgs []string
}

func (w *warnCounter) Enabled(context.Context, slog.Level) bool { return true }
func (w *warnCounter) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *warnCounter) WithGroup(string) slog.Handler            { return w }

func (w *warnCounter) Handle(_ context.Context, r slog.Record) error {
	if r.Level < slog.LevelWarn {
		return nil
	}
	msg := r.Message
	r.Attrs(func(a slog.Attr) bool {
		msg += " " + a.String()
		return true
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	w.msgs = append(w.msgs, msg)
	return nil
}

func (w *warnCounter) list() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.msgs...)
}
