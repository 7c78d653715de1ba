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
	defer s.streams.Done()

	c, err := websocket.Accept(w, r, &websocket.AcceptOptions{OriginPatterns: s.originPatterns})
	if err != nil {
		// Accept already answered the request (403 for a foreign Origin).
		s.log.Debug("live: websocket upgrade failed", "account", account, "error", err)
		return
	}
	defer c.CloseNow()
	err = s.stream(r.Context(), c, account, claims.Expires, sel)
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		websocket.CloseStatus(err) == websocket.StatusNormalClosure,
		websocket.CloseStatus(err) == websocket.StatusGoingAway:
		s.log.Debug("live: connection ended", "account", account, "error", err)
	default:
		s.log.Info("live: connection ended", "account", account, "error", err)
	}
}

// control is what the reading goroutine hands the writing one: an error
// to answer, a new selection, or a refreshed token.
type control struct {
	err     *clientError
	sel     *selection
	refresh bool
	expires time.Time // of the refreshed token; zero: never
}

// liveConn is one connection's writing side.
type liveConn struct {
	s      *Server
	c      *websocket.Conn
	sub    *subscriber
	expiry *time.Timer // nil while the token does not expire
	// writeTimer closes the connection when a write takes longer than
	// the write timeout. One timer reused for every write, with writes
	// under a context that never ends, keeps a write from allocating.
	writeTimer *time.Timer

	strikes int
	// showing averages the new items written; cursor is the newest
	// cursor the client is known to be up to.
	showing ewma
	cursor  uint64
	delays  [delaySamples]int64 // ms, a ring
	nDelays int
}

// stream runs one live connection until the client leaves, the hub drops
// it, its token expires, or a write fails.
func (s *Server) stream(ctx context.Context, c *websocket.Conn, account string, expires time.Time, sel selection) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	sub, v := s.hub.subscribe(account, s.queueSize, sel)
	defer s.hub.unsubscribe(sub)

	// Keep reading so that pings, pongs and the close handshake work; the
	// read loop ends when the connection closes.
	c.SetReadLimit(clientHardLimit)
	controls := make(chan control)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		s.readClient(ctx, c, account, controls)
	}()
	defer func() {
		// The reader may wait to hand over a message: cancel first.
		cancel()
		c.CloseNow()
		<-readDone
	}()

	// Writes do not take ctx (see writeTimer): its end closes the
	// connection instead, which ends a write in progress.
	stopOnCancel := context.AfterFunc(ctx, func() { c.CloseNow() })
	defer stopOnCancel()
	lc := &liveConn{s: s, c: c, sub: sub, showing: newEWMA(slowTau)}
	lc.writeTimer = time.AfterFunc(time.Hour, func() { c.CloseNow() })
	lc.writeTimer.Stop()
	defer lc.writeTimer.Stop()
	if !expires.IsZero() {
		lc.expiry = time.NewTimer(time.Until(expires))
	}
	// A refresh may replace the timer.
	defer func() {
		if lc.expiry != nil {
			lc.expiry.Stop()
		}
	}()
	if sub.stopped() {
		return lc.closeWith(sub.reason)
	}
	if err := lc.subscribed(v); err != nil {
		return err
	}

	ping := time.NewTicker(s.pingInterval)
	defer ping.Stop()
	stats := time.NewTicker(s.statsInterval)
	defer stats.Stop()
	for {
		select {
		case <-sub.done:
			return lc.closeWith(sub.reason)
		case <-ctx.Done():
			return ctx.Err()
		case <-lc.expired():
			return lc.closeWith(reasonTokenExpired)
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		case <-stats.C:
			if err := lc.write(lc.stats()); err != nil {
				return err
			}
		case ctl := <-controls:
			if err := lc.control(ctl); err != nil {
				return err
			}
		case d := <-sub.queue:
			// A dropped subscriber gets nothing more than the close frame.
			if sub.stopped() {
				return lc.closeWith(sub.reason)
			}
			if err := lc.write(d.frame()); err != nil {
				return err
			}
			if !d.update {
				lc.delivered(d.u)
			}
		}
	}
}

// expired is the token's expiry, or nil (never ready) when it has none.
func (lc *liveConn) expired() <-chan time.Time {
	if lc.expiry == nil {
		return nil
	}
	return lc.expiry.C
}

func (lc *liveConn) closeWith(r closeReason) error {
	err := lc.c.Close(r.code, r.text)
	return errors.Join(fmt.Errorf("closed: %s", r.text), err)
}

// write writes one frame within the write timeout.
func (lc *liveConn) write(frame []byte) error {
	lc.writeTimer.Reset(lc.s.writeTimeout)
	err := lc.c.Write(context.Background(), websocket.MessageText, frame)
	if !lc.writeTimer.Stop() && err != nil {
		err = fmt.Errorf("write timed out after %v: %w", lc.s.writeTimeout, err)
	}
	return err
}

// subscribed sends what a (re)subscription starts with.
func (lc *liveConn) subscribed(v subscription) error {
	lc.cursor = v.cursor
	for _, f := range v.frames() {
		if err := lc.write(f); err != nil {
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
		if err := lc.write(mustJSON(errorFrame{Type: "error", Error: ctl.err.msg, Code: ctl.err.code})); err != nil {
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
		ack := tokenFrame{Type: "token"}
		switch {
		case ctl.expires.IsZero() && lc.expiry != nil:
			lc.expiry.Stop()
			lc.expiry = nil
		case ctl.expires.IsZero():
		case lc.expiry == nil:
			lc.expiry = time.NewTimer(time.Until(ctl.expires))
		default:
			lc.expiry.Reset(time.Until(ctl.expires))
		}
		if !ctl.expires.IsZero() {
			ack.Expires = ctl.expires.UTC().Format(time.RFC3339)
		}
		return lc.write(mustJSON(ack))
	}
	return nil
}

// delivered accounts for a new item written to the client.
func (lc *liveConn) delivered(u *update) {
	now := time.Now()
	lc.showing.add(now, 1)
	lc.cursor = max(lc.cursor, u.cursor)
	if u.receivedUs != 0 {
		lc.delays[lc.nDelays%delaySamples] = max(0, now.Sub(time.UnixMicro(u.receivedUs)).Milliseconds())
		lc.nDelays++
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
	var d [delaySamples]int64
	copy(d[:], lc.delays[:n])
	slices.Sort(d[:n])
	return d[n/2]
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// readClient reads the client's messages, checks their size, rate, shape
// and content, and hands the writing side what to do, errors included.
func (s *Server) readClient(ctx context.Context, c *websocket.Conn, account string, out chan<- control) {
	limiter := rate.NewLimiter(clientRate, clientBurst)
	for {
		typ, r, err := c.Reader(ctx)
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
		select {
		case out <- ctl:
		case <-ctx.Done():
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
	b, err := json.Marshal(encodeItem(it))
	if err != nil {
		return nil, fmt.Errorf("encode item %d: %w", it.GetCursor(), err)
	}
	u := &update{
		cursor:     it.GetCursor(),
		receivedUs: it.GetReceivedUs(),
		counters:   encodeCounters(it.GetCounters()),
		attrs:      attrsOf(it),
		frame:      wrapItem(itemPrefix, b),
	}
	u.hash = sessionHash(u.attrs.session)
	// The frame, the attributes' strings and the structure itself.
	u.size = len(u.frame) + u.attrs.size() + 256
	return u, nil
}
