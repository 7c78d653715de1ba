package views

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/coder/websocket"
	"github.com/lovoo/goka"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

var testSecret = []byte("views-test-secret")

// env is one views server on its own embedded broker.
type env struct {
	t    testing.TB
	o    envOptions
	k    topics.Kafka
	prod sarama.SyncProducer
	srv  *Server
	http *httptest.Server
	// stopRun cancels Run and waits for it.
	stopRun func()
}

type envOptions struct {
	queueSize   int
	maxWaiters  int
	historySize int
	// sampleRate defaults to a rate no test reaches, so that clients
	// without filters get every item.
	sampleRate     float64
	statsInterval  time.Duration
	originPatterns []string
	// storageDir is Options.StorageDir.
	storageDir string
	// before runs once the topics exist and before the server starts, to
	// produce what the views must recover.
	before func(e *env)
	// noRun leaves the views stopped (the server never gets ready).
	noRun bool
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	b, err := topics.StartEmbedded(topics.EmbeddedOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	if o.sampleRate == 0 {
		o.sampleRate = 1e6
	}
	e := &env{t: t, o: o, k: topics.Kafka{Brokers: b.Addrs(), Topics: topics.Config{Partitions: 4}}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := topics.EnsureAll(ctx, e.k); err != nil {
		t.Fatal(err)
	}
	if e.prod, err = e.k.NewSyncProducer("test"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.prod.Close() })
	if o.before != nil {
		o.before(e)
	}
	e.startServer()
	return e
}

// startServer starts a views server on the env's broker and serves it.
func (e *env) startServer() {
	t, o := e.t, e.o
	t.Helper()
	srv, err := New(Options{Kafka: e.k, Secret: testSecret, QueueSize: o.queueSize, MaxWaiters: o.maxWaiters,
		HistorySize: o.historySize, SampleRate: o.sampleRate, StatsInterval: o.statsInterval, OriginPatterns: o.originPatterns,
		StorageDir: o.storageDir})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	if o.noRun {
		// Run closes the views' clients; without it the test does.
		t.Cleanup(func() { srv.clients.close(srv.log) })
	} else {
		runCtx, stop := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- srv.Run(runCtx) }()
		var once sync.Once
		e.stopRun = func() {
			once.Do(func() {
				stop()
				select {
				case err := <-done:
					if err != nil {
						t.Errorf("Run: %v", err)
					}
				case <-time.After(30 * time.Second):
					t.Error("Run did not return 30s after its context was cancelled")
				}
			})
		}
		t.Cleanup(e.stopRun)
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := srv.WaitReady(ctx); err != nil {
			t.Fatal(err)
		}
	}
	mux := http.NewServeMux()
	srv.Register(mux)
	e.http = httptest.NewServer(mux)
	t.Cleanup(e.http.Close)
}

// restart stops the server (its connections are closed with 1001) and
// starts a new one on the same broker, which recovers from the topics.
func (e *env) restart() {
	e.t.Helper()
	e.stopRun()
	e.http.Close()
	e.startServer()
}

