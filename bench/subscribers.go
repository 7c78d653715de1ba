package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/livetab/livetab/codecs"
)

// sub is one simulated Live Tab: a WebSocket subscription to an account.
type sub struct {
	id      int
	account int
	filter  string
	hot     bool
	// complete subscriptions receive every hit and event of the account,
	// so their deliveries are checked against what the collector
	// accepted; contiguous ones receive every item, so a cursor jump is a
	// missed item.
	complete   bool
	contiguous bool
	// primary is the first subscriber of its account: it records the
	// per-item figures that do not depend on the subscriber.
	primary bool

	// last is the highest cursor received (read by its goroutine only).
	last uint64
	// items counts the item frames of the current connection; noEmitted
	// is set when its first one had no emitted_at (a server sends it in
	// every item or in none).
	connItems int
	noEmitted bool
	// delivered counts hit and event items with a new cursor.
	delivered atomic.Int64
	connected chan struct{} // closed at the first snapshot
	once      sync.Once
}

// subStats are the subscribers' counters.
type subStats struct {
	connected   atomic.Int64 // open now
	items       atomic.Int64 // item frames with a new cursor
	hotItems    atomic.Int64 // of which to hot subscribers
	updates     atomic.Int64
	catchup     atomic.Int64 // new items that came in snapshot or resume frames
	slow        atomic.Int64 // closed by the server as too slow
	disconnects atomic.Int64 // other ends of a connection during the run
	gaps        atomic.Int64 // items skipped between two cursors
	dialErrors  atomic.Int64
	errorFrames atomic.Int64
	skipped     atomic.Int64 // skipped frames (cursor too old)
	badFrames   atomic.Int64
	statsFrames atomic.Int64
	// lag and delay are the largest the server reported in stats frames
	// since the last sample (-1: none reported).
	lag     atomic.Int64
	delayUs atomic.Int64
	// firstErr is the first dial or connection error, for the report.
	firstErr atomic.Pointer[string]
}

// subscribers runs every subscription.
type subscribers struct {
	wsBase   string
	accounts []string
	tokens   []string
	rec      *recorder
	join     *joiner // nil without a tap
	tap      bool    // a tap records the processor stage
	log      *slog.Logger
	st       subStats
	list     []*sub
	wg       sync.WaitGroup
	client   *http.Client
	// stopping is set when the run ends, so that the ends of connections
	// are not counted as disconnects.
	stopping atomic.Bool
}

func newSubscribers(o *Options, httpBase string, accounts []string, secret []byte, rec *recorder, join *joiner, tap bool, log *slog.Logger) (*subscribers, error) {
	s := &subscribers{
		wsBase:   "ws" + strings.TrimPrefix(httpBase, "http"),
		accounts: accounts,
		rec:      rec,
		join:     join,
		tap:      tap,
		log:      log,
		client:   &http.Client{Timeout: 30 * time.Second},
	}
	s.st.lag.Store(-1)
	s.st.delayUs.Store(-1)
	for _, a := range accounts {
		tok, err := codecs.SignToken(secret, codecs.Claims{Account: a, Expires: time.Now().Add(24 * time.Hour)})
		if err != nil {
			return nil, fmt.Errorf("bench: sign token: %w", err)
		}
		s.tokens = append(s.tokens, tok)
	}
	add := func(acct int, filter string, hot bool) {
		s.list = append(s.list, &sub{
			id: len(s.list), account: acct, filter: filter, hot: hot,
			complete: complete(filter), contiguous: contiguous(filter),
			connected: make(chan struct{}),
		})
	}
	for i := range accounts {
		for range o.SubsPerAccount {
			add(i, o.SubFilter, false)
		}
	}
	for range o.HotSubs {
		add(0, o.HotFilter, true)
	}
	seen := map[int]bool{}
	for _, sb := range s.list {
		if !seen[sb.account] {
			seen[sb.account] = true
			sb.primary = true
		}
	}
	return s, nil
}

