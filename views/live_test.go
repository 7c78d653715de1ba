package views

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/coder/websocket"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// t0 is a fixed time, in Unix microseconds, that test items start from.
const t0 = int64(1_750_000_000_000_000)

func counters(cursor uint64) *livetabv1.Counters {
	return &livetabv1.Counters{Hits: cursor, Events: cursor / 2, Conversions: cursor / 10}
}

func hitItem(account string, cursor uint64) *livetabv1.ViewItem {
	session := fmt.Sprintf("hit-session-%d", cursor)
	return &livetabv1.ViewItem{
		Cursor: cursor, Account: account, Kind: livetabv1.Kind_KIND_HIT, Session: session,
		ReceivedUs: t0 + int64(cursor), Counters: counters(cursor),
		Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{
			Id: fmt.Sprintf("hit-%d", cursor), Account: account, Session: session, Link: "spring",
			ReceivedUs: t0 + int64(cursor), Platform: livetabv1.Platform_PLATFORM_IOS,
		}},
	}
}

func eventItem(account string, cursor uint64, session string) *livetabv1.ViewItem {
	return &livetabv1.ViewItem{
		Cursor: cursor, Account: account, Kind: livetabv1.Kind_KIND_EVENT, Session: session,
		ReceivedUs: t0 + int64(cursor), Counters: counters(cursor),
		Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{
			Id: fmt.Sprintf("event-%d", cursor), Account: account, Session: session, Name: "install",
			TimeUs: t0 + int64(cursor), ReceivedUs: t0 + int64(cursor), Platform: livetabv1.Platform_PLATFORM_ANDROID,
		}},
	}
}

func hitItems(account string, from, to uint64) []*livetabv1.ViewItem {
	var items []*livetabv1.ViewItem
	for c := from; c <= to; c++ {
		items = append(items, hitItem(account, c))
	}
	return items
}

func cursorsOf(items []itemJSON) []uint64 {
	cs := make([]uint64, len(items))
	for i, it := range items {
		cs[i] = it.Cursor
	}
	return cs
}

// readItemsUntil reads item frames until cursor last and checks that they
// continue after exactly without a gap or a duplicate.
func readItemsUntil(t *testing.T, c *liveClient, after, last uint64) {
	t.Helper()
	for next := after + 1; next <= last; next++ {
		f := readFrame(t, c)
		if f.Type != "item" || f.Item == nil {
			t.Fatalf("frame %q while waiting for item %d", f.Type, next)
		}
		if f.Item.Cursor != next {
			t.Fatalf("item %d after %d: gap or duplicate", f.Item.Cursor, next-1)
		}
	}
}

func TestLiveSnapshotThenLiveWithoutGapOrDuplicate(t *testing.T) {
	const (
		recovered = 130 // produced before the server starts: more than the 100 kept
		during    = 170 // produced while the client connects
		last      = 200 // produced after the snapshot arrived
	)
	e := newEnv(t, envOptions{before: func(e *env) {
		e.produceItems(hitItems("demo", 1, recovered)...)
		e.produceItems(hitItems("other", 1, 20)...)
	}})

	var wg sync.WaitGroup
	wg.Go(func() {
		for c := uint64(recovered + 1); c <= during; c++ {
			e.produceItems(hitItem("demo", c))
		}
	})
	c := e.dial("demo", validToken(t, "demo"))
	snap := readSnapshot(t, c)
	wg.Wait()
	e.produceItems(hitItems("demo", during+1, last)...)

	if snap.Account != "demo" || len(snap.Items) != 100 {
		t.Fatalf("snapshot of %q with %d items, want demo with 100", snap.Account, len(snap.Items))
	}
	cs := cursorsOf(snap.Items)
	hi := cs[len(cs)-1]
	if hi < recovered {
		t.Fatalf("snapshot ends at %d, before the %d recovered items", hi, recovered)
	}
	for i, cur := range cs {
		if want := hi - 99 + uint64(i); cur != want {
			t.Fatalf("snapshot cursors %v: want the 100 newest, oldest first, without a gap", cs)
		}
		if snap.Items[i].Account != "demo" {
			t.Fatalf("snapshot item %d of account %q", cur, snap.Items[i].Account)
		}
	}
	if want := encodeCounters(counters(hi)); snap.Counters == nil || *snap.Counters != want {
		t.Errorf("snapshot counters %+v, want the newest item's %+v", snap.Counters, want)
	}
	readItemsUntil(t, c, hi, last)
}

