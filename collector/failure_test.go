package collector_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/topics"
)

// The failure tests bound every request by testProduceTimeout plus
// answerSlack: the time to answer once the wait for Kafka is over, with
// room for the race detector on a small machine.
const (
	testProduceTimeout = time.Second
	answerSlack        = 1500 * time.Millisecond
)

// outageLink is the link the failure tests click; its account is the one
// their events belong to (events of an account without links are refused).
const outageLink = "/l/acme/spring"

// ledger is what the collector told its clients, to hold against what is
// on the topics afterwards. It is safe for concurrent use.
type ledger struct {
	mu       sync.Mutex
	clicks   map[string]bool // click ids of hits answered 302
	hits503  int             // hits answered 503: their click ids are unknown
	sent     map[string]int  // event id → how often it was sent
	accepted map[string]bool // event ids accepted in a 200
}

func newLedger() *ledger {
	return &ledger{clicks: map[string]bool{}, sent: map[string]int{}, accepted: map[string]bool{}}
}

// answer is what a request got.
type answer struct {
	status int
	header http.Header
	body   []byte
	took   time.Duration
}

// send sends one request without failing the test from another goroutine:
// transport errors are reported with t.Errorf and return status 0.
func (e *env) send(method, path, body string) answer {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(e.t.Context(), method, e.url+path, rd)
	if err != nil {
		e.t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	start := time.Now()
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Errorf("%s %s: %v", method, path, err)
		return answer{}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Errorf("%s %s: read body: %v", method, path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: data, took: time.Since(start)}
}

// checkUnavailable reports an error unless a is a 503 with Retry-After and
// a JSON reason, answered within bound (0: unbounded).
func checkUnavailable(t *testing.T, what string, a answer, bound time.Duration) {
	t.Helper()
	if a.status != http.StatusServiceUnavailable {
		t.Errorf("%s: %d %s, want 503", what, a.status, a.body)
		return
	}
	if a.header.Get("Retry-After") == "" {
		t.Errorf("%s: 503 without Retry-After", what)
	}
	var b struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(a.body, &b) != nil || b.Error == "" {
		t.Errorf("%s: 503 body %q is not {\"error\":\"<reason>\"}", what, a.body)
	}
	if bound > 0 && a.took > bound {
		t.Errorf("%s: 503 after %v, want within %v", what, a.took, bound)
	}
}

// hit clicks the outage link once and records the answer: 302 (its click
// id is then owed to the hits topic) or 503. Anything else, and any answer
// slower than bound, is an error.
func (e *env) hit(l *ledger, bound time.Duration) int {
	a := e.send("GET", outageLink, "")
	switch a.status {
	case http.StatusFound:
		loc, err := url.Parse(a.header.Get("Location"))
		click := ""
		if err == nil {
			click = loc.Query().Get(collector.ClickIDParam)
		}
		if click == "" {
			e.t.Errorf("302 to %q carries no click id", a.header.Get("Location"))
			return a.status
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		if l.clicks[click] {
			e.t.Errorf("click id %s handed out twice", click)
		}
		l.clicks[click] = true
	case http.StatusServiceUnavailable:
		checkUnavailable(e.t, "hit", a, 0)
		if a.header.Get("Set-Cookie") != "" {
			e.t.Error("a hit answered 503 set the session cookie")
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.hits503++
	case 0:
	default:
		e.t.Errorf("hit: %d %s, want 302 or 503", a.status, a.body)
	}
	if bound > 0 && a.took > bound {
		e.t.Errorf("hit answered %d after %v, want within %v", a.status, a.took, bound)
	}
	return a.status
}

// events posts one batch with ids, as an SDK does (a retry sends the same
// ids), and records the answer: 200 with every event accepted, or 503.
func (e *env) events(l *ledger, bound time.Duration, ids ...string) int {
	var body []map[string]string
	for _, id := range ids {
		body = append(body, map[string]string{"id": id, "account": "acme", "session": "app-" + id, "name": "open"})
	}
	data, err := json.Marshal(body)
	if err != nil {
		e.t.Error(err)
		return 0
	}
	l.mu.Lock()
	for _, id := range ids {
		l.sent[id]++
	}
	l.mu.Unlock()
	a := e.send("POST", "/v1/events", string(data))
	switch a.status {
	case http.StatusOK:
		var ans struct {
			Results []struct{ ID, Status, Reason string } `json:"results"`
		}
		if err := json.Unmarshal(a.body, &ans); err != nil || len(ans.Results) != len(ids) {
			e.t.Errorf("events: 200 with body %s, want %d results", a.body, len(ids))
			return a.status
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, r := range ans.Results {
			if r.ID != ids[i] || r.Status != collector.StatusAccepted {
				e.t.Errorf("events: result %d is %+v, want %s accepted", i, r, ids[i])
				continue
			}
			l.accepted[r.ID] = true
		}
	case http.StatusServiceUnavailable:
		checkUnavailable(e.t, "events", a, 0)
	case 0:
	default:
		e.t.Errorf("events: %d %s, want 200 or 503", a.status, a.body)
	}
	if bound > 0 && a.took > bound {
		e.t.Errorf("events answered %d after %v, want within %v", a.status, a.took, bound)
	}
	return a.status
}

// check holds the topics against the ledger. For hits, every click id
// answered 302 is on the topic exactly once: a hit is never retried with
// the same id, and the idempotent producer never writes one twice. A hit
// answered 503 may have been written after its request stopped waiting,
// so at most hits503 others may be there. For events, "exactly once per
// event id" at the topic level means: every id accepted in a 200 is there
// at least once, no id is there that was never sent, and no id is there
// more often than it was sent; an id sent again after a 503 (the SDK
// retries with the same ids) may be there twice, which is at-least-once
// delivery that the processors deduplicate by id. It returns how often each
// event id is on the topic.
func (l *ledger) check(t *testing.T, hits, events []*sarama.ConsumerMessage) map[string]int {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	onTopic := map[string]int{}
	for _, m := range hits {
		h, err := codecs.Typed[livetabv1.Hit](m.Value)
		if err != nil {
			t.Fatalf("hit record at %d/%d: %v", m.Partition, m.Offset, err)
		}
		onTopic[h.GetClickId()]++
	}
	unknown := 0
	for click, n := range onTopic {
		switch {
		case n > 1:
			t.Errorf("click id %s is on the hits topic %d times, want once", click, n)
		case !l.clicks[click]:
			unknown++
		}
	}
	for click := range l.clicks {
		if onTopic[click] == 0 {
			t.Errorf("hit with click id %s was answered 302 but is not on the hits topic", click)
		}
	}
	if unknown > l.hits503 {
		t.Errorf("%d hits on the topic were never answered 302, but only %d were answered 503", unknown, l.hits503)
	}

	evOnTopic := map[string]int{}
	for _, m := range events {
		for _, ev := range readEventRecord(t, m).events {
			evOnTopic[ev.GetId()]++
		}
	}
	for id := range l.accepted {
		if evOnTopic[id] == 0 {
			t.Errorf("event %s was accepted but is not on the events topic", id)
		}
	}
	for id, n := range evOnTopic {
		switch sent := l.sent[id]; {
		case sent == 0:
			t.Errorf("event %s is on the events topic but was never sent", id)
		case n > sent:
			t.Errorf("event %s is on the events topic %d times but was sent %d times", id, n, sent)
		}
	}
	t.Logf("topics: %d hits (%d answered 302, %d written although answered 503), %d events (%d distinct ids accepted)",
		len(hits), len(l.clicks), unknown, len(events), len(l.accepted))
	return evOnTopic
}

func (l *ledger) counts() (clicks, accepted int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.clicks), len(l.accepted)
}

// stream is a few clients clicking and sending events at a steady pace,
// as real traffic does, until stopped. A client whose batch was answered
// 503 sends the same batch again next, as the SDKs do.
type stream struct {
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	pending map[int][]string // per client, the batch not yet accepted
}

func (e *env) startStream(l *ledger, clients int, bound time.Duration) *stream {
	s := &stream{stop: make(chan struct{}), pending: map[int][]string{}}
	for i := range clients {
		s.wg.Go(func() {
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			var batch []string
			// Bounded, in case the test forgets to stop it.
			for n := 0; n < 5000; n++ {
				select {
				case <-s.stop:
					s.mu.Lock()
					s.pending[i] = batch
					s.mu.Unlock()
					return
				case <-tick.C:
				}
				if n%2 == 0 {
					e.hit(l, bound)
					continue
				}
				if batch == nil {
					batch = []string{fmt.Sprintf("st%d-%d-a", i, n), fmt.Sprintf("st%d-%d-b", i, n)}
				}
				if e.events(l, bound, batch...) == http.StatusOK {
					batch = nil
				}
			}
		})
	}
	return s
}

// end stops the clients and returns the batches they still had to send.
func (s *stream) end() map[int][]string {
	close(s.stop)
	s.wg.Wait()
	return s.pending
}

// produceGate holds the broker's answers to produce requests while closed,
// as a broker that is overloaded or waits for lost replicas would.
type produceGate struct {
	mu      sync.Mutex
	holding bool
	release chan struct{}
	held    atomic.Int64
}

func holdProduce(t *testing.T, e *env) *produceGate {
	g := &produceGate{release: make(chan struct{})}
	b := e.broker
	b.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		b.KeepControl()
		g.mu.Lock()
		holding, release := g.holding, g.release
		g.mu.Unlock()
		if holding {
			g.held.Add(1)
			b.SleepControl(func() { <-release })
		}
		// Not handled: the broker then answers the request itself.
		return nil, nil, false
	})
	// A sleeping control's waker must not outlive the test.
	t.Cleanup(g.open)
	return g
}

func (g *produceGate) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.holding {
		g.holding = true
		g.release = make(chan struct{})
	}
}

