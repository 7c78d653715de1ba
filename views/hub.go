package views

import (
	"cmp"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/livetab/livetab/topics"
)

// snapshotSize is how many items a snapshot holds at most.
const snapshotSize = topics.ViewSlots

// minTrimStep is the least the histories grow by between two trims that
// could not get under their bound.
const minTrimStep = 64 << 10

// update is one version of a view item as the hub fans it out: decoded and
// encoded once, then shared read-only by every subscriber of its account.
type update struct {
	cursor     uint64
	receivedUs int64
	counters   countersJSON
	attrs      itemAttrs
	hash       uint32 // sessionHash(attrs.session)
	// frame is {"type":"item","item":…}; the item's JSON is inside it.
	frame []byte
	// size is roughly the memory the update holds.
	size int

	// Set by the hub, under its account's lock, before the update is
	// shared.
	kept bool // in the account's sample
	// updateFrame is {"type":"update","item":…}, for a new version of an
	// item (nil for a new item).
	updateFrame []byte
}

// json is the item's JSON.
func (u *update) json() rawJSON { return rawJSON(u.frame[len(itemPrefix) : len(u.frame)-1]) }

// delivery is one frame queued for a subscriber: u's item frame, or its
// update frame.
type delivery struct {
	u      *update
	update bool
}

func (d delivery) frame() []byte {
	if d.update {
		return d.u.updateFrame
	}
	return d.u.frame
}

// closeReason is why the hub let go of a subscriber.
type closeReason struct {
	code websocket.StatusCode
	text string
}

var (
	reasonSlow     = closeReason{websocket.StatusPolicyViolation, "too slow: outgoing queue full"}
	reasonShutdown = closeReason{websocket.StatusGoingAway, "server shutting down"}
)

// seenWindow is how many of an account's newest cursors a subscriber
// remembers having been sent; the liveview processor re-emits only items
// among the newest 100.
const seenWindow = 1024

// seenSet is which of the cursors in (hi-seenWindow, hi] a subscriber was
// sent; hi is the account's newest cursor the hub considered for it.
type seenSet struct {
	hi   uint64
	bits [seenWindow / 64]uint64
}

func (s *seenSet) reset(hi uint64) {
	s.hi = hi
	clear(s.bits[:])
}

// advance moves hi to c, forgetting what the window leaves.
func (s *seenSet) advance(c uint64) {
	if c <= s.hi {
		return
	}
	if c-s.hi >= seenWindow {
		clear(s.bits[:])
	} else {
		for x := s.hi + 1; x <= c; x++ {
			s.bits[x%seenWindow/64] &^= 1 << (x % 64)
		}
	}
	s.hi = c
}

func (s *seenSet) inWindow(c uint64) bool { return c <= s.hi && s.hi-c < seenWindow }

func (s *seenSet) set(c uint64) {
	if s.inWindow(c) {
		s.bits[c%seenWindow/64] |= 1 << (c % 64)
	}
}

func (s *seenSet) has(c uint64) bool {
	return s.inWindow(c) && s.bits[c%seenWindow/64]&(1<<(c%64)) != 0
}

// subscriber is one consumer of an account's updates, usually a WebSocket
// connection. The hub never blocks on it: deliveries go to a bounded
// queue, a subscriber whose queue is full is stopped with a reason, and
// the consumer is woken through kick for either.
type subscriber struct {
	acct *account
	size int // bound of the queue
	// kick holds a token when something was queued (or the subscriber
	// stopped) since the consumer last took it: the consumer waits on it,
	// then takes what is queued.
	kick chan struct{}

	// qmu guards queue, which grows as needed up to size: an idle
	// subscriber holds little.
	qmu   sync.Mutex
	queue []delivery

	once      sync.Once
	reason    closeReason // set before isStopped
	isStopped atomic.Bool

	// Guarded by acct.mu.
	filter filter
	seen   seenSet
}

func newSubscriber(size int) *subscriber {
	return &subscriber{size: size, kick: make(chan struct{}, 1)}
}

// wake hands the consumer a token, unless it has one already.
func (s *subscriber) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// push queues d and wakes the consumer if the queue was empty (it takes
// everything queued when woken); false when the queue is full.
func (s *subscriber) push(d delivery) bool {
	s.qmu.Lock()
	n := len(s.queue)
	if n >= s.size {
		s.qmu.Unlock()
		return false
	}
	s.queue = append(s.queue, d)
	s.qmu.Unlock()
	if n == 0 {
		s.wake()
	}
	return true
}

