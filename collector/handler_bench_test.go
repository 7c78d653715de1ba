package collector

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// The handler benchmarks measure the collector's own CPU per request: the
// requests go through the routes (ServeMux, metrics) to the handlers, and
// the producer acknowledges at once, so neither Kafka nor the HTTP server
// is in the figures. The links view is the real one, on the embedded
// broker, as the handlers read it on every request.
//
// Besides ns/op they report per event or hit: ns (wall time) and cpu-ns,
// the process's CPU time, the garbage collector's work on the other core
// included; on a shared machine the latter varies less.
//
//	go test -run '^$' -bench 'Handler' -benchmem -benchtime=2000x ./collector

// benchUA is a browser's user agent like the ones `livetab bench` sends.
const benchUA = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36"

// ackNow is a producer that acknowledges every message as soon as it is
// handed over, so that benchmarks see the handlers' CPU alone. It encodes
// each message, as sarama would.
type ackNow struct {
	producer // the real one, closed with the collector
}

func (ackNow) SendMessageContext(_ context.Context, msg *sarama.ProducerMessage) (int32, int64, error) {
	touch(msg)
	return 0, 0, nil
}

func (ackNow) SendMessagesContext(_ context.Context, msgs []*sarama.ProducerMessage) error {
	for _, m := range msgs {
		touch(m)
	}
	return nil
}

func touch(m *sarama.ProducerMessage) {
	if m.Key != nil {
		m.Key.Length()
	}
	if m.Value != nil {
		m.Value.Length()
	}
}

// benchWriter is a ResponseWriter that keeps the status and drops the
// body, reused across iterations so that the benchmark itself allocates
// little.
type benchWriter struct {
	h      http.Header
	status int
	n      int
	body   *bytes.Buffer // keeps the body when set
}

func (w *benchWriter) Header() http.Header { return w.h }
func (w *benchWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
}

func (w *benchWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.n += len(b)
	if w.body != nil {
		w.body.Write(b)
	}
	return len(b), nil
}

func (w *benchWriter) reset() {
	clear(w.h)
	w.status, w.n = 0, 0
}

// cpuTime is the CPU time the process has used so far, user and system,
// all threads (the garbage collector's included).
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportCPU reports the CPU time used since start per unit (per of them
// in an op): on a shared machine it varies less than the wall time.
func reportCPU(b *testing.B, start time.Duration, unit string, per int) {
	cpu := float64(cpuTime(b)-start) / float64(b.N)
	b.ReportMetric(cpu/float64(per), "cpu-ns/"+unit)
}

// benchCollector is a collector on the embedded broker with the link
// acme/go registered (as `livetab bench` registers its accounts' links),
// whose producer then acknowledges at once. It returns the routes.
func benchCollector(b *testing.B) (*Collector, http.Handler) {
	return benchCollectorWith(b, true)
}

// benchCollectorWith is benchCollector; with ackAtOnce false the producer is
// the real one, writing to the embedded broker.
func benchCollectorWith(b *testing.B, ackAtOnce bool) (*Collector, http.Handler) {
	b.Helper()
	broker, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(broker.Close)
	k := topics.Kafka{Brokers: broker.Addrs(), Topics: topics.Config{Partitions: 3}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topics.EnsureAll(ctx, k); err != nil {
		b.Fatal(err)
	}
	secret := []byte("bench-secret")
	c, err := New(Options{Kafka: k, Secret: secret, TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := c.Close(); err != nil {
			b.Errorf("close collector: %v", err)
		}
	})
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(runCtx) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("collector Run: %v", err)
		}
	})
	if err := c.WaitReady(ctx); err != nil {
		b.Fatal(err)
	}
	mux := http.NewServeMux()
	c.Register(mux)

	tok, err := codecs.SignToken(secret, codecs.Claims{Account: "acme", Admin: true, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		b.Fatal(err)
	}
	body := `{"destination":"https://example.com/landing","ios":"https://apps.example.com/app/id123",` +
		`"android":"https://play.google.com/store/apps/details?id=com.example.app","deep_link":"benchapp://promo/42","campaign":"spring"}`
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "/v1/links/acme/go", strings.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	req.RemoteAddr = "127.0.0.1:40000"
	w := &benchWriter{h: http.Header{}}
	mux.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		b.Fatalf("PUT link: %d", w.status)
	}
	if ackAtOnce {
		c.producer = ackNow{producer: c.producer}
	}
	return c, mux
}