func (g *produceGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.holding {
		g.holding = false
		close(g.release)
	}
}

// readyz asks GET /readyz and returns its status and body.
func (e *env) readyz() (int, string) {
	a := e.send("GET", "/readyz", "")
	return a.status, string(a.body)
}

// TestKafkaOutage sends a stream of hits and events through a Kafka
// outage of each kind and checks that:
//   - during the outage every request is answered 503 with Retry-After
//     within ProduceTimeout (plus slack), never 2xx;
//   - the collector recovers by itself when Kafka is back: new requests
//     succeed, and the SDKs' retries of what was answered 503 are accepted;
//   - every request answered 2xx is on its topic (hits exactly once, events
//     at least once, never more often than sent; see ledger.check).
func TestKafkaOutage(t *testing.T) {
	bound := testProduceTimeout + answerSlack
	tests := []struct {
		name string
		// down starts the outage and returns what ends it.
		down func(t *testing.T, e *env) (up func())
		// unready: /readyz answers 503 during the outage. A broker that
		// answers metadata but not produce requests looks reachable.
		unready bool
		// heldLate: the writes of the requests answered 503 during the
		// outage were only held, so they land late, and a retried batch
		// is then on the topic twice.
		heldLate bool
	}{
		{
			name: "broker restarts",
			down: func(t *testing.T, e *env) func() {
				e.stopBroker()
				return func() {
					e.startBroker()
					e.connectClient()
				}
			},
			unready: true,
		},
		{
			name: "broker hangs on produce",
			down: func(t *testing.T, e *env) func() {
				g := holdProduce(t, e)
				g.close()
				return g.open
			},
			heldLate: true,
		},
		{
			name: "broker refuses produce",
			down: func(t *testing.T, e *env) func() {
				h := e.broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Err: kerr.NotEnoughReplicas, Count: -1})
				return h.Remove
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := startEnv(t, envOptions{persist: true, opts: func(o *collector.Options) { o.ProduceTimeout = testProduceTimeout }})
			e.putLink("acme", "spring", map[string]any{"destination": "https://example.com/spring"})
			if status, body := e.readyz(); status != http.StatusOK {
				t.Fatalf("/readyz before the outage: %d %s", status, body)
			}
			l := newLedger()
			s := e.startStream(l, 3, bound)
			stopped := false
			defer func() {
				if !stopped {
					s.end()
				}
			}()
			waitFor(t, 10*time.Second, "traffic before the outage", func() bool {
				clicks, accepted := l.counts()
				return clicks >= 5 && accepted >= 10
			})

			up := tt.down(t, e)
			// The stream goes on; these requests are sent while Kafka is
			// surely out, so each must be answered 503.
			var wg sync.WaitGroup
			for i := range 2 {
				wg.Go(func() {
					if status := e.hit(l, bound); status != http.StatusServiceUnavailable {
						t.Errorf("hit during the outage: %d, want 503", status)
					}
				})
				wg.Go(func() {
					ids := []string{fmt.Sprintf("out-%d-a", i), fmt.Sprintf("out-%d-b", i)}
					if status := e.events(l, bound, ids...); status != http.StatusServiceUnavailable {
						t.Errorf("events during the outage: %d, want 503", status)
					}
				})
			}
			wg.Wait()
			if tt.unready {
				// A probe's result is reused for a second.
				waitFor(t, 5*time.Second, "/readyz to report Kafka unreachable", func() bool {
					status, body := e.readyz()
					return status == http.StatusServiceUnavailable && strings.Contains(body, "kafka unreachable")
				})
			}
			if tt.heldLate {
				if n := collector.ProducerPending(e.c); n == 0 {
					t.Error("no message pending in the producer while the broker holds them")
				}
			}

			up()
			clicks, accepted := l.counts()
			waitFor(t, 20*time.Second, "the collector to recover", func() bool {
				return e.events(l, bound, fmt.Sprintf("recover-%d", time.Now().UnixNano())) == http.StatusOK
			})
			waitFor(t, 10*time.Second, "/readyz to answer 200", func() bool {
				status, _ := e.readyz()
				return status == http.StatusOK
			})
			// The SDKs retry what was answered 503 with the same ids.
			for i := range 2 {
				ids := []string{fmt.Sprintf("out-%d-a", i), fmt.Sprintf("out-%d-b", i)}
				if status := e.events(l, bound, ids...); status != http.StatusOK {
					t.Errorf("retry of the batch answered 503: %d, want 200", status)
				}
			}
			if status := e.hit(l, bound); status != http.StatusFound {
				t.Errorf("hit after the outage: %d, want 302", status)
			}
			waitFor(t, 10*time.Second, "the stream to go on after the outage", func() bool {
				c, a := l.counts()
				return c >= clicks+5 && a >= accepted+10
			})
			stopped = true
			for client, batch := range s.end() {
				if batch != nil {
					t.Errorf("stream client %d still has batch %v unaccepted after the outage", client, batch)
				}
			}
			waitFor(t, 10*time.Second, "the producer to settle every message", func() bool {
				return collector.ProducerPending(e.c) == 0
			})

			onTopic := l.check(t, e.since(string(topics.Hits), offsets{}), e.since(string(topics.Events), offsets{}))
			if tt.heldLate {
				// Written late, and again by the retry: harmless, as the
				// processors keep the first event of an id.
				for i := range 2 {
					for _, id := range []string{fmt.Sprintf("out-%d-a", i), fmt.Sprintf("out-%d-b", i)} {
						if onTopic[id] != 2 {
							t.Errorf("event %s, held during the outage and retried, is on the topic %d times, want 2", id, onTopic[id])
						}
					}
				}
			}
		})
	}
}