// contiguous reports whether filter receives every item (all kinds).
func contiguous(filter string) bool {
	if !complete(filter) {
		return false
	}
	q, _ := url.ParseQuery(filter)
	return strings.Contains(strings.Join(q["kind"], ","), "conversion")
}

// start connects every subscriber, at most parallel dials at once, and
// keeps each connected (reconnecting from its last cursor) until ctx ends.
// It returns once every subscriber received its first snapshot, or when
// wait ends.
func (s *subscribers) start(ctx context.Context, parallel int, wait time.Duration) error {
	sem := make(chan struct{}, parallel)
	for _, sb := range s.list {
		s.wg.Go(func() { s.run(ctx, sb, sem) })
	}
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	for _, sb := range s.list {
		select {
		case <-sb.connected:
		case <-deadline.C:
			return fmt.Errorf("bench: %d of %d subscribers connected within %s (first error: %s)", s.st.connected.Load(), len(s.list), wait, s.firstErr())
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (s *subscribers) firstErr() string {
	if p := s.st.firstErr.Load(); p != nil {
		return *p
	}
	return "none"
}

func (s *subscribers) noteErr(err error) {
	msg := err.Error()
	s.st.firstErr.CompareAndSwap(nil, &msg)
}

// wait waits for every subscriber's goroutine after ctx ended.
func (s *subscribers) wait() { s.wg.Wait() }

func (s *subscribers) run(ctx context.Context, sb *sub, sem chan struct{}) {
	backoff := 100 * time.Millisecond
	for first := true; ctx.Err() == nil; {
		if first {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
		}
		conn, err := s.dial(ctx, sb)
		if first {
			<-sem
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			s.st.dialErrors.Add(1)
			s.noteErr(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		first, backoff = false, 100*time.Millisecond
		sb.connItems, sb.noEmitted = 0, false
		s.st.connected.Add(1)
		err = s.read(ctx, conn, sb)
		s.st.connected.Add(-1)
		conn.CloseNow()
		if ctx.Err() != nil || s.stopping.Load() {
			return
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.StatusPolicyViolation && strings.Contains(ce.Reason, "slow") {
			s.st.slow.Add(1)
		} else {
			s.st.disconnects.Add(1)
			s.noteErr(err)
		}
	}
}

// dial opens sb's WebSocket; after a disconnect it asks to resume from
// the last cursor received.
func (s *subscribers) dial(ctx context.Context, sb *sub) (*websocket.Conn, error) {
	q := "account=" + url.QueryEscape(s.accounts[sb.account])
	if sb.filter != "" {
		q += "&" + sb.filter
	}
	if sb.last > 0 {
		q += "&cursor=" + strconv.FormatUint(sb.last, 10)
	}
	dctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	conn, resp, err := websocket.Dial(dctx, s.wsBase+"/v1/live?"+q, &websocket.DialOptions{
		HTTPClient: s.client,
		HTTPHeader: http.Header{"Authorization": {"Bearer " + s.tokens[sb.account]}},
	})
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("dial %s: %d: %w", s.accounts[sb.account], resp.StatusCode, err)
		}
		return nil, fmt.Errorf("dial %s: %w", s.accounts[sb.account], err)
	}
	// Snapshots and resumes carry up to 100 or more items.
	conn.SetReadLimit(64 << 20)
	return conn, nil
}

func (s *subscribers) read(ctx context.Context, c *websocket.Conn, sb *sub) error {
	// A read with a cancellable context costs a timer registration per
	// frame; closing the connection when ctx ends stops the reads instead.
	stop := context.AfterFunc(ctx, func() { c.CloseNow() })
	defer stop()
	var buf bytes.Buffer
	for {
		_, r, err := c.Reader(context.Background())
		if err != nil {
			return err
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			return err
		}
		s.handle(sb, buf.Bytes(), time.Now().UnixMicro())
	}
}

// handle accounts for one frame received at nowUs.
func (s *subscribers) handle(sb *sub, b []byte, nowUs int64) {
	switch frameType(b) {
	case frameItem:
		it, ok := scanItem(b, !sb.noEmitted)
		if !ok {
			s.st.badFrames.Add(1)
			return
		}
		if sb.connItems == 0 && it.emittedUs == 0 {
			sb.noEmitted = true
		}
		sb.connItems++
		if it.cursor <= sb.last {
			return
		}
		if sb.contiguous && sb.last != 0 && it.cursor > sb.last+1 {
			s.st.gaps.Add(int64(it.cursor - sb.last - 1))
		}
		sb.last = it.cursor
		s.st.items.Add(1)
		if sb.hot {
			s.st.hotItems.Add(1)
		}
		s.recordItem(sb, it, nowUs)
	case frameUpdate:
		s.st.updates.Add(1)
	case frameBatch:
		if !batchFrames(b, func(f []byte) { s.handle(sb, f, nowUs) }) {
			s.st.badFrames.Add(1)
		}
	case frameSnapshot, frameResume:
		var f listFrame
		if err := json.Unmarshal(b, &f); err != nil {
			s.st.badFrames.Add(1)
			return
		}
		for _, it := range f.Items {
			if it.Cursor <= sb.last {
				continue
			}
			sb.last = it.Cursor
			s.st.catchup.Add(1)
			if it.Kind == "hit" || it.Kind == "event" {
				sb.delivered.Add(1)
			}
		}
		sb.once.Do(func() { close(sb.connected) })
	case frameSkipped:
		s.st.skipped.Add(1)
	case frameStats:
		var f statsFrame
		if err := json.Unmarshal(b, &f); err != nil {
			s.st.badFrames.Add(1)
			return
		}
		s.st.statsFrames.Add(1)
		storeMax(&s.st.lag, f.Lag)
		storeMax(&s.st.delayUs, int64(f.DelayMs*1000))
	case frameError:
		s.st.errorFrames.Add(1)
		s.log.Warn("server sent an error frame", "frame", string(b))
	default:
		s.st.badFrames.Add(1)
	}
}

// recordItem records an item's latencies: accept → subscriber for every
// delivery, and the stages when the emit time is known.
func (s *subscribers) recordItem(sb *sub, it itemInfo, nowUs int64) {
	e2e := nowUs - it.receivedUs
	var kind metric
	switch string(it.kind) {
	case "hit":
		kind = mHit
	case "event":
		kind = mEvent
	case "conversion":
		s.rec.record(sb.id, mConversion, e2e)
		return
	default:
		return
	}
	sb.delivered.Add(1)
	if sb.hot {
		s.rec.recordAll(sb.id, e2e, mE2E, kind, mHot)
	} else {
		s.rec.recordAll(sb.id, e2e, mE2E, kind)
	}
	switch {
	case it.emittedUs > 0:
		s.rec.record(sb.id, mViews, nowUs-it.emittedUs)
		if sb.primary && !s.tap {
			s.rec.record(sb.id, mProcessor, it.emittedUs-it.receivedUs)
		}
	case s.join != nil:
		s.join.socket(it.account, it.cursor, nowUs)
	}
}

func storeMax(a *atomic.Int64, v int64) {
	for {
		old := a.Load()
		if v <= old || a.CompareAndSwap(old, v) {
			return
		}
	}
}

// undelivered is how many accepted hits and events the complete
// subscribers are still missing (accepted, per account, from the
// generator's counts); ok is false when no subscriber can be checked.
func (s *subscribers) undelivered(accepted []atomic.Int64) (n int64, ok bool) {
	for _, sb := range s.list {
		if !sb.complete {
			continue
		}
		ok = true
		if d := accepted[sb.account].Load() - sb.delivered.Load(); d > 0 {
			n += d
		}
	}
	return n, ok
}
