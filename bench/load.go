package bench

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/livetab/livetab/codecs"
)

// opKind indexes per-request-kind counters.
type opKind int

const (
	opHit opKind = iota
	opEvents
	numOps
)

func (k opKind) String() string { return [...]string{"hit", "events"}[k] }

// loadStats are the generator's cumulative counters.
type loadStats struct {
	// Offered counts what the schedule asked for; skipped what was not
	// sent because every worker was busy (open loop) or the session's
	// earlier request failed; sent what was sent; ok what the collector
	// accepted (302 hits, accepted events).
	hitsOffered, hitsSkipped, hitsSent, hitsOK         atomic.Int64
	eventsOffered, eventsSkipped, eventsSent, eventsOK atomic.Int64
	eventsRejected                                     atomic.Int64
	convertingInstalls                                 atomic.Int64
	sessionsAbandoned                                  atomic.Int64
	clicksDropped                                      atomic.Int64
	bytesSent                                          atomic.Int64
	status                                             [numOps][600]atomic.Int64
	transport                                          [numOps]atomic.Int64
	firstErr                                           atomic.Pointer[string]
}

// counters is a copy of loadStats' totals at one moment.
type counters struct {
	At                                                 time.Time
	HitsOffered, HitsSkipped, HitsSent, HitsOK         int64
	EventsOffered, EventsSkipped, EventsSent, EventsOK int64
	Errors                                             int64
}

func (s *loadStats) snapshot() counters {
	c := counters{
		At:          time.Now(),
		HitsOffered: s.hitsOffered.Load(), HitsSkipped: s.hitsSkipped.Load(), HitsSent: s.hitsSent.Load(), HitsOK: s.hitsOK.Load(),
		EventsOffered: s.eventsOffered.Load(), EventsSkipped: s.eventsSkipped.Load(), EventsSent: s.eventsSent.Load(), EventsOK: s.eventsOK.Load(),
	}
	for k := range numOps {
		c.Errors += s.transport[k].Load()
		for code := range s.status[k] {
			if code >= 400 {
				c.Errors += s.status[k][code].Load()
			}
		}
	}
	return c
}

// errorsByStatus are the failed requests by kind and status ("503",
// "transport"), for the result.
func (s *loadStats) errorsByStatus() map[string]map[string]int64 {
	out := map[string]map[string]int64{}
	for k := range numOps {
		m := map[string]int64{}
		if n := s.transport[k].Load(); n > 0 {
			m["transport"] = n
		}
		for code := range s.status[k] {
			if n := s.status[k][code].Load(); n > 0 && (code < 200 || code >= 400) {
				m[strconv.Itoa(code)] = n
			}
		}
		if len(m) > 0 {
			out[k.String()] = m
		}
	}
	return out
}

// visitor is a simulated person: the same address, browser and device
// for their click and, if they install, for their app's requests.
type visitor struct {
	ip       string
	ua       string
	platform string
	device   string // hashed advertising id, or ""
}

// userAgents are common mobile and desktop browsers, with the platform an
// SDK on that device reports.
var userAgents = [...]struct{ ua, platform string }{
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1", "ios"},
	{"Mozilla/5.0 (iPhone; CPU iPhone OS 16_6_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1", "ios"},
	{"Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36", "android"},
	{"Mozilla/5.0 (Linux; Android 13; SM-S911B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/123.0.0.0 Mobile Safari/537.36", "android"},
	{"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36", "web"},
}

func newVisitor(rng *rand.Rand) visitor {
	a := userAgents[rng.IntN(len(userAgents))]
	v := visitor{
		ip:       fmt.Sprintf("10.%d.%d.%d", rng.IntN(256), rng.IntN(256), 1+rng.IntN(254)),
		ua:       a.ua,
		platform: a.platform,
	}
	if v.platform != "web" && rng.IntN(10) < 3 {
		var b [12]byte
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		v.device = "d-" + hex.EncodeToString(b[:])
	}
	return v
}

// click is a hit whose visitor will install the app.
type click struct {
	account int
	id      string
	v       visitor
}

// appSession is one install and its in-app events.
type appSession struct {
	account int
	id      string
	v       visitor
	clickID string
	events  int
}

