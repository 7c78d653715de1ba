package collector_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/topics"
)

// testSecret signs the tokens of the tests.
var testSecret = []byte("collector-test-secret")

// env is a collector served over real HTTP against a real embedded broker,
// plus a sarama client to look at the topics.
type env struct {
	t      *testing.T
	k      topics.Kafka
	c      *collector.Collector
	url    string
	now    time.Time
	client *http.Client // does not follow redirects; keeps cookies
	kc     sarama.Client
	cons   sarama.Consumer

	broker     *topics.Embedded
	brokerOpts topics.EmbeddedOptions // how to start the broker again
}

type envOptions struct {
	opts      func(*collector.Options)
	noRun     bool                       // leave the links view stopped
	beforeRun func(*collector.Collector) // called before Run
	// persist keeps the broker's data on disk, so that stopBroker and
	// startBroker model a broker restart.
	persist bool
}

// startEnv starts a broker, ensures the topics, starts a collector and
// serves it with httptest, with the operators' endpoints mounted the way
// the system mounts them: GET /metrics and GET /readyz. Everything is
// stopped in t.Cleanup, in the order production uses: HTTP server, view,
// producer, broker.
func startEnv(t *testing.T, eo envOptions) *env {
	t.Helper()
	e := &env{t: t}
	if eo.persist {
		e.brokerOpts.DataDir = t.TempDir()
	}
	e.startBroker()
	// Whichever broker runs at the end is closed last.
	t.Cleanup(func() { e.broker.Close() })
	k := topics.Kafka{Brokers: e.broker.Addrs(), Topics: topics.Config{Partitions: 3}, Logger: testLogger()}
	e.k = k
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topics.EnsureAll(ctx, k); err != nil {
		t.Fatal(err)
	}

	now := time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)
	e.now = now
	opts := collector.Options{Kafka: k, Secret: testSecret, Now: func() time.Time { return now }, Logger: k.Logger}
	if eo.opts != nil {
		eo.opts(&opts)
	}
	c, err := collector.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	e.c = c
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("close collector: %v", err)
		}
	})
	if eo.beforeRun != nil {
		eo.beforeRun(c)
	}
	if !eo.noRun {
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(runCtx) }()
		t.Cleanup(func() {
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("collector Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Error("collector Run did not return after cancel")
			}
		})
		if err := c.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	c.Register(mux)
	mux.Handle("GET /metrics", c.Metrics())
	mux.Handle("GET /readyz", c.ReadyHandler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	e.url = srv.URL
	e.client = newClient(t)

	e.connectClient()
	t.Cleanup(func() {
		e.cons.Close()
		e.kc.Close()
	})
	return e
}

// startBroker starts the embedded broker; after stopBroker, on the same
// port and, with envOptions.persist, the same data.
func (e *env) startBroker() {
	e.t.Helper()
	b, err := topics.StartEmbedded(e.brokerOpts)
	if err != nil {
		e.t.Fatalf("start broker: %v", err)
	}
	e.broker = b
	if e.brokerOpts.Port == 0 {
		_, port, err := net.SplitHostPort(b.Addrs()[0])
		if err != nil {
			e.t.Fatal(err)
		}
		if e.brokerOpts.Port, err = strconv.Atoi(port); err != nil {
			e.t.Fatal(err)
		}
	}
}

// stopBroker closes the broker, as when it crashes or restarts: its port
// refuses connections until startBroker.
func (e *env) stopBroker() { e.broker.Close() }