func TestLiveUpdatesAndMarks(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := validToken(t, "demo")
	first := e.dial("demo", tok)
	snap := readSnapshot(t, first)
	if len(snap.Items) != 0 || snap.Counters == nil || *snap.Counters != (countersJSON{}) {
		t.Fatalf("empty account: snapshot %+v, want no item and zero counters", snap)
	}

	install := eventItem("demo", 1, "app-1")
	e.produceItems(install, hitItem("demo", 2))
	readItemsUntil(t, first, 0, 2)

	// The conversion pairs the install: the install is re-emitted, marked,
	// with its cursor; the conversion is a new item with new counters.
	marked := eventItem("demo", 1, "app-1")
	marked.ConvertedWith = &livetabv1.ConvertedWith{Session: "hit-session-2", Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID, HitId: "hit-2", TimeUs: t0 + 3}
	conv := &livetabv1.ViewItem{Cursor: 3, Account: "demo", Kind: livetabv1.Kind_KIND_CONVERSION, Session: "app-1",
		ReceivedUs: t0 + 3, Counters: &livetabv1.Counters{Hits: 1, Events: 1, Conversions: 1},
		Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{Id: "conv-1", Account: "demo",
			HitSession: "hit-session-2", AppSession: "app-1", Method: livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID}}}
	e.produceItems(marked, conv)

	f := readFrame(t, first)
	if f.Type != "update" || f.Item == nil || f.Item.Cursor != 1 {
		t.Fatalf("got %q frame %+v, want the update of item 1", f.Type, f.Item)
	}
	if cw := f.Item.ConvertedWith; cw == nil || cw.Session != "hit-session-2" || cw.Method != "click_id" {
		t.Fatalf("update carries converted_with %+v", cw)
	}
	f = readFrame(t, first)
	if f.Type != "item" || f.Item.Cursor != 3 || f.Item.Kind != "conversion" {
		t.Fatalf("got %q frame %+v, want item 3, the conversion", f.Type, f.Item)
	}

	// A later subscriber sees the marked version and the latest counters.
	second := e.dial("", tok) // the account defaults to the token's
	snap = readSnapshot(t, second)
	if got := cursorsOf(snap.Items); len(got) != 3 || got[0] != 1 || got[2] != 3 {
		t.Fatalf("snapshot cursors %v, want [1 2 3]", got)
	}
	if snap.Items[0].ConvertedWith == nil || snap.Items[0].ConvertedWith.Session != "hit-session-2" {
		t.Errorf("snapshot item 1 without its mark: %+v", snap.Items[0])
	}
	if want := (countersJSON{Hits: 1, Events: 1, Conversions: 1}); snap.Counters == nil || *snap.Counters != want {
		t.Errorf("snapshot counters %+v, want %+v", snap.Counters, want)
	}
}