func token(t testing.TB, account string, expires time.Time) string {
	t.Helper()
	tok, err := codecs.SignToken(testSecret, codecs.Claims{Account: account, Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func validToken(t testing.TB, account string) string {
	return token(t, account, time.Now().Add(time.Hour))
}

// produce writes messages to topic, each value a protobuf message.
func (e *env) produce(topic string, kvs map[string]proto.Message, order []string) {
	e.t.Helper()
	var msgs []*sarama.ProducerMessage
	for _, k := range order {
		b, err := proto.Marshal(kvs[k])
		if err != nil {
			e.t.Fatal(err)
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(k), Value: sarama.ByteEncoder(b)})
	}
	if err := e.prod.SendMessages(msgs); err != nil {
		e.t.Fatalf("produce to %s: %v", topic, err)
	}
}

// produceItems writes view items to the view topic, keyed as the liveview
// processor keys them.
func (e *env) produceItems(items ...*livetabv1.ViewItem) {
	e.t.Helper()
	if err := e.tryProduceItems(items...); err != nil {
		e.t.Fatal(err)
	}
}

// tryProduceItems is produceItems for goroutines other than the test's.
func (e *env) tryProduceItems(items ...*livetabv1.ViewItem) error {
	msgs := make([]*sarama.ProducerMessage, 0, len(items))
	for _, it := range items {
		b, err := codecs.ViewItemCodec{}.Encode(it)
		if err != nil {
			return err
		}
		msgs = append(msgs, &sarama.ProducerMessage{Topic: string(topics.View),
			Key: sarama.StringEncoder(topics.ViewKey(it.GetAccount(), it.GetCursor())), Value: sarama.ByteEncoder(b)})
	}
	if err := e.prod.SendMessages(msgs); err != nil {
		return fmt.Errorf("produce view items: %w", err)
	}
	return nil
}

func (e *env) produceTimelines(tls ...*livetabv1.Timeline) {
	e.t.Helper()
	kvs := map[string]proto.Message{}
	var order []string
	for _, tl := range tls {
		kvs[tl.GetSession()] = tl
		order = append(order, tl.GetSession())
	}
	e.produce(string(goka.GroupTable(topics.SessionsGroup)), kvs, order)
}

// liveURL is the WebSocket address of /v1/live with the given query.
func (e *env) liveURL(q url.Values) string {
	return "ws" + strings.TrimPrefix(e.http.URL, "http") + "/v1/live?" + q.Encode()
}

// liveClient is a live connection as tests read it: frames one by one,
// those of a batch frame included.
type liveClient struct {
	*websocket.Conn
	pending []frame // of the last batch frame, not read yet
}

// dial connects to /v1/live as a browser does (token in the query) and
// closes the connection when the test ends.
func (e *env) dial(account, tok string) *liveClient {
	e.t.Helper()
	q := url.Values{}
	if account != "" {
		q.Set("account", account)
	}
	return e.dialQuery(tok, q)
}

// dialQuery connects with tok and the query parameters q.
func (e *env) dialQuery(tok string, q url.Values) *liveClient {
	e.t.Helper()
	c, resp, err := e.tryDial(tok, q, nil)
	if err != nil {
		e.t.Fatalf("dial %v: %v (response %v)", q, err, resp)
	}
	return c
}

// tryDial connects with tok, the query parameters q and the request
// headers h.
func (e *env) tryDial(tok string, q url.Values, h http.Header) (*liveClient, *http.Response, error) {
	q2 := url.Values{"token": {tok}}
	for k, v := range q {
		q2[k] = v
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, e.liveURL(q2), &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(64 << 20)
	e.t.Cleanup(func() { c.CloseNow() })
	return &liveClient{Conn: c}, resp, nil
}

// frame is a live frame as a client decodes it; each type uses some of
// the fields.
type frame struct {
	Type     string        `json:"type"`
	Account  string        `json:"account"`
	Items    []itemJSON    `json:"items"`
	Counters *countersJSON `json:"counters"`
	Item     *itemJSON     `json:"item"`
	Filters  *filtersJSON  `json:"filters"`
	Sampled  *bool         `json:"sampled"`
	Cursor   uint64        `json:"cursor"`
	// skipped
	After  uint64 `json:"after"`
	Oldest uint64 `json:"oldest"`
	Reason string `json:"reason"`
	// error
	Error string `json:"error"`
	Code  string `json:"code"`
	// stats
	ArrivingPerS *float64 `json:"arriving_per_s"`
	ShowingPerS  *float64 `json:"showing_per_s"`
	DelayMS      *int64   `json:"delay_ms"`
	Lag          *int64   `json:"lag"`
	// token
	Expires string `json:"expires"`
	// batch
	Frames []json.RawMessage `json:"frames"`
}

// readFrame reads the next frame that is not a stats frame.
func readFrame(t *testing.T, c *liveClient) frame {
	t.Helper()
	f, err := tryReadFrame(c, 10*time.Second)
	if err != nil {
		t.Fatalf("read frame: %v", err)
	}
	return f
}

// tryReadFrame reads the next frame that is not a stats frame.
func tryReadFrame(c *liveClient, timeout time.Duration) (frame, error) {
	deadline := time.Now().Add(timeout)
	for {
		f, err := readAnyFrame(c, time.Until(deadline))
		if err != nil || f.Type != "stats" {
			return f, err
		}
	}
}

// readAnyFrame reads the next frame, stats included. The frames of a
// batch frame come one by one, as if they had been sent so; a batch frame
// must hold two or more item or update frames.
func readAnyFrame(c *liveClient, timeout time.Duration) (frame, error) {
	if len(c.pending) > 0 {
		f := c.pending[0]
		c.pending = c.pending[1:]
		return f, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	typ, b, err := c.Read(ctx)
	if err != nil {
		return frame{}, err
	}
	if typ != websocket.MessageText {
		return frame{}, fmt.Errorf("frame of type %v, want text", typ)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("decode frame %.200s: %w", b, err)
	}
	if f.Type != "batch" {
		return f, nil
	}
	if len(f.Frames) < 2 {
		return frame{}, fmt.Errorf("batch frame of %d frames: %.200s", len(f.Frames), b)
	}
	for _, raw := range f.Frames {
		var g frame
		if err := json.Unmarshal(raw, &g); err != nil {
			return frame{}, fmt.Errorf("decode frame %.200s of a batch: %w", raw, err)
		}
		if g.Type != "item" && g.Type != "update" {
			return frame{}, fmt.Errorf("a %q frame in a batch frame: %.200s", g.Type, raw)
		}
		c.pending = append(c.pending, g)
	}
	f, c.pending = c.pending[0], c.pending[1:]
	return f, nil
}

func readSnapshot(t *testing.T, c *liveClient) frame {
	t.Helper()
	f := readFrame(t, c)
	if f.Type != "snapshot" {
		t.Fatalf("first frame is %q (%+v), want snapshot", f.Type, f)
	}
	return f
}

// send writes v as a JSON text message.
func send(t *testing.T, c *liveClient, v any) {
	t.Helper()
	b, ok := v.([]byte)
	if !ok {
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		t.Fatalf("send %.100s: %v", b, err)
	}
}

// waitFor polls cond until it holds or fails the test after timeout.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// getJSON GETs path with a bearer token and decodes the JSON answer.
func (e *env) getJSON(path, tok string, out any) int {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.http.URL+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
			e.t.Fatalf("GET %s: content type %q", path, ct)
		}
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			e.t.Fatalf("GET %s: decode: %v", path, err)
		}
	}
	return resp.StatusCode
}
