// Package views is livetab's views server: it consumes the compacted view
// topic once per process and streams each account's view items to WebSocket
// subscribers (GET /v1/live), answers the timeline and deferred deep-link
// APIs from the sessions table (GET /v1/timeline, GET /v1/deeplink), and
// serves a simple live page (GET /).
//
// Two goka views feed it. The view of topics.View hands every record, as
// it arrives (recovery included), to one fan-out hub, which keeps each
// account's newest items in an in-memory history (the snapshots and
// resumed cursors come from it) and queues the record for the account's
// subscribers that are to be shown it. The view of the sessions group
// table (in memory, or on disk with Options.StorageDir) answers timeline
// and deep-link look-ups, and wakes the deep-link requests waiting for a
// session as soon as it stored the session's new value.
package views

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors"
	"github.com/livetab/livetab/processors/store"
	"github.com/livetab/livetab/topics"
)

// Options configure a Server.
type Options struct {
	// Kafka connects the views; its topics must exist (topics.EnsureAll).
	Kafka  topics.Kafka
	Secret []byte       // verifies access tokens (codecs.ParseToken)
	Logger *slog.Logger // default discard
	// QueueSize bounds each subscriber's outgoing queue (default 256); a subscriber whose queue is
	// full is closed with a clear close reason and never slows the others.
	QueueSize int
	// MaxWaiters bounds the deep-link requests waiting for a conversion at once (default 10,000);
	// beyond it they are answered 503 with Retry-After.
	MaxWaiters int

	// HistorySize is how many of each account's newest items the server keeps in memory to
	// answer snapshots and resume cursors from (default 1,000; at least topics.ViewSlots). The
	// history is rebuilt on start from every record still on the view topic, which compaction
	// eventually reduces to the newest topics.ViewSlots items per account.
	HistorySize int
	// HistoryBytes bounds the memory of all histories together (default 256 MiB, counting each
	// item's encoded JSON and attributes). Beyond it the least recently active accounts are
	// trimmed to their newest topics.ViewSlots items, which are always kept.
	HistoryBytes int64
	// SampleRate is how many items per second a client without filters is shown on average
	// (default 5); a busier account's stream is sampled by session.
	SampleRate float64
	// StatsInterval spaces the stats frames of live connections (default 1 s).
	StatsInterval time.Duration
	// OriginPatterns are the origins, besides the request's own host, from which a browser may
	// open /v1/live (coder/websocket's AcceptOptions.OriginPatterns: host patterns such as
	// "app.example.com" or "*.example.com", or "https://*.example.com"). Default: same host only.
	// Clients that send no Origin (non-browsers) are not checked.
	OriginPatterns []string
	// StorageDir, when set, keeps the sessions table that the timeline and deep-link APIs read in
	// leveldb (package processors/store), in StorageDir/views (one database per partition), with the offset
	// read up to: a restart reads only what arrived since the last stop instead of the whole
	// table topic, and the table is not held in memory. Default empty: in memory, read again from
	// Kafka on every start. The directory must stay with the Kafka data it was read from: when
	// the topics are recreated, delete it. The view topic is read whole on every start either
	// way, since the live history is rebuilt from it (compaction keeps it small).
	StorageDir string
}

// Defaults of the per-connection bounds. Tests change the timers through
// the Server's fields.
const (
	// defaultQueueSize bounds a subscriber's queue when Options leave it 0.
	defaultQueueSize     = 256
	defaultHistorySize   = 1000
	defaultHistoryBytes  = 256 << 20
	defaultSampleRate    = 5
	defaultStatsInterval = time.Second
	defaultWriteTimeout  = 10 * time.Second
	defaultPingInterval  = 30 * time.Second
	// readyPoll is how often Run checks whether both views recovered.
	readyPoll = 10 * time.Millisecond
)

// errNotReady is returned by view reads before both views recovered or
// after Run stopped them.
var errNotReady = errors.New("views: not ready")