// take moves the oldest queued deliveries, at most maxFrames of them and
// (but for the first) at most maxBytes of frames together, to into[:0].
func (s *subscriber) take(into []delivery, maxFrames, maxBytes int) []delivery {
	into = into[:0]
	s.qmu.Lock()
	defer s.qmu.Unlock()
	n, size := 0, 0
	for ; n < len(s.queue) && n < maxFrames; n++ {
		size += len(s.queue[n].frame())
		if n > 0 && size > maxBytes {
			break
		}
	}
	into = append(into, s.queue[:n]...)
	left := copy(s.queue, s.queue[n:])
	clear(s.queue[left:])
	s.queue = s.queue[:left]
	return into
}

// queued is how many deliveries wait in the queue.
func (s *subscriber) queued() int {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue)
}

// dropQueued forgets what is queued.
func (s *subscriber) dropQueued() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	clear(s.queue)
	s.queue = s.queue[:0]
}

// stop drops the subscriber with reason; only the first reason counts.
func (s *subscriber) stop(r closeReason) {
	s.once.Do(func() {
		s.reason = r
		s.isStopped.Store(true)
		s.wake()
	})
}

// stopped reports whether the subscriber was stopped; its reason is set
// once it is.
func (s *subscriber) stopped() bool { return s.isStopped.Load() }

// wants reports whether the subscriber is to be shown u: with filters,
// whether they match; without, whether u is in the account's sample.
func (s *subscriber) wants(u *update, p *pairs) bool {
	if s.filter.empty() {
		return u.kept
	}
	return s.filter.match(&u.attrs, p)
}

// deliver decides what s gets of u: nothing, an item frame, or an update
// frame for an item it was sent.
func (s *subscriber) deliver(u *update, isNew bool, p *pairs) (delivery, bool) {
	if isNew {
		s.seen.advance(u.cursor)
	} else if s.seen.has(u.cursor) {
		return delivery{u: u, update: true}, true
	}
	// A new version of an item the client was not sent, which matches now
	// (say, an install whose conversion paired it with the filtered
	// session), is an item to the client.
	if !s.wants(u, p) {
		return delivery{}, false
	}
	s.seen.set(u.cursor)
	return delivery{u: u}, true
}

// account is the hub's state of one account: its history, pairings,
// arriving rate and subscribers.
type account struct {
	name   string
	active atomic.Int64 // Unix nanoseconds of the newest record, for trimming

	mu       sync.Mutex
	dead     bool // removed from the hub: look it up again
	hist     ring
	pairs    pairs
	arrivals arrivals
	thr      uint64 // sampling threshold as of the newest item
	newest   uint64 // newest cursor
	counters countersJSON
	subs     []*subscriber
}

// keep is u's sampling decision: its session, a conversion's hit
// session, the session a marked event converted with, or a session
// paired with its session is in the sample.
func (a *account) keep(u *update) bool {
	thr := a.thr
	if thr >= fullSample {
		return true
	}
	at := &u.attrs
	return uint64(u.hash) < thr ||
		(at.hitSession != "" && kept(at.hitSession, thr)) ||
		(at.convertedWith != "" && kept(at.convertedWith, thr)) ||
		a.pairs.anyKept(at.session, thr)
}

// hubOptions are the hub's bounds.
type hubOptions struct {
	// historySize bounds each account's history (at least ViewSlots).
	historySize int
	// historyBytes bounds the histories' total size; beyond it the least
	// recently active accounts are trimmed to their newest ViewSlots
	// items.
	historyBytes int64
	// sampleRate is the items per second an unfiltered client is shown
	// on average.
	sampleRate float64
	now        func() time.Time
}

// hubStats are counters for tests and, later, metrics.
type hubStats struct {
	published atomic.Int64 // updates handed to at least one subscriber
	slow      atomic.Int64 // subscribers dropped for a full queue
}

// hub is the fan-out core: the view topic's records come in once, are
// kept in their account's history, and go out to the account's
// subscribers that are to be shown them.
type hub struct {
	log   *slog.Logger
	opts  hubOptions
	stats hubStats

	bytes    atomic.Int64 // histories' total size
	nextTrim atomic.Int64 // size above which to trim again
	trimming sync.Mutex
	closed   atomic.Bool

	mu       sync.RWMutex
	accounts map[string]*account
}

func newHub(log *slog.Logger, opts hubOptions) *hub {
	if opts.now == nil {
		opts.now = time.Now
	}
	opts.historySize = max(opts.historySize, topics.ViewSlots)
	h := &hub{log: log, opts: opts, accounts: make(map[string]*account)}
	h.nextTrim.Store(opts.historyBytes)
	return h
}

