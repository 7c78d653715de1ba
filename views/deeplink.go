package views

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

const (
	// maxDeeplinkWait bounds the wait parameter of GET /v1/deeplink.
	maxDeeplinkWait = 10 * time.Second
	// defaultMaxWaiters bounds the waiting deep-link requests when Options
	// leave it 0.
	defaultMaxWaiters = 10_000
)

// The 404 of GET /v1/deeplink: its error is fixed, its reason says why.
const (
	errNoConversion = "no conversion for this session"
	// reasonUnknown also answers for another account's session, so that
	// nothing tells it apart from a missing one.
	reasonUnknown      = "session not found"
	reasonNotConverted = "session not converted yet"
	reasonHitSide      = "session is the web session of a conversion; ask with its app session"
)

var (
	errTooManyWaiters = errors.New("views: too many deep-link requests waiting")
	errWaitersClosed  = errors.New("views: server shutting down")
)

// handleDeeplink is GET /v1/deeplink?account=A&session=S[&wait=D]: the
// deep link, link and campaign of the hit that converted app session S,
// with the match method. With wait, a session not converted yet holds the
// request until its conversion lands in the sessions table or the wait
// ends, so that an app may ask on first open, right after sending its
// install event.
func (s *Server) handleDeeplink(w http.ResponseWriter, r *http.Request) {
	account, ok := s.authorize(w, r)
	if !ok {
		return
	}
	q := r.URL.Query()
	session := q.Get("session")
	if session == "" {
		writeError(w, http.StatusBadRequest, "missing session parameter")
		return
	}
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}

	res, err := s.lookupDeeplink(account, session)
	if err != nil || res.final() || wait == 0 {
		s.answerDeeplink(w, session, res, err)
		return
	}

	wt, err := s.waiters.add(session)
	switch {
	case errors.Is(err, errTooManyWaiters):
		w.Header().Set("Retry-After", "1")
		writeError(w, http.StatusServiceUnavailable, "too many deep-link requests waiting")
		return
	case err != nil:
		writeNotReady(w)
		return
	}
	defer s.waiters.remove(wt)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	// Registered before this read: a conversion stored after it wakes the
	// waiter, one stored before it is read here.
	for {
		res, err = s.lookupDeeplink(account, session)
		if err != nil || res.final() {
			s.answerDeeplink(w, session, res, err)
			return
		}
		select {
		case <-r.Context().Done():
			// The client went away; nobody reads an answer.
			s.log.Debug("deeplink: client left while waiting", "account", account, "session", session)
			return
		case <-deadline.C:
			res.reason = fmt.Sprintf("waited %s: %s", wait, res.reason)
			s.answerDeeplink(w, session, res, nil)
			return
		case <-wt.wake:
		}
	}
}

// deeplinkResult is what the sessions table says about a session's deep
// link: an answer, or the reason there is none.
type deeplinkResult struct {
	answer *deeplinkJSON
	reason string
}

// final reports whether waiting cannot change the result.
func (r deeplinkResult) final() bool {
	return r.answer != nil || r.reason == reasonHitSide
}

// lookupDeeplink reads session's deep link for account. The conversion is
// in the session's own value; its entries, whose older chunks are stored
// apart, are not needed.
func (s *Server) lookupDeeplink(account, session string) (deeplinkResult, error) {
	tl, err := s.sessionHeader(session)
	if err != nil {
		return deeplinkResult{}, err
	}
	return deeplinkOf(account, session, tl), nil
}

// deeplinkOf answers for tl, the timeline stored under session.
func deeplinkOf(account, session string, tl *livetabv1.Timeline) deeplinkResult {
	if tl == nil || tl.GetAccount() != account {
		return deeplinkResult{reason: reasonUnknown}
	}
	c := tl.GetConversion()
	if c == nil || (c.GetAccount() != "" && c.GetAccount() != account) {
		return deeplinkResult{reason: reasonNotConverted}
	}
	// The conversion is on both sessions' timelines; only the app asks.
	if c.GetHitSession() == session && c.GetAppSession() != session {
		return deeplinkResult{reason: reasonHitSide}
	}
	return deeplinkResult{answer: &deeplinkJSON{
		Account:     account,
		Session:     session,
		DeepLink:    c.GetDeepLink(),
		Link:        c.GetLink(),
		Campaign:    c.GetCampaign(),
		Method:      methodJSON(c.GetMethod()),
		HitSession:  c.GetHitSession(),
		ConvertedAt: timeJSON(c.GetTimeUs()),
	}}
}