// Server is the views server. Create it with New, start its views with Run
// and mount its handlers with Register.
type Server struct {
	log       *slog.Logger
	secret    []byte
	queueSize int
	// writeTimeout bounds one frame's write; pingInterval spaces the pings
	// that detect dead connections.
	writeTimeout time.Duration
	pingInterval time.Duration
	// statsInterval spaces stats frames and lag polls.
	statsInterval  time.Duration
	originPatterns []string

	// items is the process's only consumer of the view topic; sessions
	// reads the sessions group table.
	items    *goka.View
	sessions *goka.View
	hub      *hub
	waiters  *waiters
	// records and sessionRecords count the records the views read, of
	// the view topic and of the sessions table, recovery included.
	records        atomic.Int64
	sessionRecords atomic.Int64
	clients        clientSet
	// itemsConsumer is the view of topics.View's consumer, whose high
	// watermarks lag measures against.
	itemsConsumer sarama.Consumer
	lag           lagMeter

	started atomic.Bool
	ready   chan struct{} // closed once both views recovered
	stopped chan struct{} // closed when Run returns

	// mu guards closed. View reads hold it for reading, so that once Run
	// set closed no read is in flight when goka closes the views' storage.
	mu      sync.RWMutex
	closed  bool
	streams sync.WaitGroup // live connections, waited for by Run

	// epoch is what mono counts from; batchBufs holds the buffers batch
	// frames are put together in, only for as long as one is written.
	epoch     time.Time
	batchBufs sync.Pool
}

// mono is a monotonic clock reading in nanoseconds, for deadlines kept
// in atomics.
func (s *Server) mono() int64 { return int64(time.Since(s.epoch)) }

// batchBuffer returns a buffer for a batch frame, to be handed back with
// putBatchBuffer.
func (s *Server) batchBuffer() *[]byte {
	if bp, ok := s.batchBufs.Get().(*[]byte); ok {
		return bp
	}
	b := make([]byte, 0, maxBatchBytes+1024)
	return &b
}

// putBatchBuffer keeps b (grown from *bp) for the next batch, unless it
// grew beyond what batches normally need.
func (s *Server) putBatchBuffer(bp *[]byte, b []byte) {
	if cap(b) > 4*maxBatchBytes {
		return
	}
	*bp = b[:0]
	s.batchBufs.Put(bp)
}

// New connects the server's two goka views. The topics must exist already
// (topics.EnsureAll). Nothing is consumed before Run.
func New(opts Options) (*Server, error) {
	if len(opts.Kafka.Brokers) == 0 {
		return nil, errors.New("views: no Kafka brokers")
	}
	if len(opts.Secret) == 0 {
		return nil, errors.New("views: empty token secret")
	}
	if opts.QueueSize < 0 {
		return nil, fmt.Errorf("views: negative queue size %d", opts.QueueSize)
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = defaultQueueSize
	}
	if opts.MaxWaiters < 0 {
		return nil, fmt.Errorf("views: negative waiter bound %d", opts.MaxWaiters)
	}
	if opts.MaxWaiters == 0 {
		opts.MaxWaiters = defaultMaxWaiters
	}
	if opts.HistorySize < 0 || opts.HistoryBytes < 0 || opts.SampleRate < 0 || opts.StatsInterval < 0 {
		return nil, fmt.Errorf("views: negative history size %d, history bytes %d, sample rate %g or stats interval %v",
			opts.HistorySize, opts.HistoryBytes, opts.SampleRate, opts.StatsInterval)
	}
	if opts.HistorySize == 0 {
		opts.HistorySize = defaultHistorySize
	}
	if opts.HistorySize < topics.ViewSlots {
		return nil, fmt.Errorf("views: history size %d below the %d items a snapshot needs", opts.HistorySize, topics.ViewSlots)
	}
	if opts.HistoryBytes == 0 {
		opts.HistoryBytes = defaultHistoryBytes
	}
	if opts.SampleRate == 0 {
		opts.SampleRate = defaultSampleRate
	}
	if opts.StatsInterval == 0 {
		opts.StatsInterval = defaultStatsInterval
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		log:            log,
		secret:         opts.Secret,
		queueSize:      opts.QueueSize,
		writeTimeout:   defaultWriteTimeout,
		pingInterval:   defaultPingInterval,
		statsInterval:  opts.StatsInterval,
		originPatterns: opts.OriginPatterns,
		hub: newHub(log, hubOptions{
			historySize:  opts.HistorySize,
			historyBytes: opts.HistoryBytes,
			sampleRate:   opts.SampleRate,
		}),
		waiters: newWaiters(opts.MaxWaiters),
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
		epoch:   time.Now(),
	}
	var err error
	// The view of topics.View stores nothing but offsets: the hub keeps
	// the items.
	s.items, err = goka.NewView(opts.Kafka.Brokers, goka.Table(topics.View), codecs.ViewItemCodec{},
		append(s.viewOptions(opts.Kafka, "views-items", offsetBuilder(), func(c sarama.Consumer) { s.itemsConsumer = c }),
			goka.WithViewCallback(s.onViewRecord))...)
	if err != nil {
		s.clients.close(log)
		return nil, fmt.Errorf("views: view of %s: %w", topics.View, err)
	}
	// Either storage is opened when Run starts the view, and closed when
	// it stops.
	sessionsStorage := mapBuilder()
	if opts.StorageDir != "" {
		sessionsStorage = store.Builder(filepath.Join(opts.StorageDir, "views"), store.Options{})
	}
	s.sessions, err = goka.NewView(opts.Kafka.Brokers, goka.GroupTable(topics.SessionsGroup), codecs.TimelineCodec{},
		// Off the live path: the copy may lag a fetch wait (topics.Pace).
		append(s.viewOptions(opts.Kafka.Background(), "views-sessions", sessionsStorage, nil), goka.WithViewCallback(s.onSessionRecord))...)
	if err != nil {
		s.clients.close(log)
		return nil, fmt.Errorf("views: view of %s: %w", goka.GroupTable(topics.SessionsGroup), err)
	}
	return s, nil
}