func TestLiveAndTimelineRejectBeforeUpgrade(t *testing.T) {
	e := newEnv(t, envOptions{})
	badSig, err := codecs.SignToken([]byte("another secret"), codecs.Claims{Account: "demo", Expires: time.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		account string
		token   string
		want    int
	}{
		{"missing token", "demo", "", http.StatusUnauthorized},
		{"garbage token", "demo", "not-a-jwt", http.StatusUnauthorized},
		{"bad signature", "demo", badSig, http.StatusUnauthorized},
		{"expired token", "demo", token(t, "demo", time.Now().Add(-time.Minute)), http.StatusUnauthorized},
		{"other account", "acme", validToken(t, "demo"), http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := url.Values{"account": {tt.account}}
			if tt.token != "" {
				q.Set("token", tt.token)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, resp, err := websocket.Dial(ctx, e.liveURL(q), nil)
			if err == nil {
				c.CloseNow()
				t.Fatal("the WebSocket was upgraded")
			}
			if resp == nil || resp.StatusCode != tt.want {
				t.Fatalf("live: response %v, want status %d", resp, tt.want)
			}
			body, _ := io.ReadAll(resp.Body)
			if !strings.HasPrefix(string(body), `{"error":"`) {
				t.Errorf("live: body %q, want a JSON error", body)
			}

			// The timeline and deep-link APIs, with the token in the header.
			for _, api := range []string{"/v1/timeline", "/v1/deeplink"} {
				var got errorJSON
				path := api + "?session=s&account=" + tt.account
				if status := e.getJSON(path, tt.token, &got); status != tt.want || got.Error == "" {
					t.Errorf("%s: %d %+v, want %d with an error", api, status, got, tt.want)
				}
			}
		})
	}
}

func TestLiveNotReadyIs503(t *testing.T) {
	e := newEnv(t, envOptions{noRun: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.liveURL(url.Values{"token": {validToken(t, "demo")}}), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("live before ready: %v %v, want 503", resp, err)
	}
	for _, path := range []string{"/v1/timeline?session=s", "/v1/deeplink?session=s", "/v1/deeplink?session=s&wait=10s"} {
		var got errorJSON
		if status := e.getJSON(path, validToken(t, "demo"), &got); status != http.StatusServiceUnavailable {
			t.Errorf("%s before ready: %d, want 503", path, status)
		}
	}
	if n := e.srv.waiters.len(); n != 0 {
		t.Errorf("%d deep-link requests wait on views that are not ready", n)
	}
}

func TestLiveBearerHeader(t *testing.T) {
	e := newEnv(t, envOptions{before: func(e *env) { e.produceItems(hitItem("demo", 1)) }})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, e.liveURL(url.Values{"account": {"demo"}}), &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + validToken(t, "demo")}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	if snap := readSnapshot(t, &liveClient{Conn: c}); len(snap.Items) != 1 {
		t.Fatalf("snapshot %+v, want item 1", snap)
	}
}

func TestLiveAccountsAreIsolated(t *testing.T) {
	e := newEnv(t, envOptions{before: func(e *env) { e.produceItems(hitItems("acme", 1, 5)...) }})
	a := e.dial("demo", validToken(t, "demo"))
	b := e.dial("acme", validToken(t, "acme"))
	if snap := readSnapshot(t, a); len(snap.Items) != 0 {
		t.Fatalf("demo's snapshot shows %d items of acme", len(snap.Items))
	}
	readSnapshot(t, b)

	// acme's items are fanned out (acme's client gets them) before demo's
	// single item is even produced: were they sent to demo, they would
	// come first.
	e.produceItems(hitItems("acme", 6, 10)...)
	readItemsUntil(t, b, 5, 10)
	e.produceItems(hitItem("demo", 1))
	f := readFrame(t, a)
	if f.Type != "item" || f.Item.Account != "demo" || f.Item.Cursor != 1 {
		t.Fatalf("demo's client got %q %+v, want demo's item 1", f.Type, f.Item)
	}
}

func TestLiveSlowSubscriberIsClosedAlone(t *testing.T) {
	const (
		queue = 64
		batch = 16
		// Each item carries this much, so that the never-reading client's
		// socket buffers fill and its queue overflows after a few MB.
		payload  = 128 << 10
		maxItems = 600
	)
	e := newEnv(t, envOptions{queueSize: queue})
	// The slow client starts reading only after the producing ends; its
	// last blocked write must not time out before.
	e.srv.writeTimeout = 2 * time.Minute
	tok := validToken(t, "demo")
	fast := e.dial("demo", tok)
	slow := e.dial("demo", tok)
	readSnapshot(t, fast)

	var (
		mu     sync.Mutex
		seen   uint64
		ferr   error
		delays []time.Duration // from producing to the fast client reading, per item
	)
	fastDone := make(chan struct{})
	go func() {
		defer close(fastDone)
		for {
			f, err := tryReadFrame(fast, 30*time.Second)
			mu.Lock()
			if err == nil && (f.Type != "item" || f.Item.Cursor != seen+1) {
				err = fmt.Errorf("fast client got %q %+v after item %d", f.Type, f.Item, seen)
			}
			if err != nil {
				ferr = err
				mu.Unlock()
				return
			}
			seen = f.Item.Cursor
			if at, err := time.Parse(time.RFC3339Nano, f.Item.ReceivedAt); err == nil {
				delays = append(delays, time.Since(at))
			}
			mu.Unlock()
		}
	}()
	fastSeen := func() (uint64, error) {
		mu.Lock()
		defer mu.Unlock()
		return seen, ferr
	}

	big := strings.Repeat("x", payload)
	var produced uint64
	for e.srv.hub.stats.slow.Load() == 0 {
		if produced >= maxItems {
			t.Fatalf("the never-reading client was not dropped after %d items of %d KiB", produced, payload>>10)
		}
		items := hitItems("demo", produced+1, produced+batch)
		for _, it := range items {
			it.GetHit().Request = &livetabv1.Request{Params: map[string]string{"pad": big}}
			it.ReceivedUs = time.Now().UnixMicro()
		}
		e.produceItems(items...)
		produced += batch
		// Keep the fast client close behind, as a real fast client is.
		waitFor(t, 20*time.Second, fmt.Sprintf("the fast client to get item %d", produced), func() bool {
			s, err := fastSeen()
			if err != nil {
				t.Fatalf("fast client: %v", err)
			}
			return s >= produced
		})
	}
	if n := e.srv.hub.stats.slow.Load(); n != 1 {
		t.Fatalf("%d subscribers dropped as slow, want only the slow one", n)
	}
	// The fast client keeps receiving after the slow one was dropped.
	items := hitItems("demo", produced+1, produced+batch)
	for _, it := range items {
		it.ReceivedUs = time.Now().UnixMicro()
	}
	e.produceItems(items...)
	produced += batch
	waitFor(t, 20*time.Second, "the fast client to get every item", func() bool {
		s, err := fastSeen()
		if err != nil {
			t.Fatalf("fast client: %v", err)
		}
		return s == produced
	})

	// The slow client reads what was sent to it, without a gap, then the
	// close frame with the reason.
	snap := readSnapshot(t, slow)
	next := uint64(len(snap.Items)) + 1
	for {
		f, err := tryReadFrame(slow, 20*time.Second)
		if err != nil {
			var ce websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != websocket.StatusPolicyViolation || ce.Reason != "too slow: outgoing queue full" {
				t.Fatalf("slow client ended with %v, want close 1008 %q", err, "too slow: outgoing queue full")
			}
			break
		}
		if f.Type != "item" || f.Item.Cursor != next {
			t.Fatalf("slow client got %q %+v, want item %d", f.Type, f.Item, next)
		}
		next++
	}
	t.Logf("slow client dropped after %d items; it had been sent %d of them", produced-batch, next-1)
	if next-1 >= produced {
		t.Fatalf("the slow client got all %d items: it was not slow", produced)
	}
	fast.CloseNow()
	<-fastDone

	// While the slow client's queue filled, the fast one kept its latency:
	// had the hub waited on the slow client, the fast one would have
	// waited as long (its writes block for up to two minutes).
	mu.Lock()
	defer mu.Unlock()
	if len(delays) < int(produced-batch) {
		t.Fatalf("%d delays measured for %d items", len(delays), produced)
	}
	sorted := slices.Sorted(slices.Values(delays))
	median, worst := sorted[len(sorted)/2], sorted[len(sorted)-1]
	t.Logf("fast client delay: median %v, worst %v over %d items", median, worst, len(sorted))
	if median > 2*time.Second || worst > 10*time.Second {
		t.Errorf("fast client delay: median %v, worst %v; want it low while the slow client was cut", median, worst)
	}
}

func TestViewTopicConsumedOnce(t *testing.T) {
	const subscribers, items = 5, 20
	e := newEnv(t, envOptions{})
	conns := make([]*liveClient, subscribers)
	for i := range conns {
		conns[i] = e.dial("demo", validToken(t, "demo"))
		readSnapshot(t, conns[i])
	}
	e.produceItems(hitItems("demo", 1, items)...)
	for _, c := range conns {
		readItemsUntil(t, c, 0, items)
	}
	// One view consumes the topic: every record is seen and published once,
	// however many subscribers there are.
	if got := e.srv.records.Load(); got != items {
		t.Errorf("view callback saw %d records, want %d", got, items)
	}
	if got := e.srv.hub.stats.published.Load(); got != items {
		t.Errorf("hub published %d updates, want %d", got, items)
	}
}

func TestPage(t *testing.T) {
	e := newEnv(t, envOptions{noRun: true})
	resp, err := http.Get(e.http.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /: %d %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// The page's content is the page's tests' business (e2e); these are
	// the protocol words it cannot do without.
	for _, want := range []string{"<!doctype html>", "/v1/live", "converted_with", "snapshot"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(string(body), "http://") || strings.Contains(string(body), "https://") {
		t.Error("page loads something from another origin")
	}
	if resp.Header.Get("Referrer-Policy") != "no-referrer" {
		t.Error("page may leak its token through the referrer")
	}
	if resp, err := http.Get(e.http.URL + "/nothing-here"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET /nothing-here: %v %v, want 404", resp, err)
	} else {
		resp.Body.Close()
	}
}

func TestLiveSkipsCorruptRecords(t *testing.T) {
	corrupt := func(e *env, key string) {
		e.t.Helper()
		_, _, err := e.prod.SendMessage(&sarama.ProducerMessage{Topic: string(topics.View),
			Key: sarama.StringEncoder(key), Value: sarama.ByteEncoder{0xff, 0xff, 0xff}})
		if err != nil {
			e.t.Fatal(err)
		}
	}
	e := newEnv(t, envOptions{before: func(e *env) {
		e.produceItems(hitItem("demo", 1))
		corrupt(e, topics.ViewKey("demo", 2))
	}})
	c := e.dial("demo", validToken(t, "demo"))
	if snap := readSnapshot(t, c); len(snap.Items) != 1 || snap.Items[0].Cursor != 1 {
		t.Fatalf("snapshot %+v, want item 1 alone", snap.Items)
	}
	corrupt(e, topics.ViewKey("demo", 3))
	corrupt(e, "demo-without-slot")
	e.produceItems(hitItem("demo", 4))
	f := readFrame(t, c)
	if f.Type != "item" || f.Item.Cursor != 4 {
		t.Fatalf("got %q %+v, want item 4 after the corrupt records", f.Type, f.Item)
	}
}

func TestRunStopClosesLiveConnections(t *testing.T) {
	e := newEnv(t, envOptions{})
	c := e.dial("demo", validToken(t, "demo"))
	readSnapshot(t, c)
	if err := e.srv.Run(context.Background()); err == nil {
		t.Error("a second Run was accepted: the view topic would be consumed twice")
	}

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		e.stopRun()
	}()
	_, err := tryReadFrame(c, 10*time.Second)
	if websocket.CloseStatus(err) != websocket.StatusGoingAway {
		t.Fatalf("after Run stopped the client read %v, want close 1001", err)
	}
	<-stopped
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, e.liveURL(url.Values{"token": {validToken(t, "demo")}}), nil)
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("live after Run stopped: %v %v, want 503", resp, err)
	}
	if err := e.srv.WaitReady(ctx); err != nil {
		t.Errorf("WaitReady after a clean run: %v", err)
	}
}

