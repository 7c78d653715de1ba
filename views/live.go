package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// Bounds of what a client may send.
const (
	// clientMessageLimit bounds a client message; a larger one is answered
	// with a too_large error and dropped.
	clientMessageLimit = 4 << 10
	// clientHardLimit bounds what is read of one: beyond it the connection
	// is closed (1009, message too big) rather than read on.
	clientHardLimit = 64 << 10
	// clientRate and clientBurst rate-limit client messages.
	clientRate  = 10
	clientBurst = 20
	// maxStrikes is how many error frames a connection gets before it is
	// closed.
	maxStrikes = 50
	// delaySamples is how many deliveries the stats' delay is the median
	// of.
	delaySamples = 64
)

// Bounds of a batch frame: what a connection's writer finds queued when
// it is woken, up to these, goes out as one WebSocket message (one write
// and one syscall) instead of one per item.
const (
	maxBatchFrames = 64
	maxBatchBytes  = 64 << 10
)

var (
	reasonTokenExpired = closeReason{websocket.StatusPolicyViolation, "token expired"}
	reasonAbuse        = closeReason{websocket.StatusPolicyViolation, "too many bad messages"}
)

// handleLive is GET /v1/live?account=A[&token=T][&cursor=N][&filters…]: a
// WebSocket that sends the account's snapshot (or, with a cursor, every
// item after it), then its new items and new versions of items the client
// has, filtered or sampled, and stats every second; the client may change
// its filters and refresh its token on the way. Authentication, bad
// parameters and readiness are answered with plain HTTP errors before any
// upgrade; the Origin is checked by the upgrade.
//
// The handler returns once the connection is upgraded: the connection
// lives on in its own two goroutines (see liveConn), and what net/http
// held for the request — its goroutine and stack, buffers, headers — is
// freed.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	claims, account, ok := s.authorizeClaims(w, r)
	if !ok {
		return
	}
	sel, err := selectionFromQuery(r.URL.Query())
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if !s.beginStream() {
		writeNotReady(w)
		return
	}
	hj := &liveHijacker{ResponseWriter: w}
	c, err := websocket.Accept(hj, r, &websocket.AcceptOptions{
		OriginPatterns: s.originPatterns,
		// Items are small and mostly distinct; compressing them would
		// cost more CPU than the bytes saved, and a compressor's memory
		// per connection.
		CompressionMode: websocket.CompressionDisabled,
	})
	if err != nil {
		// Accept already answered the request (403 for a foreign Origin).
		s.streams.Done()
		s.log.Debug("live: websocket upgrade failed", "account", account, "error", err)
		return
	}
	s.startLive(c, hj.out, account, claims.Expires, sel)
}

// control is what the reading goroutine hands the writing one: an error
// to answer, a new selection, or a refreshed token.
type control struct {
	err     *clientError
	sel     *selection
	refresh bool
	expires time.Time // of the refreshed token; zero: never
}

// Signals to a connection's writer, besides what its subscriber queues.
const (
	sigStats      uint32 = 1 << iota // a stats frame is due
	sigExpired                       // the token may have expired
	sigReaderDone                    // the reading side ended
)

// errClientGone ends a connection's writer when its reading side ended:
// the client left or the connection broke.
var errClientGone = errors.New("connection closed by the client or broken")