// viewOptions are livetab's view options with the state stored by sb and
// the sarama clients tracked, because a goka View never closes them.
// onConsumer, if set, is handed the view's consumer.
func (s *Server) viewOptions(k topics.Kafka, part string, sb storage.Builder, onConsumer func(sarama.Consumer)) []goka.ViewOption {
	consumerCfg := k.SaramaConfig(part)
	topicsCfg := k.SaramaConfig(part + "-topics")
	return append(k.ViewOptions(part, sb),
		goka.WithViewConsumerSaramaBuilder(func(brokers []string, clientID string) (sarama.Consumer, error) {
			c, err := goka.SaramaConsumerBuilderWithConfig(consumerCfg)(brokers, clientID)
			if err == nil {
				s.clients.add(c)
				if onConsumer != nil {
					onConsumer(c)
				}
			}
			return c, err
		}),
		// A view's topic manager only lists partitions and reads offsets,
		// so goka's default topic settings are fine here.
		goka.WithViewTopicManagerBuilder(func(brokers []string) (goka.TopicManager, error) {
			tm, err := goka.NewTopicManager(brokers, topicsCfg, goka.NewTopicManagerConfig())
			if err == nil {
				s.clients.add(tm)
			}
			return tm, err
		}),
	)
}

// Register mounts the server's handlers: GET /v1/live (WebSocket),
// GET /v1/timeline, GET /v1/deeplink and GET / (the page, which needs no
// other asset).
func (s *Server) Register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/live", s.handleLive)
	mux.HandleFunc("GET /v1/timeline", s.handleTimeline)
	mux.HandleFunc("GET /v1/deeplink", s.handleDeeplink)
	mux.HandleFunc("GET /{$}", s.handlePage)
}

// Run consumes both views until ctx is done, then closes every live
// connection (status 1001) and waits for them. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.started.CompareAndSwap(false, true) {
		return errors.New("views: Run called more than once")
	}
	defer close(s.stopped)

	// The views get their own context: they must stop only after the
	// handlers stopped reading them (see shutdown).
	viewCtx, cancelViews := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelViews()
	errs := make(chan error, 2)
	var wg sync.WaitGroup
	for _, v := range []*goka.View{s.items, s.sessions} {
		wg.Go(func() {
			if err := v.Run(viewCtx); err != nil {
				errs <- fmt.Errorf("views: view of %s: %w", v.Topic(), err)
				return
			}
			errs <- nil
		})
	}
	stopWatch := make(chan struct{})
	wg.Go(func() { s.watchReady(stopWatch) })
	wg.Go(func() { s.measureLag(stopWatch) })

	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
		if err == nil {
			err = errors.New("views: a view stopped")
		}
	}
	close(stopWatch)
	s.shutdown()
	cancelViews()
	wg.Wait()
	close(errs)
	for e := range errs {
		err = errors.Join(err, e)
	}
	return errors.Join(err, s.clients.close(s.log))
}

// watchReady closes s.ready once both views recovered. goka's view state
// may report running before every partition did, so it asks each view.
func (s *Server) watchReady(stop <-chan struct{}) {
	t := time.NewTicker(readyPoll)
	defer t.Stop()
	for {
		if s.recovered() {
			close(s.ready)
			s.log.Info("views recovered")
			return
		}
		select {
		case <-stop:
			return
		case <-t.C:
		}
	}
}