// op is one unit of scheduled work: a hit, or an app session's requests.
type op struct {
	due  time.Time
	hit  bool
	acct int
	sess *appSession
}

// inAppEvents are the names of the events after the install.
var inAppEvents = [...]string{"open", "view_item", "add_to_cart", "purchase", "level_up", "share", "search", "tutorial_complete"}

// load generates the traffic.
type load struct {
	o        *Options
	base     string
	client   *http.Client
	accounts []string
	rec      *recorder
	st       loadStats
	// accepted counts, per account, the hits and events the collector
	// accepted, to check the subscribers got every one.
	accepted []atomic.Int64
	clicks   chan click
	runID    string
	seq      atomic.Int64
	pad      string
	// pHit is the share of hits among the operations (hits and app
	// sessions) that keeps the hit and event rates' ratio.
	pHit float64
}

func newLoad(o *Options, base string, accounts []string, rec *recorder) *load {
	tr := &http.Transport{
		MaxIdleConns:        o.Concurrency * 2,
		MaxIdleConnsPerHost: o.Concurrency * 2,
		MaxConnsPerHost:     o.Concurrency * 2,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	var id [4]byte
	for i := range id {
		id[i] = byte(rand.Uint32())
	}
	sessionsPerS := o.EventRate / float64(o.SessionEvents)
	return &load{
		o:    o,
		base: base,
		client: &http.Client{
			Transport:     tr,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
		accounts: accounts,
		rec:      rec,
		accepted: make([]atomic.Int64, len(accounts)),
		clicks:   make(chan click, 10000),
		runID:    hex.EncodeToString(id[:]),
		pad:      strings.Repeat("x", o.ParamBytes),
		pHit:     o.HitRate / (o.HitRate + sessionsPerS),
	}
}

// accountNames are the benchmark's accounts; the first is the hot one.
func accountNames(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("acct-%04d", i)
	}
	return out
}

// setup registers one link for every account (an account is known to the
// collector while it has a link), a few at a time.
func (l *load) setup(ctx context.Context, secret []byte) error {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr error
	for _, acct := range l.accounts {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := l.putLink(ctx, secret, acct); err != nil {
				mu.Lock()
				if firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return firstErr
}

func (l *load) putLink(ctx context.Context, secret []byte, acct string) error {
	tok, err := codecs.SignToken(secret, codecs.Claims{Account: acct, Admin: true, Expires: time.Now().Add(24 * time.Hour)})
	if err != nil {
		return fmt.Errorf("bench: sign token: %w", err)
	}
	body, _ := json.Marshal(map[string]any{
		"destination": "https://example.com/landing",
		"ios":         "https://apps.example.com/app/id123",
		"android":     "https://play.google.com/store/apps/details?id=com.example.app",
		"deep_link":   "benchapp://promo/42",
		"campaign":    "spring",
	})
	var last string
	for attempt := 0; attempt < 20; attempt++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, l.base+"/v1/links/"+acct+"/go", bytes.NewReader(body))
		if err != nil {
			return fmt.Errorf("bench: link request: %w", err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := l.client.Do(req)
		if err != nil {
			last = err.Error()
		} else {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, bytes.TrimSpace(b))
			if resp.StatusCode != http.StatusServiceUnavailable {
				break
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
	return fmt.Errorf("bench: register link of %s: %s", acct, last)
}

// pickAccount chooses the account of a hit or an organic app session.
func (l *load) pickAccount(rng *rand.Rand) int {
	n := len(l.accounts)
	switch {
	case n == 1:
		return 0
	case l.o.HotShare > 0:
		if rng.Float64() < l.o.HotShare {
			return 0
		}
		return 1 + rng.IntN(n-1)
	}
	return rng.IntN(n)
}

// newSession starts an app session: the install of a visitor who clicked,
// when one is waiting, else an organic one.
func (l *load) newSession(rng *rand.Rand) *appSession {
	s := &appSession{id: l.runID + "-s" + strconv.FormatInt(l.seq.Add(1), 36), events: l.o.SessionEvents}
	select {
	case c := <-l.clicks:
		s.account, s.v, s.clickID = c.account, c.v, c.id
	default:
		s.account, s.v = l.pickAccount(rng), newVisitor(rng)
		for s.v.platform == "web" {
			s.v = newVisitor(rng)
		}
	}
	return s
}

// run sends the load until ctx ends: open loop at the configured rates,
// or closed loop as fast as it goes.
func (l *load) run(ctx context.Context) {
	var wg sync.WaitGroup
	if l.o.Max {
		for i := range l.o.Concurrency {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))
				for ctx.Err() == nil {
					o := op{due: time.Now()}
					if rng.Float64() < l.pHit {
						o.hit, o.acct = true, l.pickAccount(rng)
						l.st.hitsOffered.Add(1)
					} else {
						o.sess = l.newSession(rng)
						l.st.eventsOffered.Add(int64(o.sess.events))
					}
					l.do(ctx, o, rng, i)
				}
			})
		}
		wg.Wait()
		return
	}
	work := make(chan op, l.o.Concurrency)
	for i := range l.o.Concurrency {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(rand.Uint64(), uint64(i)))
			for {
				select {
				case <-ctx.Done():
					return
				case o := <-work:
					l.do(ctx, o, rng, i)
				}
			}
		})
	}
	l.pace(ctx, work)
	wg.Wait()
}