// TestLiveWriterBatchesWhatIsQueued: what a connection's writer finds
// queued when it wakes goes out as batch frames of at most maxBatchFrames
// frames and maxBatchBytes bytes (a larger frame alone), in order; a
// lone frame goes out as itself.
func TestLiveWriterBatchesWhatIsQueued(t *testing.T) {
	bs := newBenchServer(t, 1000)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	wc, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(bs.http.URL, "http")+"/v1/live?account=demo&token="+validToken(t, "demo"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer wc.CloseNow()
	wc.SetReadLimit(64 << 20)
	c := &liveClient{Conn: wc}
	readSnapshot(t, c)
	a := bs.srv.hub.lockAccount("demo")
	sub := a.subs[0]
	a.mu.Unlock()

	var cursor uint64
	item := func(pad int) *update {
		cursor++
		it := hitItem("demo", cursor)
		if pad > 0 {
			it.GetHit().Request = &livetabv1.Request{Params: map[string]string{"pad": strings.Repeat("x", pad)}}
		}
		return mustUpdate(t, it)
	}
	// queue puts deliveries in the queue at once, as the hub would have
	// while the writer was busy.
	queue := func(ds ...delivery) {
		sub.qmu.Lock()
		sub.queue = append(sub.queue, ds...)
		sub.qmu.Unlock()
		sub.wake()
	}
	items := func(us ...*update) []delivery {
		ds := make([]delivery, len(us))
		for i, u := range us {
			ds[i] = delivery{u: u}
		}
		return ds
	}
	// message reads the next message that is not a stats frame, and
	// summarises it: "item 3", or "batch[item 4 update 1]".
	message := func() string {
		t.Helper()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil || typ != websocket.MessageText {
				t.Fatalf("read: %v %v", typ, err)
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatal(err)
			}
			switch f.Type {
			case "stats":
				continue
			case "batch":
				var parts []string
				for _, raw := range f.Frames {
					var g frame
					if err := json.Unmarshal(raw, &g); err != nil {
						t.Fatal(err)
					}
					parts = append(parts, summary(g))
				}
				return "batch[" + strings.Join(parts, " ") + "]"
			}
			return summary(f)
		}
	}
	batchOf := func(from, to uint64) string {
		var parts []string
		for c := from; c <= to; c++ {
			parts = append(parts, fmt.Sprintf("item %d", c))
		}
		return "batch[" + strings.Join(parts, " ") + "]"
	}

	queue(items(item(0))...)
	if got := message(); got != "item 1" {
		t.Errorf("a lone item: %s, want item 1", got)
	}

	first := item(0)
	upd := *first
	upd.updateFrame = wrapItem(updatePrefix, first.json())
	queue(append(items(first, item(0), item(0)), delivery{u: &upd, update: true})...)
	if got, want := message(), "batch[item 2 item 3 item 4 update 2]"; got != want {
		t.Errorf("four frames queued: %s, want %s", got, want)
	}

	var many []*update
	for range maxBatchFrames + 10 {
		many = append(many, item(0))
	}
	queue(items(many...)...)
	if got, want := message(), batchOf(5, 4+maxBatchFrames); got != want {
		t.Errorf("%d frames queued: first message %.80s…, want the first %d as a batch", len(many), got, maxBatchFrames)
	}
	if got, want := message(), batchOf(5+maxBatchFrames, 14+maxBatchFrames); got != want {
		t.Errorf("then %s, want %s", got, want)
	}

	// A frame beyond maxBatchBytes goes alone; so do frames that would
	// take a batch beyond it.
	n := 15 + maxBatchFrames
	queue(items(item(0), item(0), item(maxBatchBytes), item(maxBatchBytes/2), item(maxBatchBytes/2+100), item(0))...)
	for _, want := range []string{batchOf(uint64(n), uint64(n+1)), fmt.Sprintf("item %d", n+2),
		fmt.Sprintf("item %d", n+3), batchOf(uint64(n+4), uint64(n+5))} {
		if got := message(); got != want {
			t.Errorf("got %.80s, want %s", got, want)
		}
	}
}