// liveConn is one live connection. Two goroutines run it: the reader
// (client messages, and coder/websocket's pings, pongs and close
// handshake) and the writer, which sleeps on its subscriber's kick and,
// woken, writes what is due: client answers, queued items (several at once
// as one batch frame), a stats frame. One timer, ticking every stats
// interval at most, asks for stats, sends pings and checks that no write
// has been stuck beyond the write timeout; another closes the connection
// when the token expires. Whichever goroutine ends last cleans up.
type liveConn struct {
	s       *Server
	c       *websocket.Conn
	out     *corkWriter // nil when the connection was not hijacked by liveHijacker
	sub     *subscriber
	account string

	// controls hands the writer one client message at a time: the reader
	// waits while one is pending.
	controls chan control
	done     chan struct{} // closed when the writer ended
	signals  atomic.Uint32
	// alive counts the goroutines that use the connection (reader,
	// writer, a tick or ping in progress); the last one cleans up.
	alive atomic.Int32
	// writing is when the write in progress began (Server.mono), 0 when
	// none is; timedOut says that the tick closed the connection for it.
	writing  atomic.Int64
	timedOut atomic.Bool
	pinging  atomic.Bool

	// The tick's own state.
	tick                         *time.Timer
	tickEvery                    time.Duration
	ticks, statsEvery, pingEvery int
	expiry                       *time.Timer // nil while the token does not expire

	// The writer's state.
	expires time.Time // zero: never
	err     error     // why the writer ended
	batch   []delivery
	strikes int
	// showing averages the new items written; cursor is the newest
	// cursor the client is known to be up to.
	showing ewma
	cursor  uint64
	delays  [delaySamples]int32 // ms, a ring
	nDelays int
}

// startLive runs a live connection, upgraded, until the client leaves,
// the hub drops it, its token expires, or a write fails.
func (s *Server) startLive(c *websocket.Conn, out *corkWriter, account string, expires time.Time, sel selection) {
	sub, v := s.hub.subscribe(account, s.queueSize, sel)
	lc := &liveConn{
		s: s, c: c, out: out, sub: sub, account: account,
		controls: make(chan control, 1),
		done:     make(chan struct{}),
		showing:  newEWMA(slowTau),
		expires:  expires,
	}
	lc.tickEvery = min(s.statsInterval, s.writeTimeout/4)
	lc.statsEvery = max(1, int((s.statsInterval+lc.tickEvery/2)/lc.tickEvery))
	lc.pingEvery = max(1, int((s.pingInterval+lc.tickEvery/2)/lc.tickEvery))
	lc.alive.Store(2)
	c.SetReadLimit(clientHardLimit)
	// The timers are set once their fields are: their functions use them.
	lc.tick = time.AfterFunc(time.Hour, lc.onTick)
	lc.tick.Stop()
	lc.tick.Reset(lc.tickEvery)
	if !expires.IsZero() {
		lc.expiry = time.AfterFunc(time.Until(expires), func() { lc.signal(sigExpired) })
	}
	go lc.read()
	go lc.write(&v)
}