// pace schedules operations at the configured rates, every millisecond.
// An operation finding every worker busy is counted as skipped: offered
// load the system (or the generator) did not take.
func (l *load) pace(ctx context.Context, work chan<- op) {
	rng := rand.New(rand.NewPCG(rand.Uint64(), 1<<40))
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	last := time.Now()
	var hitCredit, eventCredit float64
	perSession := float64(l.o.SessionEvents)
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-tick.C:
			dt := now.Sub(last).Seconds()
			last = now
			hitCredit += l.o.HitRate * dt
			eventCredit += l.o.EventRate * dt
			for hitCredit >= 1 {
				hitCredit--
				l.st.hitsOffered.Add(1)
				select {
				case work <- op{due: now, hit: true, acct: l.pickAccount(rng)}:
				default:
					l.st.hitsSkipped.Add(1)
				}
			}
			for eventCredit >= perSession {
				eventCredit -= perSession
				l.st.eventsOffered.Add(int64(l.o.SessionEvents))
				select {
				case work <- op{due: now, sess: l.newSession(rng)}:
				default:
					l.st.eventsSkipped.Add(int64(l.o.SessionEvents))
				}
			}
		}
	}
}

func (l *load) do(ctx context.Context, o op, rng *rand.Rand, worker int) {
	l.rec.record(worker, mSchedule, time.Since(o.due).Microseconds())
	if o.hit {
		l.hit(ctx, o.acct, rng, worker)
		return
	}
	l.session(ctx, o.sess, worker)
}

// hit clicks the account's link as a browser would, without following the
// redirect, and keeps the click id for an install when the visitor is one
// who installs.
func (l *load) hit(ctx context.Context, acct int, rng *rand.Rand, worker int) {
	v := newVisitor(rng)
	var b strings.Builder
	b.WriteString(l.base)
	b.WriteString("/l/")
	b.WriteString(l.accounts[acct])
	b.WriteString("/go?utm_source=bench&utm_medium=cpc&utm_campaign=spring&pad=")
	b.WriteString(l.pad)
	if v.device != "" {
		b.WriteString("&device_id=")
		b.WriteString(v.device)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.String(), nil)
	if err != nil {
		l.fail(opHit, err)
		return
	}
	req.Header.Set("User-Agent", v.ua)
	req.Header.Set("X-Forwarded-For", v.ip)
	req.Header.Set("Accept-Language", "en-US,en;q=0.9")
	l.st.hitsSent.Add(1)
	begin := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(opHit, err)
		}
		return
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	l.st.status[opHit][min(resp.StatusCode, 599)].Add(1)
	if resp.StatusCode != http.StatusFound {
		return
	}
	l.rec.record(worker, mAckHit, time.Since(begin).Microseconds())
	l.st.hitsOK.Add(1)
	l.accepted[acct].Add(1)
	if rng.Float64() >= l.o.InstallRatio {
		return
	}
	id := clickIDOf(resp.Header.Get("Location"))
	if id == "" {
		return
	}
	select {
	case l.clicks <- click{account: acct, id: id, v: v}:
	default:
		l.st.clicksDropped.Add(1)
	}
}