// measureLag updates the view consumer's lag every stats interval.
func (s *Server) measureLag(stop <-chan struct{}) {
	t := time.NewTicker(s.statsInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			if s.itemsConsumer != nil {
				s.lag.update(s.itemsConsumer.HighWaterMarks()[string(topics.View)])
			}
		}
	}
}

func (s *Server) recovered() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return !s.closed && s.items.Recovered() && s.sessions.Recovered()
}

// shutdown stops serving before the views close: no view read starts
// after it set closed, waiting deep-link requests wake to find it so, and
// every live connection is told and waited for.
func (s *Server) shutdown() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.waiters.close()
	s.hub.close()
	s.streams.Wait()
}

// Progress reports how far the views' two tables (the view topic and the
// sessions table) have recovered, for the progress lines a restart shows.
func (s *Server) Progress(ctx context.Context) []processors.TableProgress {
	return []processors.TableProgress{
		processors.TableProgressOf(string(topics.View), s.items.Stats(ctx).Partitions),
		processors.TableProgressOf(string(goka.GroupTable(topics.SessionsGroup)), s.sessions.Stats(ctx).Partitions),
	}
}

// WaitReady returns once both views recovered, or an error when ctx is
// done or Run stopped first.
func (s *Server) WaitReady(ctx context.Context) error {
	select {
	case <-s.ready:
		return nil
	case <-s.stopped:
		select {
		case <-s.ready:
			return nil
		default:
		}
		return errors.New("views: stopped before the views recovered")
	case <-ctx.Done():
		return fmt.Errorf("views: waiting for the views to recover: %w", ctx.Err())
	}
}

// isReady reports whether requests may be served.
func (s *Server) isReady() bool {
	select {
	case <-s.ready:
		return true
	default:
		return false
	}
}

// get reads key from v while the views are open.
func (s *Server) get(v *goka.View, key string) (any, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || !s.isReady() {
		return nil, errNotReady
	}
	return v.Get(key)
}

// beginStream admits a live connection, to be ended with s.streams.Done.
func (s *Server) beginStream() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed || !s.isReady() {
		return false
	}
	s.streams.Add(1)
	return true
}

// onViewRecord is the view topic's update callback: it hands the record
// to the hub, which keeps it in its account's history and fans it out.
// Nothing is stored in goka's storage (see offsetStorage). A record that
// does not decode is logged and skipped; it must never stop the view.
func (s *Server) onViewRecord(ctx goka.UpdateContext, _ storage.Storage, key string, value []byte) error {
	s.records.Add(1)
	s.lag.consumed(ctx.Partition(), ctx.Offset())
	if value == nil {
		return nil // a tombstone: nothing to show
	}
	// ViewKey is account + separator + slot; the slot never holds a
	// separator.
	i := strings.LastIndex(key, topics.KeySeparator)
	if i <= 0 {
		s.log.Warn("skipping view record with a malformed key", "key", key, "partition", ctx.Partition(), "offset", ctx.Offset())
		return nil
	}
	account := key[:i]
	it, err := codecs.Typed[livetabv1.ViewItem](value)
	if err == nil {
		var u *update
		if u, err = newUpdate(it, account); err == nil {
			// Records recovered before the server is ready do not count as
			// arriving.
			s.hub.publish(account, u, s.isReady())
			return nil
		}
	}
	s.log.Warn("skipping view record", "key", key, "partition", ctx.Partition(), "offset", ctx.Offset(), "error", err)
	return nil
}

// onSessionRecord is the sessions table's update callback: it stores the
// record as goka would, then wakes the deep-link requests waiting for the
// session, which read its new value themselves.
func (s *Server) onSessionRecord(ctx goka.UpdateContext, st storage.Storage, key string, value []byte) error {
	s.sessionRecords.Add(1)
	if err := goka.DefaultUpdate(ctx, st, key, value); err != nil {
		return err
	}
	if value != nil {
		s.waiters.notify(key)
	}
	return nil
}

// clientSet holds the sarama clients of the views, to close after Run.
type clientSet struct {
	mu sync.Mutex
	cs []io.Closer
}

func (c *clientSet) add(x io.Closer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cs = append(c.cs, x)
}

func (c *clientSet) close(log *slog.Logger) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, x := range c.cs {
		// goka closes some of its topic managers itself.
		if err := x.Close(); err != nil && !errors.Is(err, sarama.ErrClosedClient) {
			errs = append(errs, err)
		}
	}
	c.cs = nil
	if err := errors.Join(errs...); err != nil {
		log.Warn("closing Kafka clients", "error", err)
		return fmt.Errorf("views: close Kafka clients: %w", err)
	}
	return nil
}
