package collector

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// errNotReady is returned by linkStore reads while the view is recovering or
// after it stopped.
var errNotReady = errors.New("links are not loaded yet")

// linkStore is the collector's read side of topics.Links: a goka view kept
// in memory, plus the highest offset it applied per partition so that a
// writer can wait until its own write is visible (read-your-writes).
type linkStore struct {
	log      *slog.Logger
	view     *goka.View
	applied  *appliedOffsets
	accounts *accountIndex

	// mu guards the view against reads while it shuts down: goka drops its
	// partitions when Run ends, so reads must stop first.
	mu      sync.RWMutex
	stopped bool
	// everLoaded is set once the view first recovered. After that goka
	// briefly reports partitions as reconnecting while it looks up offsets,
	// but their data stays readable, so reads keep being served.
	everLoaded atomic.Bool

	// beforeApply, when set before the view runs, is called before each
	// record is applied; tests hold the view back with it.
	beforeApply func()

	clientsMu sync.Mutex
	clients   []io.Closer
	closeOnce sync.Once
	closeErr  error
}

func newLinkStore(k topics.Kafka, log *slog.Logger) (*linkStore, error) {
	s := &linkStore{log: log, applied: newAppliedOffsets(), accounts: newAccountIndex()}
	codec := &cachedLinkCodec{cache: newStringCache[*livetabv1.Link](linkCacheSize)}
	view, err := goka.NewView(k.Brokers, topics.Links, codec, viewOptions(k, s.update, s.track)...)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("links view: %w", err), s.closeClients())
	}
	s.view = view
	return s, nil
}

func (s *linkStore) track(c io.Closer) {
	s.clientsMu.Lock()
	defer s.clientsMu.Unlock()
	s.clients = append(s.clients, c)
}

// closeClients closes the sarama clients the view created. goka closes one
// topic manager itself, so an already closed client is not an error.
func (s *linkStore) closeClients() error {
	s.closeOnce.Do(func() {
		s.clientsMu.Lock()
		defer s.clientsMu.Unlock()
		var errs []error
		for _, c := range s.clients {
			if err := c.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
				errs = append(errs, err)
			}
		}
		s.closeErr = errors.Join(errs...)
	})
	return s.closeErr
}

// update is the view's callback: it stores the record like goka's default,
// except that a value which is not a Link is logged and dropped rather than
// poisoning reads, keeps the index of accounts up to date, and then records
// the offset as applied.
func (s *linkStore) update(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	if s.beforeApply != nil {
		s.beforeApply()
	}
	if value != nil {
		if _, err := codecs.Typed[livetabv1.Link](value); err != nil {
			s.log.Warn("skipping undecodable link record", "key", key, "partition", ctx.Partition(), "offset", ctx.Offset(), "err", err)
			value = nil
		}
	}
	had, err := st.Has(key)
	if err != nil {
		return err
	}
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	s.accounts.apply(key, had, value != nil)
	s.applied.mark(ctx.Partition(), ctx.Offset())
	return nil
}

// run runs the view until ctx ends. The view gets its own context so that
// reads are shut out before goka tears the partitions down.
func (s *linkStore) run(ctx context.Context) error {
	vctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- s.view.Run(vctx) }()
	var err error
	select {
	case <-ctx.Done():
		s.stop()
		cancel()
		err = <-done
	case err = <-done:
		s.stop()
	}
	s.applied.stop()
	err = errors.Join(err, s.closeClients())
	if err != nil {
		return fmt.Errorf("collector: links view: %w", err)
	}
	return nil
}

func (s *linkStore) stop() {
	s.mu.Lock()
	s.stopped = true
	s.mu.Unlock()
}

// ready reports whether every partition of the view has recovered. Once
// it has, the store counts as loaded (see loaded): a partition that goes
// back to catching up for a moment later (goka restarts a partition's
// consumer after an error) must not turn the requests that WaitReady let
// in into 503s.
func (s *linkStore) ready() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ok := !s.stopped && s.view.Recovered()
	if ok {
		s.everLoaded.Store(true)
	}
	return ok
}

// loaded reports whether the view has recovered at least once.
func (s *linkStore) loaded() bool {
	if s.everLoaded.Load() {
		return true
	}
	if s.view.Recovered() {
		s.everLoaded.Store(true)
		return true
	}
	return false
}

// cachedLinkCodec is the links view's codec. goka decodes a value on every
// read, and a link is read on every click: the links decoded last are kept
// by their encoding, so that a link read again is not decoded again. The
// view hands out the same *Link to every reader of a link, which must not
// change it.
type cachedLinkCodec struct {
	cache *stringCache[*livetabv1.Link]
}