// connectClient (re)connects the test's own client of the topics.
func (e *env) connectClient() {
	e.t.Helper()
	if e.cons != nil {
		e.cons.Close()
		e.kc.Close()
	}
	cfg := e.k.SaramaConfig("test")
	// Closing a partition consumer waits for its pending fetch; a short
	// fetch wait keeps reading the topics quick.
	cfg.Consumer.MaxWaitTime = 20 * time.Millisecond
	kc, err := sarama.NewClient(e.k.Brokers, cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	cons, err := sarama.NewConsumerFromClient(kc)
	if err != nil {
		kc.Close()
		e.t.Fatal(err)
	}
	e.kc, e.cons = kc, cons
}

// testLogger logs to stderr at the level in LIVETAB_COLLECTOR_TEST_LOG
// (debug, info, warn, error), or nowhere when it is unset, to see what the
// collector and its Kafka clients did in a failing test.
func testLogger() *slog.Logger {
	var level slog.Level
	v := os.Getenv("LIVETAB_COLLECTOR_TEST_LOG")
	if v == "" || level.UnmarshalText([]byte(v)) != nil {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// newClient is a browser-like client that keeps cookies but does not
// follow redirects.
func newClient(t *testing.T) *http.Client {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Jar:           jar,
		Timeout:       20 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func (e *env) token(account string, admin bool) string {
	e.t.Helper()
	tok, err := codecs.SignToken(testSecret, codecs.Claims{Account: account, Admin: admin, Expires: time.Now().Add(time.Hour)})
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// request describes one HTTP request of a test.
type request struct {
	method, path string
	token        string
	body         any // string, []byte or a value to encode as JSON
	contentType  string
	header       http.Header
	client       *http.Client
}

// do sends r and returns the response and its body.
func (e *env) do(r request) (*http.Response, []byte) {
	e.t.Helper()
	var body io.Reader
	ct := r.contentType
	switch b := r.body.(type) {
	case nil:
	case string:
		body = bytes.NewBufferString(b)
	case []byte:
		body = bytes.NewReader(b)
	default:
		data, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body = bytes.NewReader(data)
	}
	if body != nil && ct == "" {
		ct = "application/json"
	}
	req, err := http.NewRequest(r.method, e.url+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	for k, vs := range r.header {
		req.Header[k] = vs
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	if r.token != "" {
		req.Header.Set("Authorization", "Bearer "+r.token)
	}
	client := r.client
	if client == nil {
		client = e.client
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", r.method, r.path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return resp, data
}

// putLink registers a link and fails the test unless it is answered 200.
func (e *env) putLink(account, slug string, body map[string]any) {
	e.t.Helper()
	resp, data := e.do(request{method: "PUT", path: "/v1/links/" + account + "/" + slug, token: e.token(account, true), body: body})
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("PUT link %s/%s: %d %s", account, slug, resp.StatusCode, data)
	}
}

// offsets are the end offsets of every partition of a topic.
type offsets map[int32]int64

func (e *env) endOffsets(topic string) offsets {
	e.t.Helper()
	if err := e.kc.RefreshMetadata(topic); err != nil {
		e.t.Fatal(err)
	}
	parts, err := e.kc.Partitions(topic)
	if err != nil {
		e.t.Fatal(err)
	}
	o := offsets{}
	for _, p := range parts {
		off, err := e.kc.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			e.t.Fatal(err)
		}
		o[p] = off
	}
	return o
}

// since returns the records written to topic after before was taken. The
// collector answers only after Kafka acknowledged, so the end offsets read
// now are final for everything answered so far.
func (e *env) since(topic string, before offsets) []*sarama.ConsumerMessage {
	e.t.Helper()
	after := e.endOffsets(topic)
	var msgs []*sarama.ConsumerMessage
	for p, end := range after {
		from := before[p]
		if end <= from {
			continue
		}
		pc, err := e.cons.ConsumePartition(topic, p, from)
		if err != nil {
			e.t.Fatal(err)
		}
		deadline := time.After(10 * time.Second)
		for n := from; n < end; n++ {
			select {
			case m := <-pc.Messages():
				msgs = append(msgs, m)
			case err := <-pc.Errors():
				e.t.Fatalf("consume %s/%d: %v", topic, p, err)
			case <-deadline:
				e.t.Fatalf("consume %s/%d: got %d of %d records", topic, p, n-from, end-from)
			}
		}
		pc.Close()
	}
	return msgs
}

// nothingSince fails unless topic is unchanged since before.
func (e *env) nothingSince(topic string, before offsets, what string) {
	e.t.Helper()
	if msgs := e.since(topic, before); len(msgs) != 0 {
		e.t.Errorf("%s: %d records were produced to %s, want none", what, len(msgs), topic)
	}
}

// errorReason decodes an error body and fails unless it is {"error":...}.
func errorReason(t *testing.T, body []byte) string {
	t.Helper()
	var b struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(body, &b); err != nil || b.Error == "" {
		t.Fatalf("error body %q is not {\"error\":\"<reason>\"}", body)
	}
	return b.Error
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		select {
		case <-time.After(20 * time.Millisecond):
		case <-t.Context().Done():
			t.Fatal("test ended")
		}
	}
}