// benchBatch is a batch of n in-app events of one session, as `livetab
// bench` sends them (bench/load.go appendEvent): 64 bytes of padding in a
// parameter, a hashed device id.
func benchBatch(n int) []byte {
	names := []string{"open", "view_item", "add_to_cart", "purchase", "level_up", "share", "search", "tutorial_complete"}
	const session = "r1a2b3c4-s1k"
	pad := strings.Repeat("x", 64)
	b := []byte{'['}
	for i := 1; i <= n; i++ {
		if i > 1 {
			b = append(b, ',')
		}
		b = append(b, `{"id":"`+session+"-"+strconv.Itoa(i)+`","account":"acme","session":"`+session+
			`","name":"`+names[(i-1)%len(names)]+`","platform":"android","app_version":"2.3.0",`+
			`"device_ids":["d-0123456789abcdef01234567"],"params":{"screen":"home","pad":"`+pad+`"}}`...)
	}
	return append(b, ']')
}

func BenchmarkHandlerEvents(b *testing.B) {
	benchEvents(b, "application/json", benchBatch(benchPerBatch))
}

// BenchmarkHandlerEventsProto sends the same batch as a protobuf
// EventBatch.
func BenchmarkHandlerEventsProto(b *testing.B) {
	var in []eventJSON
	if err := json.Unmarshal(benchBatch(benchPerBatch), &in); err != nil {
		b.Fatal(err)
	}
	batch := &livetabv1.EventBatch{}
	for _, e := range in {
		batch.Events = append(batch.Events, &livetabv1.Event{Id: e.ID, Account: e.Account, Session: e.Session, Name: e.Name,
			Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: e.AppVersion, DeviceIds: e.DeviceIDs, Params: e.Params})
	}
	body, err := proto.Marshal(batch)
	if err != nil {
		b.Fatal(err)
	}
	benchEvents(b, "application/x-protobuf", body)
}

// benchPerBatch is how many events `livetab bench` sends per request.
const benchPerBatch = 20

func benchEvents(b *testing.B, contentType string, body []byte) {
	const perBatch = benchPerBatch
	_, h := benchCollector(b)
	rd := bytes.NewReader(body)
	req, err := http.NewRequest(http.MethodPost, "/v1/events", io.NopCloser(rd))
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = int64(len(body)) // as a client sends it
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", benchUA)
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.RemoteAddr = "127.0.0.1:40000"
	w := &benchWriter{h: http.Header{}, body: &bytes.Buffer{}}
	h.ServeHTTP(w, req)
	if got := bytes.Count(w.body.Bytes(), []byte(`"status":"accepted"`)); w.status != http.StatusOK || got != perBatch {
		b.Fatalf("status %d, %d of %d events accepted: %s", w.status, got, perBatch, w.body)
	}
	w.body = nil
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		if cpu == 0 {
			cpu = cpuTime(b)
		}
		rd.Reset(body)
		w.reset()
		h.ServeHTTP(w, req)
		if w.status != http.StatusOK {
			b.Fatalf("status %d", w.status)
		}
	}
	reportCPU(b, cpu, "event", perBatch)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/perBatch, "ns/event")
}

func BenchmarkHandlerHit(b *testing.B) {
	_, h := benchCollector(b)
	target := "/l/acme/go?utm_source=bench&utm_medium=cpc&utm_campaign=spring&pad=" + strings.Repeat("x", 64) +
		"&device_id=d-0123456789abcdef01234567"
	req, err := http.NewRequest(http.MethodGet, target, nil)
	if err != nil {
		b.Fatal(err)
	}
	req.Header.Set("User-Agent", benchUA)
	req.Header.Set("X-Forwarded-For", "10.1.2.3")
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	req.RemoteAddr = "127.0.0.1:40000"
	w := &benchWriter{h: http.Header{}}
	b.ReportAllocs()
	var cpu time.Duration
	for b.Loop() {
		if cpu == 0 {
			cpu = cpuTime(b)
		}
		w.reset()
		h.ServeHTTP(w, req)
		if w.status != http.StatusFound {
			b.Fatalf("status %d", w.status)
		}
	}
	reportCPU(b, cpu, "hit", 1)
}

// BenchmarkHandlerEventsKafka is BenchmarkHandlerEvents with the real
// producer and the embedded broker, many requests at once as under load:
// its CPU time includes sarama's and the broker's (run it with
// -cpuprofile to tell them apart).
func BenchmarkHandlerEventsKafka(b *testing.B) {
	const perBatch = 20
	_, h := benchCollectorWith(b, false)
	body := benchBatch(perBatch)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.SetParallelism(16)
	cpu := cpuTime(b)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		rd := bytes.NewReader(body)
		req, err := http.NewRequest(http.MethodPost, "/v1/events", io.NopCloser(rd))
		if err != nil {
			b.Error(err)
			return
		}
		req.ContentLength = int64(len(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", benchUA)
		req.Header.Set("X-Forwarded-For", "10.1.2.3")
		req.RemoteAddr = "127.0.0.1:40000"
		w := &benchWriter{h: http.Header{}}
		for pb.Next() {
			rd.Reset(body)
			w.reset()
			h.ServeHTTP(w, req)
			if w.status != http.StatusOK {
				b.Errorf("status %d", w.status)
				return
			}
		}
	})
	b.StopTimer()
	reportCPU(b, cpu, "event", perBatch)
}