// TestCloseWaitsForInFlightWrites calls Close while requests wait for
// Kafka: Close stops taking writes but returns only once the writes in
// flight got their answer, every one of those requests is answered 2xx,
// and each is on its topic.
func TestCloseWaitsForInFlightWrites(t *testing.T) {
	e := startEnv(t, envOptions{opts: func(o *collector.Options) { o.ProduceTimeout = 20 * time.Second }})
	e.putLink("acme", "spring", map[string]any{"destination": "https://example.com/spring"})
	g := holdProduce(t, e)
	g.close()

	l := newLedger()
	const n = 4
	statuses := make(chan int, n)
	for i := range n {
		go func() {
			if i%2 == 0 {
				statuses <- e.hit(l, 0)
			} else {
				statuses <- e.events(l, 0, fmt.Sprintf("close-%d-a", i), fmt.Sprintf("close-%d-b", i))
			}
		}()
	}
	waitFor(t, 10*time.Second, "the writes to be in flight", func() bool { return collector.ProduceInFlight(e.c) == n })

	type closed struct {
		err      error
		inFlight int64
	}
	done := make(chan closed, 1)
	go func() {
		err := e.c.Close()
		done <- closed{err: err, inFlight: collector.ProduceInFlight(e.c)}
	}()
	select {
	case <-collector.ProducerClosing(e.c):
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not begin")
	}
	// Once Close began, a new write is refused rather than taken and lost.
	checkUnavailable(t, "events during Close", e.send("POST", "/v1/events", `{"id":"late","account":"acme","session":"s","name":"open"}`), 5*time.Second)
	select {
	case c := <-done:
		t.Fatalf("Close returned (%v) while %d writes waited for Kafka", c.err, collector.ProduceInFlight(e.c))
	default:
	}

	g.open()
	for range n {
		select {
		case status := <-statuses:
			if status != http.StatusFound && status != http.StatusOK {
				t.Errorf("request in flight during Close: %d, want 2xx", status)
			}
		case <-time.After(20 * time.Second):
			t.Fatal("a request in flight during Close got no answer")
		}
	}
	select {
	case c := <-done:
		if c.err != nil {
			t.Errorf("Close: %v", c.err)
		}
		if c.inFlight != 0 {
			t.Errorf("Close returned while %d writes were in flight", c.inFlight)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Close did not return after Kafka answered")
	}
	if clicks, accepted := l.counts(); clicks != n/2 || accepted != n {
		t.Errorf("%d hits and %d events accepted, want %d and %d", clicks, accepted, n/2, n)
	}
	l.check(t, e.since(string(topics.Hits), offsets{}), e.since(string(topics.Events), offsets{}))
}

// TestEventsRecordFails makes the broker refuse the records of one
// partition: the request is answered 503, as whenever a record of it fails
// (the SDK retries the batch), and each record's events share its fate —
// the records of the other partition are written whole, those refused not
// at all. The retry is then accepted.
func TestEventsRecordFails(t *testing.T) {
	e := startEnv(t, envOptions{opts: func(o *collector.Options) { o.ProduceTimeout = testProduceTimeout }})
	// Two accounts whose records go to different partitions.
	partitioner := topics.Partitioner(string(topics.Events))
	partitionOf := func(account string) int32 {
		p, err := partitioner.Partition(&sarama.ProducerMessage{Topic: string(topics.Events), Key: sarama.StringEncoder(account)}, 3)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	kept, refused := "acme", ""
	for i := range 100 {
		if a := fmt.Sprintf("other%d", i); partitionOf(a) != partitionOf(kept) {
			refused = a
			break
		}
	}
	if refused == "" {
		t.Fatal("no account found on another partition than acme's")
	}
	e.known(kept, refused)
	var body []map[string]string
	for _, ev := range [][3]string{{"k1", kept, "s1"}, {"r1", refused, "s1"}, {"k2", kept, "s2"}, {"k3", kept, "s1"}, {"r2", refused, "s1"}, {"r3", refused, "s2"}} {
		body = append(body, map[string]string{"id": ev[0], "account": ev[1], "session": ev[2], "name": "open"})
	}
	data, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}

	before := e.endOffsets(string(topics.Events))
	// Not a retriable error: the producer gives up on those records at once.
	h := e.broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: string(topics.Events), Partitions: []int32{partitionOf(refused)},
		Err: kerr.InvalidRecord, Count: -1})
	checkUnavailable(t, "events with a record refused", e.send("POST", "/v1/events", string(data)), testProduceTimeout+answerSlack)
	// Every record gets its answer before the broker takes them again.
	waitFor(t, 10*time.Second, "the producer to settle every record", func() bool { return collector.ProducerPending(e.c) == 0 })
	h.Remove()
	var got []string
	for _, r := range e.eventRecords(before) {
		got = append(got, r.ids())
	}
	if want := []string{kept + ":[k1,k3]", kept + ":k2"}; !slices.Equal(got, want) {
		t.Errorf("records written %q, want %q: those of the partition that took them, whole", got, want)
	}

	before = e.endOffsets(string(topics.Events))
	resp, ans := e.postEvents(request{body: body})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("retry: %d %v", resp.StatusCode, ans)
	}
	byKey := map[string][]string{}
	for _, r := range e.eventRecords(before) {
		byKey[r.key] = append(byKey[r.key], r.ids())
	}
	if want := map[string][]string{kept: {kept + ":[k1,k3]", kept + ":k2"}, refused: {refused + ":[r1,r2]", refused + ":r3"}}; !maps.EqualFunc(byKey, want, slices.Equal) {
		t.Errorf("retry wrote %q, want %q", byKey, want)
	}
}