// enter registers one more goroutine using the connection; false once
// it was cleaned up.
func (lc *liveConn) enter() bool {
	for {
		n := lc.alive.Load()
		if n == 0 {
			return false
		}
		if lc.alive.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// exit ends a goroutine's use of the connection; the last one cleans up.
func (lc *liveConn) exit() {
	if lc.alive.Add(-1) != 0 {
		return
	}
	lc.tick.Stop()
	if lc.expiry != nil {
		lc.expiry.Stop()
	}
	lc.s.hub.unsubscribe(lc.sub)
	lc.c.CloseNow()
	err := lc.err
	switch {
	case err == nil, errors.Is(err, errClientGone),
		websocket.CloseStatus(err) == websocket.StatusNormalClosure,
		websocket.CloseStatus(err) == websocket.StatusGoingAway:
		lc.s.log.Debug("live: connection ended", "account", lc.account, "error", err)
	default:
		lc.s.log.Info("live: connection ended", "account", lc.account, "error", err)
	}
	lc.s.streams.Done()
}

// signal raises sig for the writer and wakes it.
func (lc *liveConn) signal(sig uint32) {
	lc.signals.Or(sig)
	lc.sub.wake()
}

// read is the reading goroutine.
func (lc *liveConn) read() {
	defer lc.exit()
	lc.s.readClient(lc.c, lc.account, func(ctl control) bool {
		select {
		case lc.controls <- ctl:
			lc.sub.wake()
			return true
		case <-lc.done:
			return false
		}
	})
	lc.signal(sigReaderDone)
	// A write in progress ends too.
	lc.c.CloseNow()
}

// write is the writing goroutine: it sends v, then sleeps until it is
// woken and writes what is due. (Its stack, like the reader's, stays at
// the runtime's 4 KiB: a goroutine started per wake-up would save that
// much per idle connection, but cost a start and a stack growth per wake-up
// on busy ones.)
func (lc *liveConn) write(v *subscription) {
	defer lc.exit()
	defer close(lc.done)
	err := lc.start(v)
	for err == nil {
		<-lc.sub.kick
		err = lc.flush()
	}
	lc.err = err
	// The reader ends too.
	lc.c.CloseNow()
}

// start sends what the subscription starts with.
func (lc *liveConn) start(v *subscription) error {
	if lc.sub.stopped() {
		return lc.closeWith(lc.sub.reason)
	}
	return lc.subscribed(*v)
}

// flush writes what is due until nothing is.
func (lc *liveConn) flush() error {
	for {
		// A dropped subscriber gets nothing more than the close frame.
		if lc.sub.stopped() {
			return lc.closeWith(lc.sub.reason)
		}
		sig := lc.signals.Swap(0)
		if sig&sigReaderDone != 0 {
			return errClientGone
		}
		if sig&sigExpired != 0 && !lc.expires.IsZero() {
			left := time.Until(lc.expires)
			if left <= 0 {
				return lc.closeWith(reasonTokenExpired)
			}
			// Refreshed meanwhile, or the wall clock moved: wait for what
			// is left.
			lc.expiry.Reset(left)
		}
		busy := sig != 0
		select {
		case ctl := <-lc.controls:
			busy = true
			if err := lc.control(ctl); err != nil {
				return err
			}
		default:
		}
		lc.batch = lc.sub.take(lc.batch, maxBatchFrames, maxBatchBytes)
		if len(lc.batch) > 0 {
			busy = true
			err := lc.writeBatch(lc.batch)
			clear(lc.batch)
			if err != nil {
				return err
			}
		}
		// After the items: a stats frame's cursor says that everything
		// before it was sent.
		if sig&sigStats != 0 {
			if err := lc.writeFrame(lc.stats()); err != nil {
				return err
			}
		}
		if !busy {
			return nil
		}
	}
}

// onTick runs every tickEvery: it closes a connection whose write is stuck
// beyond the write timeout, asks for stats, and sends pings.
func (lc *liveConn) onTick() {
	if !lc.enter() {
		return
	}
	defer lc.exit()
	if since := lc.writing.Load(); since != 0 && lc.s.mono()-since > int64(lc.s.writeTimeout) {
		lc.timedOut.Store(true)
		// The write fails, and the writer ends.
		lc.c.CloseNow()
		return
	}
	lc.ticks++
	if lc.ticks%lc.statsEvery == 0 {
		lc.signal(sigStats)
	}
	if lc.ticks%lc.pingEvery == 0 && !lc.pinging.Load() && lc.enter() {
		lc.pinging.Store(true)
		go lc.ping()
	}
	lc.tick.Reset(lc.tickEvery)
}

// ping checks that the client answers; one that does not within the
// write timeout is disconnected.
func (lc *liveConn) ping() {
	defer lc.exit()
	defer lc.pinging.Store(false)
	ctx, cancel := context.WithTimeout(context.Background(), lc.s.writeTimeout)
	defer cancel()
	if err := lc.c.Ping(ctx); err != nil {
		lc.c.CloseNow()
	}
}

func (lc *liveConn) closeWith(r closeReason) error {
	err := lc.c.Close(r.code, r.text)
	return errors.Join(fmt.Errorf("closed: %s", r.text), err)
}

// writeFrame writes one message; the tick closes the connection when it
// takes longer than the write timeout.
func (lc *liveConn) writeFrame(msg []byte) error {
	lc.writing.Store(lc.s.mono())
	var err error
	if lc.out != nil {
		lc.out.cork(msg)
		err = lc.c.Write(context.Background(), websocket.MessageText, msg)
		err = errors.Join(err, lc.out.uncork())
	} else {
		err = lc.c.Write(context.Background(), websocket.MessageText, msg)
	}
	lc.writing.Store(0)
	if err != nil && lc.timedOut.Load() {
		err = fmt.Errorf("write timed out after %v: %w", lc.s.writeTimeout, err)
	}
	return err
}

// Batch frames: {"type":"batch","frames":[f1,f2,…]}, the frames as they
// would have been sent one by one.
const (
	batchPrefix = `{"type":"batch","frames":[`
	batchSuffix = `]}`
)

// writeBatch writes the deliveries, one alone as its own frame, several
// as a batch frame.
func (lc *liveConn) writeBatch(batch []delivery) error {
	var err error
	if len(batch) == 1 {
		err = lc.writeFrame(batch[0].frame())
	} else {
		bp := lc.s.batchBuffer()
		b := append((*bp)[:0], batchPrefix...)
		for i, d := range batch {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, d.frame()...)
		}
		b = append(b, batchSuffix...)
		err = lc.writeFrame(b)
		lc.s.putBatchBuffer(bp, b)
	}
	if err == nil {
		lc.delivered(batch)
	}
	return err
}

// subscribed sends what a (re)subscription starts with.
func (lc *liveConn) subscribed(v subscription) error {
	lc.cursor = v.cursor
	for _, f := range v.frames() {
		if err := lc.writeFrame(f); err != nil {
			return err
		}
	}
	return nil
}

// control acts on a client message.
func (lc *liveConn) control(ctl control) error {
	switch {
	case ctl.err != nil:
		lc.strikes++
		if err := lc.writeFrame(mustJSON(errorFrame{Type: "error", Error: ctl.err.msg, Code: ctl.err.code})); err != nil {
			return err
		}
		if lc.strikes >= maxStrikes {
			return lc.closeWith(reasonAbuse)
		}
	case ctl.sel != nil:
		v, ok := lc.s.hub.resubscribe(lc.sub, *ctl.sel)
		if !ok {
			return lc.closeWith(lc.sub.reason)
		}
		return lc.subscribed(v)
	case ctl.refresh:
		lc.expires = ctl.expires
		switch {
		case ctl.expires.IsZero() && lc.expiry != nil:
			lc.expiry.Stop()
			lc.expiry = nil
		case ctl.expires.IsZero():
		case lc.expiry == nil:
			lc.expiry = time.AfterFunc(time.Until(ctl.expires), func() { lc.signal(sigExpired) })
		default:
			lc.expiry.Reset(time.Until(ctl.expires))
		}
		ack := tokenFrame{Type: "token"}
		if !ctl.expires.IsZero() {
			ack.Expires = ctl.expires.UTC().Format(time.RFC3339)
		}
		return lc.writeFrame(mustJSON(ack))
	}
	return nil
}

// delivered accounts for the deliveries written to the client.
func (lc *liveConn) delivered(batch []delivery) {
	now := time.Now()
	nowUs := now.UnixMicro()
	n := 0
	for _, d := range batch {
		if d.update {
			continue
		}
		n++
		lc.cursor = max(lc.cursor, d.u.cursor)
		if d.u.receivedUs != 0 {
			lc.delays[lc.nDelays%delaySamples] = int32(min(max(0, nowUs-d.u.receivedUs)/1000, math.MaxInt32))
			lc.nDelays++
		}
	}
	if n > 0 {
		lc.showing.add(now, float64(n))
	}
}

// stats is the connection's stats frame.
func (lc *liveConn) stats() []byte {
	st := lc.s.hub.status(lc.sub)
	cursor := lc.cursor
	if st.idle {
		// Everything considered for the client was written.
		cursor = max(cursor, st.hi)
	}
	return mustJSON(statsFrame{
		Type:         "stats",
		ArrivingPerS: round1(st.arriving),
		ShowingPerS:  round1(lc.showing.rate(time.Now())),
		Sampled:      st.sampled,
		DelayMS:      lc.medianDelay(),
		Lag:          lc.s.lag.get(),
		Counters:     st.counters,
		Cursor:       cursor,
	})
}

func (lc *liveConn) medianDelay() int64 {
	n := min(lc.nDelays, delaySamples)
	if n == 0 {
		return 0
	}
	var d [delaySamples]int32
	copy(d[:], lc.delays[:n])
	slices.Sort(d[:n])
	return int64(d[n/2])
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// readClient reads the client's messages, checks their size, rate, shape
// and content, and hands the writing side what to do, errors included,
// until reading fails or hand refuses. Reads take no context: closing the
// connection ends them.
func (s *Server) readClient(c *websocket.Conn, account string, hand func(control) bool) {
	limiter := rate.NewLimiter(clientRate, clientBurst)
	for {
		typ, r, err := c.Reader(context.Background())
		if err != nil {
			return
		}
		b, err := io.ReadAll(io.LimitReader(r, clientMessageLimit+1))
		if err != nil {
			return
		}
		tooLarge := len(b) > clientMessageLimit
		if tooLarge {
			// Read the rest (up to the hard limit) to get to the next
			// message.
			if _, err := io.Copy(io.Discard, r); err != nil {
				return
			}
		}
		var ctl control
		switch {
		case !limiter.Allow():
			ctl.err = newClientError(codeRateLimited, "more than %d messages per second: message dropped", clientRate)
		case tooLarge:
			ctl.err = newClientError(codeTooLarge, "message larger than %d bytes", clientMessageLimit)
		default:
			ctl = s.parseClient(account, typ, b)
		}
		if !hand(ctl) {
			return
		}
	}
}

// parseClient reads one client message.
func (s *Server) parseClient(account string, typ websocket.MessageType, b []byte) control {
	bad := func(code, format string, args ...any) control {
		return control{err: newClientError(code, format, args...)}
	}
	if typ != websocket.MessageText {
		return bad(codeBadMessage, "binary messages are not accepted: send JSON text")
	}
	var m clientMessage
	if err := json.Unmarshal(b, &m); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "cursor" {
			return bad(codeBadMessage, "cursor must be a non-negative integer")
		}
		return bad(codeBadMessage, "message is not a JSON object with a type: %v", err)
	}
	switch m.Type {
	case "subscribe":
		fj, err := filtersFromJSON(m.Filters)
		if err != nil {
			return bad(codeBadFilter, "%v", err)
		}
		f, echo, err := compile(fj)
		if err != nil {
			return bad(codeBadFilter, "%v", err)
		}
		sel := selection{filter: f, echo: echo}
		if m.Cursor != nil {
			sel.resume, sel.cursor = true, *m.Cursor
		}
		return control{sel: &sel}
	case "token":
		claims, err := codecs.ParseToken(s.secret, m.Token)
		if err != nil {
			return bad(codeForbidden, "token refused: %v", err)
		}
		if claims.Account != account {
			return bad(codeForbidden, "token does not grant access to account %q", account)
		}
		return control{refresh: true, expires: claims.Expires}
	case "":
		return bad(codeBadMessage, "message without a type")
	default:
		return bad(codeBadMessage, "unknown message type %.40q (want subscribe or token)", m.Type)
	}
}

// newUpdate checks and encodes one view item of account.
func newUpdate(it *livetabv1.ViewItem, account string) (*update, error) {
	if it.GetAccount() != account {
		return nil, fmt.Errorf("item of account %q stored under account %q", it.GetAccount(), account)
	}
	if it.GetCursor() == 0 {
		return nil, errors.New("item without cursor")
	}
	u := &update{
		cursor:     it.GetCursor(),
		receivedUs: it.GetReceivedUs(),
		counters:   encodeCounters(it.GetCounters()),
		attrs:      attrsOf(it),
		frame:      itemFrame(it),
	}
	u.hash = sessionHash(u.attrs.session)
	// The frame, the attributes' strings and the structure itself.
	u.size = len(u.frame) + u.attrs.size() + 256
	return u, nil
}

// itemFrame is the item frame of it, {"type":"item","item":…}. The item is
// encoded straight after the prefix into a scratch buffer on the stack
// (most items fit), then copied once into a frame of exactly its length:
// the frame is kept in the history, whose bound counts len(frame).
func itemFrame(it *livetabv1.ViewItem) []byte {
	var scratch [2048]byte
	b := append(scratch[:0], itemPrefix...)
	b = append(appendItemJSON(b, it), '}')
	frame := make([]byte, len(b))
	copy(frame, b)
	return frame
}