// linkCacheSize is the entries of one generation of the decoded links
// cache (see stringCache): the links being clicked, at most some MB.
const linkCacheSize = 512

func (c *cachedLinkCodec) Encode(value any) ([]byte, error) { return linkCodec{}.Encode(value) }

func (c *cachedLinkCodec) Decode(data []byte) (any, error) {
	if l, ok := c.cache.getBytes(data); ok {
		return l, nil
	}
	v, err := linkCodec{}.Decode(data)
	if err != nil {
		return nil, err
	}
	if l, ok := v.(*livetabv1.Link); ok {
		c.cache.put(string(data), l)
	}
	return v, nil
}

// get returns the link under key, or nil if there is none. The link is
// shared: do not change it.
func (s *linkStore) get(key string) (*livetabv1.Link, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped || !s.loaded() {
		return nil, errNotReady
	}
	v, err := s.view.Get(key)
	if err != nil {
		return nil, fmt.Errorf("read link %q: %w", key, err)
	}
	if v == nil {
		return nil, nil
	}
	return v.(*livetabv1.Link), nil
}

// hasAccount reports whether account has at least one link: only then are
// its events taken.
func (s *linkStore) hasAccount(account string) (bool, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped || !s.loaded() {
		return false, errNotReady
	}
	return s.accounts.has(account), nil
}

// list returns the account's links ordered by slug. They are shared: do
// not change them.
func (s *linkStore) list(account string) ([]*livetabv1.Link, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.stopped || !s.loaded() {
		return nil, errNotReady
	}
	prefix := topics.LinkKey(account, "")
	it, err := s.view.IteratorWithRange(prefix, "")
	if err != nil {
		return nil, fmt.Errorf("list links of %q: %w", account, err)
	}
	defer it.Release()
	var links []*livetabv1.Link
	for it.Next() {
		// The range's upper bound is inclusive; the prefix is what counts.
		if !strings.HasPrefix(it.Key(), prefix) {
			continue
		}
		v, err := it.Value()
		if err != nil {
			return nil, fmt.Errorf("list links of %q: %w", account, err)
		}
		if l, ok := v.(*livetabv1.Link); ok && l != nil {
			links = append(links, l)
		}
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("list links of %q: %w", account, err)
	}
	sort.Slice(links, func(i, j int) bool { return links[i].GetSlug() < links[j].GetSlug() })
	return links, nil
}

// waitApplied blocks until the view applied offset of partition, or ctx
// ends.
func (s *linkStore) waitApplied(ctx context.Context, partition int32, offset int64) error {
	return s.applied.wait(ctx, partition, offset)
}

// accountIndex counts the links of each account, so that an event's
// account is checked without iterating the view, which goka's memory
// storage does by scanning every key.
type accountIndex struct {
	mu    sync.Mutex
	links map[string]int
}

func newAccountIndex() *accountIndex { return &accountIndex{links: map[string]int{}} }

// apply counts a record of key: had says whether the view held the key
// before, has whether it holds it now.
func (a *accountIndex) apply(key string, had, has bool) {
	if had == has {
		return // a replaced link, or the tombstone of a missing one
	}
	account, _, _ := strings.Cut(key, topics.KeySeparator)
	a.mu.Lock()
	defer a.mu.Unlock()
	if has {
		a.links[account]++
		return
	}
	if a.links[account]--; a.links[account] <= 0 {
		delete(a.links, account)
	}
}

func (a *accountIndex) has(account string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.links[account] > 0
}

// appliedOffsets tracks the highest offset applied per partition and wakes
// waiters on every change.
type appliedOffsets struct {
	mu      sync.Mutex
	offsets map[int32]int64
	changed chan struct{} // closed and replaced on every change
	stopped bool
}

// errViewStopped is returned to waiters once the view no longer applies
// records.
var errViewStopped = errors.New("links view stopped")

func newAppliedOffsets() *appliedOffsets {
	return &appliedOffsets{offsets: map[int32]int64{}, changed: make(chan struct{})}
}

func (a *appliedOffsets) mark(partition int32, offset int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if cur, ok := a.offsets[partition]; ok && cur >= offset {
		return
	}
	a.offsets[partition] = offset
	if a.stopped {
		return
	}
	close(a.changed)
	a.changed = make(chan struct{})
}

func (a *appliedOffsets) stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.stopped {
		a.stopped = true
		close(a.changed)
	}
}

func (a *appliedOffsets) wait(ctx context.Context, partition int32, offset int64) error {
	for {
		a.mu.Lock()
		cur, ok := a.offsets[partition]
		if ok && cur >= offset {
			a.mu.Unlock()
			return nil
		}
		if a.stopped {
			a.mu.Unlock()
			return errViewStopped
		}
		ch := a.changed
		a.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
