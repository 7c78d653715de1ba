package views

import (
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/coder/websocket"
)

// update is one version of a view item as the hub fans it out: decoded and
// encoded once, then shared read-only by every subscriber of its account.
type update struct {
	cursor   uint64
	counters countersJSON
	// json is the item's JSON (itemJSON).
	json rawJSON
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

// subscriber is one consumer of an account's updates, usually a WebSocket
// connection. The hub never blocks on it: updates go to a bounded queue,
// and a subscriber whose queue is full is dropped and told why through
// done.
type subscriber struct {
	account string
	queue   chan *update

	once   sync.Once
	done   chan struct{}
	reason closeReason // set before done is closed
}

// stop drops the subscriber with reason; only the first reason counts.
func (s *subscriber) stop(r closeReason) {
	s.once.Do(func() {
		s.reason = r
		close(s.done)
	})
}

// hubStats are counters for tests and, later, metrics.
type hubStats struct {
	published atomic.Int64 // updates handed to at least one subscriber
	slow      atomic.Int64 // subscribers dropped for a full queue
}

// hub is the fan-out core: the view topic's records come in once, and go
// out to the subscribers of their account.
type hub struct {
	log   *slog.Logger
	stats hubStats

	mu     sync.Mutex
	subs   map[string]map[*subscriber]struct{} // by account
	closed bool
}

func newHub(log *slog.Logger) *hub {
	return &hub{log: log, subs: make(map[string]map[*subscriber]struct{})}
}

// subscribe registers a subscriber to account's updates with a queue of
// size updates. After the hub closed, the subscriber comes back already
// stopped.
func (h *hub) subscribe(account string, size int) *subscriber {
	s := &subscriber{account: account, queue: make(chan *update, size), done: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		s.stop(reasonShutdown)
		return s
	}
	set := h.subs[account]
	if set == nil {
		set = make(map[*subscriber]struct{})
		h.subs[account] = set
	}
	set[s] = struct{}{}
	return s
}

// unsubscribe removes s; it is safe to call more than once.
func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.remove(s)
}

func (h *hub) remove(s *subscriber) {
	set := h.subs[s.account]
	delete(set, s)
	if len(set) == 0 {
		delete(h.subs, s.account)
	}
}

// wants reports whether account has subscribers, so that records nobody
// watches are not decoded.
func (h *hub) wants(account string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.subs[account]) > 0
}

// publish queues u for every subscriber of account without ever blocking:
// a subscriber whose queue is full is dropped and stopped as too slow.
func (h *hub) publish(account string, u *update) {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.subs[account]
	if len(set) == 0 {
		return
	}
	h.stats.published.Add(1)
	for s := range set {
		select {
		case s.queue <- u:
		default:
			h.remove(s)
			s.stop(reasonSlow)
			h.stats.slow.Add(1)
			h.log.Warn("dropping slow live subscriber", "account", account, "queue", cap(s.queue))
		}
	}
}

// close stops every subscriber and refuses new ones.
func (h *hub) close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	for _, set := range h.subs {
		for s := range set {
			s.stop(reasonShutdown)
		}
	}
	clear(h.subs)
}