// lockAccount returns name's account, locked, creating it if needed.
func (h *hub) lockAccount(name string) *account {
	for {
		h.mu.RLock()
		a := h.accounts[name]
		h.mu.RUnlock()
		if a == nil {
			h.mu.Lock()
			if a = h.accounts[name]; a == nil {
				a = &account{
					name:     name,
					hist:     ring{max: h.opts.historySize},
					pairs:    pairs{max: h.opts.historySize},
					arrivals: newArrivals(),
					thr:      fullSample,
				}
				h.accounts[name] = a
			}
			h.mu.Unlock()
		}
		a.mu.Lock()
		if !a.dead {
			return a
		}
		a.mu.Unlock()
	}
}

// publish adds u, a record of account name, to the account's history and
// queues it for every subscriber that is to be shown it, without ever
// blocking: a subscriber whose queue is full is dropped as too slow. live
// is false while the view recovers: recovered records do not count as
// arriving.
func (h *hub) publish(name string, u *update, live bool) {
	now := h.opts.now()
	a := h.lockAccount(name)
	isNew := u.cursor > a.newest
	if isNew {
		if live {
			a.arrivals.add(now)
		}
		a.thr = threshold(h.opts.sampleRate, a.arrivals.rate(now, h.opts.sampleRate))
	} else {
		u.updateFrame = wrapItem(updatePrefix, u.json())
		u.size += len(u.updateFrame)
	}
	if u.attrs.kind == kindConversion {
		a.pairs.add(u.attrs.hitSession, u.attrs.appSession)
	}
	a.pairs.add(u.attrs.convertedWith, u.attrs.session)
	u.kept = a.keep(u)
	h.bytes.Add(int64(a.hist.put(u)))
	if isNew {
		a.newest, a.counters = u.cursor, u.counters
	}
	a.active.Store(now.UnixNano())

	if len(a.subs) > 0 {
		h.stats.published.Add(1)
	}
	for i := 0; i < len(a.subs); {
		s := a.subs[i]
		d, ok := s.deliver(u, isNew, &a.pairs)
		if ok && !s.push(d) {
			s.stop(reasonSlow)
			a.subs = slices.Delete(a.subs, i, i+1)
			h.stats.slow.Add(1)
			h.log.Warn("dropping slow live subscriber", "account", name, "queue", s.size)
			continue
		}
		i++
	}
	a.mu.Unlock()

	if h.bytes.Load() > h.nextTrim.Load() {
		h.trim()
	}
}

// trim brings the histories back under their total bound by trimming the
// least recently active accounts to their newest ViewSlots items. Those
// are never trimmed: they are what the view topic keeps of every account
// after compaction. When they alone exceed the bound, trim says so and
// waits for another tenth of the bound before trying again.
func (h *hub) trim() {
	if !h.trimming.TryLock() {
		return
	}
	defer h.trimming.Unlock()
	h.mu.RLock()
	accts := slices.Collect(maps.Values(h.accounts))
	h.mu.RUnlock()
	slices.SortFunc(accts, func(a, b *account) int { return cmp.Compare(a.active.Load(), b.active.Load()) })
	target := h.opts.historyBytes / 10 * 9
	for _, a := range accts {
		if h.bytes.Load() <= target {
			break
		}
		a.mu.Lock()
		h.bytes.Add(-int64(a.hist.trim(topics.ViewSlots)))
		a.mu.Unlock()
	}
	left := h.bytes.Load()
	if left > h.opts.historyBytes {
		h.log.Warn("live history above its bound with every account trimmed to its newest items",
			"bytes", left, "bound", h.opts.historyBytes, "accounts", len(accts))
	}
	h.nextTrim.Store(max(h.opts.historyBytes, left+max(h.opts.historyBytes/10, minTrimStep)))
}

// subscription is what a subscriber is sent when it (re)subscribes,
// gathered under its account's lock and encoded after.
type subscription struct {
	account  string
	skipped  *skippedFrame
	resume   bool
	items    []*update
	counters countersJSON
	echo     filtersJSON
	sampled  bool
	cursor   uint64
}

// frames encodes what the subscription sends: a resume frame, a snapshot
// frame, or a skipped frame and a snapshot frame.
func (v *subscription) frames() [][]byte {
	items := make([]rawJSON, len(v.items))
	for i, u := range v.items {
		items[i] = u.json()
	}
	if v.resume {
		return [][]byte{mustJSON(resumeFrame{Type: "resume", Account: v.account, Items: items, Counters: v.counters,
			Filters: v.echo, Sampled: v.sampled, Cursor: v.cursor})}
	}
	var out [][]byte
	if v.skipped != nil {
		out = append(out, mustJSON(v.skipped))
	}
	return append(out, mustJSON(snapshotFrame{Type: "snapshot", Account: v.account, Items: items, Counters: v.counters,
		Filters: v.echo, Sampled: v.sampled, Cursor: v.cursor}))
}