// clickIDOf reads the click id from a redirect: a click_id parameter, or
// inside Google Play's referrer parameter.
func clickIDOf(location string) string {
	u, err := url.Parse(location)
	if err != nil {
		return ""
	}
	q := u.Query()
	if id := q.Get("click_id"); id != "" {
		return id
	}
	if ref, err := url.ParseQuery(q.Get("referrer")); err == nil {
		return ref.Get("click_id")
	}
	return ""
}

// session sends an app session's events as an SDK does: the install at
// once in its own request, then the in-app events in batches.
func (l *load) session(ctx context.Context, s *appSession, worker int) {
	if s.clickID != "" {
		l.st.convertingInstalls.Add(1)
	}
	var buf []byte
	for i := 0; i < s.events; {
		n := 1
		if i > 0 {
			n = min(l.o.Batch, s.events-i)
		}
		buf = l.appendBatch(buf[:0], s, i, n)
		ok := l.postEvents(ctx, s, buf, n, worker)
		i += n
		if !ok {
			// An SDK would retry later; the generator moves on and
			// counts what it did not send as skipped.
			if rest := s.events - i; rest > 0 {
				l.st.eventsSkipped.Add(int64(rest))
				l.st.sessionsAbandoned.Add(1)
			}
			return
		}
	}
}

func (l *load) postEvents(ctx context.Context, s *appSession, body []byte, n, worker int) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.base+"/v1/events", bytes.NewReader(body))
	if err != nil {
		l.fail(opEvents, err)
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", s.v.ua)
	req.Header.Set("X-Forwarded-For", s.v.ip)
	l.st.eventsSent.Add(int64(n))
	l.st.bytesSent.Add(int64(len(body)))
	begin := time.Now()
	resp, err := l.client.Do(req)
	if err != nil {
		if ctx.Err() == nil {
			l.fail(opEvents, err)
		}
		return false
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	l.st.status[opEvents][min(resp.StatusCode, 599)].Add(1)
	if resp.StatusCode != http.StatusOK {
		return false
	}
	l.rec.record(worker, mAckEvents, time.Since(begin).Microseconds())
	ok := int64(bytes.Count(answer, []byte(`"status":"accepted"`)))
	l.st.eventsOK.Add(ok)
	l.st.eventsRejected.Add(int64(n) - ok)
	l.accepted[s.account].Add(ok)
	return true
}

// appendBatch appends a JSON array of n events of s from index i.
func (l *load) appendBatch(b []byte, s *appSession, i, n int) []byte {
	b = append(b, '[')
	for j := i; j < i+n; j++ {
		if j > i {
			b = append(b, ',')
		}
		b = l.appendEvent(b, s, j)
	}
	return append(b, ']')
}

// appendEvent appends event i of s. Every string written is made of
// characters JSON needs no escape for.
func (l *load) appendEvent(b []byte, s *appSession, i int) []byte {
	name := "install"
	if i > 0 {
		name = inAppEvents[(i-1)%len(inAppEvents)]
	}
	b = append(b, `{"id":"`...)
	b = append(b, s.id...)
	b = append(b, '-')
	b = strconv.AppendInt(b, int64(i), 10)
	b = append(b, `","account":"`...)
	b = append(b, l.accounts[s.account]...)
	b = append(b, `","session":"`...)
	b = append(b, s.id...)
	b = append(b, `","name":"`...)
	b = append(b, name...)
	b = append(b, `","platform":"`...)
	b = append(b, s.v.platform...)
	b = append(b, `","app_version":"2.3.0"`...)
	if s.v.device != "" {
		b = append(b, `,"device_ids":["`...)
		b = append(b, s.v.device...)
		b = append(b, `"]`...)
	}
	if i == 0 && s.clickID != "" {
		b = append(b, `,"click_id":"`...)
		b = append(b, s.clickID...)
		b = append(b, '"')
	}
	b = append(b, `,"params":{"screen":"home","pad":"`...)
	b = append(b, l.pad...)
	return append(b, `"}}`...)
}

func (l *load) fail(k opKind, err error) {
	l.st.transport[k].Add(1)
	msg := err.Error()
	l.st.firstErr.CompareAndSwap(nil, &msg)
}