// TestProducerRetryIsIdempotent makes the broker append a hit but answer
// that it timed out: the producer retries, the broker recognises the
// retry, and the hit is on the topic once.
func TestProducerRetryIsIdempotent(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", map[string]any{"destination": "https://example.com/spring"})
	before := e.endOffsets(string(topics.Hits))
	h := e.broker.Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: string(topics.Hits), Err: kerr.RequestTimedOut, Count: 1})
	l := newLedger()
	if status := e.hit(l, 0); status != http.StatusFound {
		t.Fatalf("hit: %d, want 302 after the producer's retry", status)
	}
	if h.Hits() != 1 {
		t.Fatalf("the broker's fault fired %d times, want once", h.Hits())
	}
	msgs := e.since(string(topics.Hits), before)
	if len(msgs) != 1 {
		t.Errorf("%d hit records after a retried write, want 1", len(msgs))
	}
	l.check(t, msgs, nil)
}

// TestProducerConfig checks the producer settings that a 2xx relies on.
func TestProducerConfig(t *testing.T) {
	k := topics.Kafka{Brokers: []string{"127.0.0.1:9092"}}
	cfg := collector.ProducerConfig(k)
	if err := cfg.Validate(); err != nil {
		t.Fatalf("config does not validate: %v", err)
	}
	for _, c := range []struct {
		name string
		ok   bool
	}{
		{"acks from all in-sync replicas", cfg.Producer.RequiredAcks == sarama.WaitForAll},
		{"idempotent", cfg.Producer.Idempotent},
		{"one request in flight per broker (idempotence keeps order)", cfg.Net.MaxOpenRequests == 1},
		{"retries", cfg.Producer.Retry.Max > 0},
		{"successes reported", cfg.Producer.Return.Successes},
		{"errors reported", cfg.Producer.Return.Errors},
		{"no batching delay", cfg.Producer.Flush.Frequency == 0 && cfg.Producer.Flush.Bytes == 0 && cfg.Producer.Flush.Messages == 0},
	} {
		if !c.ok {
			t.Errorf("producer config: want %s", c.name)
		}
	}
	// Partitioned by topics.Hasher, like every other producer and goka.
	want := topics.Partitioner("t")
	got := cfg.Producer.Partitioner("t")
	for _, key := range []string{"session-1", "acme/spring", "acme/other", "x"} {
		msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder(key)}
		wp, err1 := want.Partition(msg, 8)
		gp, err2 := got.Partition(msg, 8)
		if err1 != nil || err2 != nil || wp != gp {
			t.Errorf("key %q: partition %d (%v), want %d (%v)", key, gp, err2, wp, err1)
		}
	}
}

// TestReadyWithoutLinks checks that a collector whose links view has not
// caught up is not ready, and says why.
func TestReadyWithoutLinks(t *testing.T) {
	e := startEnv(t, envOptions{noRun: true})
	status, body := e.readyz()
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "links view") {
		t.Errorf("/readyz before the links view runs: %d %s, want 503 naming the links view", status, body)
	}
	if err := e.c.Ready(t.Context()); err == nil || !errors.Is(err, collector.ErrLinksNotLoaded) {
		t.Errorf("Ready = %v, want ErrLinksNotLoaded", err)
	}
}