// selectLocked points s at sel and gathers what it is sent: every item
// after sel's cursor that it is to be shown when the history holds them
// all, else the newest such items (a snapshot). a.mu is held.
func (a *account) selectLocked(s *subscriber, sel selection, sampleRate float64, now time.Time) subscription {
	s.filter = sel.filter
	s.seen.reset(a.newest)
	v := subscription{
		account:  a.name,
		counters: a.counters,
		echo:     sel.echo,
		sampled:  sel.filter.empty() && threshold(sampleRate, a.arrivals.rate(now, sampleRate)) < fullSample,
		cursor:   a.newest,
	}
	if sel.resume {
		rest, whole := a.hist.after(sel.cursor)
		switch {
		case sel.cursor > a.newest:
			v.skipped = &skippedFrame{Type: "skipped", After: sel.cursor, Oldest: a.hist.oldest(), Reason: reasonAhead}
		case !whole:
			v.skipped = &skippedFrame{Type: "skipped", After: sel.cursor, Oldest: a.hist.oldest(), Reason: reasonTooOld}
		default:
			v.resume = true
			for _, u := range rest {
				if s.wants(u, &a.pairs) {
					v.items = append(v.items, u)
					s.seen.set(u.cursor)
				}
			}
			// The client has what it was to be shown up to its cursor:
			// new versions of those are updates to it.
			held := a.hist.items[:len(a.hist.items)-len(rest)]
			for i := len(held) - 1; i >= 0 && s.seen.inWindow(held[i].cursor); i-- {
				if s.wants(held[i], &a.pairs) {
					s.seen.set(held[i].cursor)
				}
			}
			return v
		}
	}
	for i := a.hist.len() - 1; i >= 0 && len(v.items) < snapshotSize; i-- {
		if u := a.hist.items[i]; s.wants(u, &a.pairs) {
			v.items = append(v.items, u)
			s.seen.set(u.cursor)
		}
	}
	slices.Reverse(v.items)
	return v
}

// subscribe registers a subscriber to account's items with a queue of
// size frames, and returns it with what it is sent first. After the hub
// closed, the subscriber comes back already stopped.
func (h *hub) subscribe(account string, size int, sel selection) (*subscriber, subscription) {
	s := newSubscriber(size)
	a := h.lockAccount(account)
	s.acct = a
	if h.closed.Load() {
		a.mu.Unlock()
		s.stop(reasonShutdown)
		return s, subscription{account: account}
	}
	v := a.selectLocked(s, sel, h.opts.sampleRate, h.opts.now())
	a.subs = append(a.subs, s)
	a.mu.Unlock()
	return s, v
}

// resubscribe points s at sel and returns what it is sent; what was
// queued for its former selection is dropped. It returns false when s
// was stopped.
func (h *hub) resubscribe(s *subscriber, sel selection) (subscription, bool) {
	a := s.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	if s.stopped() {
		return subscription{}, false
	}
	// Nothing is queued while the lock is held.
	s.dropQueued()
	return a.selectLocked(s, sel, h.opts.sampleRate, h.opts.now()), true
}

// unsubscribe removes s; it is safe to call more than once. An account
// left with no subscriber and no history is forgotten.
func (h *hub) unsubscribe(s *subscriber) {
	a := s.acct
	a.mu.Lock()
	if i := slices.Index(a.subs, s); i >= 0 {
		a.subs = slices.Delete(a.subs, i, i+1)
	}
	empty := len(a.subs) == 0 && a.hist.len() == 0
	a.mu.Unlock()
	if !empty {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.subs) == 0 && a.hist.len() == 0 && h.accounts[a.name] == a {
		delete(h.accounts, a.name)
		a.dead = true
	}
}

// subStatus is what a stats frame says of a subscriber's account.
type subStatus struct {
	arriving float64
	sampled  bool
	counters countersJSON
	// hi is the newest cursor considered for the subscriber; idle says
	// that nothing is queued for it.
	hi   uint64
	idle bool
}

func (h *hub) status(s *subscriber) subStatus {
	now := h.opts.now()
	a := s.acct
	a.mu.Lock()
	defer a.mu.Unlock()
	rate := a.arrivals.rate(now, h.opts.sampleRate)
	return subStatus{
		arriving: rate,
		sampled:  s.filter.empty() && threshold(h.opts.sampleRate, rate) < fullSample,
		counters: a.counters,
		hi:       s.seen.hi,
		idle:     s.queued() == 0,
	}
}

// close stops every subscriber and refuses new ones.
func (h *hub) close() {
	h.closed.Store(true)
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, a := range h.accounts {
		a.mu.Lock()
		for _, s := range a.subs {
			s.stop(reasonShutdown)
		}
		a.subs = nil
		a.mu.Unlock()
	}
}