// benchDial connects to a benchServer's /v1/live for account demo.
func benchDial(t *testing.T, bs *benchServer, opts *websocket.DialOptions) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(bs.http.URL, "http")+"/v1/live?account=demo&token="+validToken(t, "demo"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.CloseNow() })
	c.SetReadLimit(64 << 20)
	return c
}

// subscribers is how many subscribers the account has.
func (h *hub) subscribers(account string) int {
	a := h.lockAccount(account)
	defer a.mu.Unlock()
	return len(a.subs)
}

// TestLiveWriteTimeout: a client that stops reading is disconnected once
// a write has waited for it beyond the write timeout, even when its queue
// never fills.
func TestLiveWriteTimeout(t *testing.T) {
	bs := newBenchServer(t, 1<<20)
	bs.srv.writeTimeout = 300 * time.Millisecond
	c := benchDial(t, bs, nil)
	waitFor(t, 10*time.Second, "the subscription", func() bool { return bs.srv.hub.subscribers("demo") == 1 })
	a := bs.srv.hub.lockAccount("demo")
	sub := a.subs[0]
	a.mu.Unlock()
	big := strings.Repeat("x", 1<<20)
	var cursor uint64
	for bs.srv.hub.subscribers("demo") == 1 {
		if cursor > 1000 {
			t.Fatalf("the client that does not read is still connected after %d items of 1 MiB", cursor)
		}
		if sub.queued() > 0 {
			// The writer is busy with what was queued: wait until it took
			// it, or until it was stuck too long and the connection cut.
			waitFor(t, 10*time.Second, "the writer to take what is queued, or the connection to be cut", func() bool {
				return sub.queued() == 0 || bs.srv.hub.subscribers("demo") == 0
			})
			continue
		}
		for range 4 {
			cursor++
			it := hitItem("demo", cursor)
			it.GetHit().Request = &livetabv1.Request{Params: map[string]string{"pad": big}}
			bs.srv.hub.publish("demo", mustUpdate(t, it), true)
		}
	}
	if n := bs.srv.hub.stats.slow.Load(); n != 0 {
		t.Errorf("%d subscribers dropped as slow: the queue filled before the write timed out", n)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for {
		if _, _, err := c.Read(ctx); err != nil {
			if ctx.Err() != nil {
				t.Fatal("the connection was not closed")
			}
			break
		}
	}
}

// TestLivePing: a client that answers pings stays connected; one that
// does not is disconnected after the write timeout.
func TestLivePing(t *testing.T) {
	bs := newBenchServer(t, 256)
	bs.srv.pingInterval = 100 * time.Millisecond
	bs.srv.writeTimeout = 400 * time.Millisecond
	bs.srv.statsInterval = 50 * time.Millisecond
	var pings atomic.Int64
	answering := benchDial(t, bs, &websocket.DialOptions{OnPingReceived: func(context.Context, []byte) bool {
		pings.Add(1)
		return true
	}})
	benchDial(t, bs, nil) // never reads, so never answers a ping
	waitFor(t, 10*time.Second, "both subscriptions", func() bool { return bs.srv.hub.subscribers("demo") == 2 })

	// The answering client reads (and so answers pings) until told to stop.
	ctx, cancel := context.WithCancel(context.Background())
	readErr := make(chan error, 1)
	go func() {
		for {
			if _, _, err := answering.Read(ctx); err != nil {
				readErr <- err
				return
			}
		}
	}()
	waitFor(t, 10*time.Second, "the silent client to be disconnected", func() bool { return bs.srv.hub.subscribers("demo") == 1 })
	seen := pings.Load()
	waitFor(t, 10*time.Second, "five more pings", func() bool { return pings.Load() >= seen+5 })
	if n := bs.srv.hub.subscribers("demo"); n != 1 {
		t.Errorf("%d subscribers after five more pings, want the answering one", n)
	}
	cancel()
	if err := <-readErr; !errors.Is(err, context.Canceled) {
		t.Errorf("the answering client's reads ended with %v", err)
	}
}

// TestLiveClientFrameWithTheRequest: a client message sent right behind
// the upgrade request, before the answer (so in net/http's read buffer at
// the hijack), is read like any other.
func TestLiveClientFrameWithTheRequest(t *testing.T) {
	bs := newBenchServer(t, 256)
	bs.srv.hub.publish("demo", mustUpdate(t, hitItem("demo", 1)), true)
	bs.srv.hub.publish("demo", mustUpdate(t, eventItem("demo", 2, "app-1")), true)
	conn, err := net.Dial("tcp", strings.TrimPrefix(bs.http.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	req := "GET /v1/live?account=demo&token=" + validToken(t, "demo") + " HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n" +
		"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
	// A masked text frame (the mask is zero: the payload reads as is).
	msg := `{"type":"subscribe","filters":{"kind":["event"]}}`
	masked := append([]byte{0x81, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...)
	if _, err := conn.Write(append([]byte(req), masked...)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	// Server frames are not masked: opcode, length, payload.
	read := func() frame {
		t.Helper()
		for {
			var h [2]byte
			if _, err := io.ReadFull(br, h[:]); err != nil {
				t.Fatal(err)
			}
			n := int(h[1] & 0x7f)
			switch n {
			case 126:
				var l [2]byte
				io.ReadFull(br, l[:])
				n = int(l[0])<<8 | int(l[1])
			case 127:
				t.Fatal("unexpectedly long frame")
			}
			b := make([]byte, n)
			if _, err := io.ReadFull(br, b); err != nil {
				t.Fatal(err)
			}
			var f frame
			if err := json.Unmarshal(b, &f); err != nil {
				t.Fatalf("frame %q: %v", b, err)
			}
			if f.Type != "stats" {
				return f
			}
		}
	}
	if f := read(); f.Type != "snapshot" || len(f.Items) != 2 {
		t.Fatalf("first frame %s with %d items, want the snapshot of 2", f.Type, len(f.Items))
	}
	if f := read(); f.Type != "snapshot" || !slices.Equal(cursorsOf(f.Items), []uint64{2}) {
		t.Fatalf("then %s %v, want the snapshot of the subscription: [2]", f.Type, cursorsOf(f.Items))
	}
}