func (s *Server) answerDeeplink(w http.ResponseWriter, session string, res deeplinkResult, err error) {
	switch {
	case errors.Is(err, errNotReady):
		writeNotReady(w)
	case err != nil:
		s.log.Error("deeplink: read sessions table", "session", session, "error", err)
		writeError(w, http.StatusInternalServerError, "cannot read the session")
	case res.answer != nil:
		writeJSON(w, http.StatusOK, res.answer)
	default:
		writeJSON(w, http.StatusNotFound, errorJSON{Error: errNoConversion, Reason: res.reason})
	}
}

// parseWait parses the wait parameter: a Go duration ("5s", "1500ms") or
// plain seconds ("5", "0.5"), from 0 (the default) to maxDeeplinkWait.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	var d time.Duration
	if strings.Trim(v, "0123456789.") == "" {
		secs, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("wait parameter %q: want a duration such as 5s, or seconds", v)
		}
		if secs > maxDeeplinkWait.Seconds() {
			return 0, fmt.Errorf("wait parameter %q: at most %s", v, maxDeeplinkWait)
		}
		d = time.Duration(secs * float64(time.Second))
	} else {
		var err error
		if d, err = time.ParseDuration(v); err != nil {
			return 0, fmt.Errorf("wait parameter %q: want a duration such as 5s, or seconds", v)
		}
	}
	switch {
	case d < 0:
		return 0, fmt.Errorf("wait parameter %q: negative", v)
	case d > maxDeeplinkWait:
		return 0, fmt.Errorf("wait parameter %q: at most %s", v, maxDeeplinkWait)
	}
	return d, nil
}

// waiter is one deep-link request waiting for its session to change.
type waiter struct {
	session string
	// wake holds a pending wake-up; one is enough, as the waiter reads
	// the session's newest value when it wakes.
	wake chan struct{}
}

// waiters are the deep-link requests waiting, by session. The sessions
// view's update callback wakes a session's waiters once it stored the
// session's new value; their number is bounded.
type waiters struct {
	max int
	// n mirrors the number of waiters, so that the callback skips the
	// lock when nobody waits (almost always).
	n atomic.Int64

	mu     sync.Mutex
	by     map[string]map[*waiter]struct{}
	closed bool
}

func newWaiters(max int) *waiters {
	return &waiters{max: max, by: make(map[string]map[*waiter]struct{})}
}

// add registers a waiter for session, to be removed with remove. It fails
// with errTooManyWaiters beyond the bound and errWaitersClosed after close.
func (ws *waiters) add(session string) (*waiter, error) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if ws.closed {
		return nil, errWaitersClosed
	}
	if ws.n.Load() >= int64(ws.max) {
		return nil, errTooManyWaiters
	}
	w := &waiter{session: session, wake: make(chan struct{}, 1)}
	set := ws.by[session]
	if set == nil {
		set = make(map[*waiter]struct{})
		ws.by[session] = set
	}
	set[w] = struct{}{}
	ws.n.Add(1)
	return w, nil
}

// remove unregisters w; it is safe to call more than once.
func (ws *waiters) remove(w *waiter) {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	set := ws.by[w.session]
	if _, in := set[w]; !in {
		return
	}
	delete(set, w)
	if len(set) == 0 {
		delete(ws.by, w.session)
	}
	ws.n.Add(-1)
}

// notify wakes session's waiters without blocking.
func (ws *waiters) notify(session string) {
	if ws.n.Load() == 0 {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	for w := range ws.by[session] {
		wakeUp(w)
	}
}

// close wakes every waiter, so that each finds the views closed, and
// refuses new ones.
func (ws *waiters) close() {
	ws.mu.Lock()
	defer ws.mu.Unlock()
	ws.closed = true
	for _, set := range ws.by {
		for w := range set {
			wakeUp(w)
		}
	}
}

// len is the number of waiters.
func (ws *waiters) len() int { return int(ws.n.Load()) }

func wakeUp(w *waiter) {
	select {
	case w.wake <- struct{}{}:
	default: // a wake-up is pending already
	}
}
