package views

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// These benchmarks drive the live path as it runs in production: the hub
// fed directly (as the view callback feeds it), the WebSocket handler on a
// real HTTP server, and real WebSocket clients reading every frame. The
// clients run in a child process (this test binary, re-executed), so that
// what is measured here — CPU, heap, stacks, RSS — is the server's alone,
// while the clients still compete for the machine's cores as the load
// generator does.
//
//	go test -run XXX -bench LiveFanOut -benchtime 2000x ./views
//	go test -run XXX -bench LiveConnections -benchtime 1x ./views
//
// Environment: LIVETAB_FANOUT_SUBS (default 1000) and LIVETAB_FANOUT_RATE
// (items/s, default 200; 0: as fast as the hub takes them);
// LIVETAB_CPUPROFILE (a file for a CPU profile of the fan-out alone,
// without the connections' setup); LIVETAB_CONNS (default 2000) and
// LIVETAB_HEAPPROFILE (a file to write a heap profile to while the
// connections are held).

// clientsEnv names the file of the child's configuration; its presence
// makes the test binary a client process (see TestMain).
const clientsEnv = "LIVETAB_VIEWS_BENCH_CLIENTS"

// clientsConfig is what the child process connects.
type clientsConfig struct {
	URL      string   `json:"url"`      // http://host
	Accounts []string `json:"accounts"` // connection i subscribes to Accounts[i%len]
	Tokens   []string `json:"tokens"`   // per account
	Conns    int      `json:"conns"`
	Filter   string   `json:"filter"` // query, e.g. kind=hit,event,conversion
}

// clientsReport is what the child prints when it ends.
type clientsReport struct {
	Items      int64   `json:"items"`    // item frames with a new cursor
	Messages   int64   `json:"messages"` // WebSocket messages read
	Batches    int64   `json:"batches"`
	Slow       int64   `json:"slow"`  // closed as too slow (then resumed)
	Other      int64   `json:"other"` // other disconnects
	P50Ms      float64 `json:"p50_ms"`
	P99Ms      float64 `json:"p99_ms"`
	MaxMs      float64 `json:"max_ms"`
	Unfinished int64   `json:"unfinished"` // clients that did not reach the last cursor
	CPUSec     float64 `json:"cpu_s"`      // the client process's CPU time
	Error      string  `json:"error,omitempty"`
}

// latencyHist is a log-linear histogram of microseconds: 16 sub-buckets
// per power of two (about 6 % precision), safe for concurrent use.
type latencyHist struct {
	b   [65 * 16]atomic.Int64
	max atomic.Int64
}

func latencyBucket(us int64) int {
	us = max(us, 1)
	n := bits.Len64(uint64(us)) // 1..64
	var sub int64
	if n > 5 {
		sub = (us >> (n - 5)) & 15
	} else {
		sub = (us << (5 - n)) & 15
	}
	return n*16 + int(sub)
}

func (h *latencyHist) record(us int64) {
	h.b[latencyBucket(us)].Add(1)
	for {
		m := h.max.Load()
		if us <= m || h.max.CompareAndSwap(m, us) {
			return
		}
	}
}

// quantile is the upper bound of the bucket holding quantile q, in µs.
func (h *latencyHist) quantile(q float64) int64 {
	var total int64
	for i := range h.b {
		total += h.b[i].Load()
	}
	if total == 0 {
		return 0
	}
	rank := int64(q * float64(total))
	var seen int64
	for i := range h.b {
		if seen += h.b[i].Load(); seen > rank {
			n, sub := i/16, int64(i%16)
			if n <= 5 {
				return min(h.max.Load(), (16+sub+1)>>(5-n))
			}
			return min(h.max.Load(), (16+sub+1)<<(n-5))
		}
	}
	return h.max.Load()
}

// benchClients is the child process's state.
type benchClients struct {
	cfg    clientsConfig
	http   *http.Client
	hist   latencyHist
	items  atomic.Int64
	msgs   atomic.Int64
	batch  atomic.Int64
	slow   atomic.Int64
	other  atomic.Int64
	target atomic.Uint64 // the cursor every client is to reach; 0: unknown
	// reached is signalled by a client that reached the target.
	reached chan struct{}
	errOnce sync.Once
	err     error
}

// runClients is the child process: it connects cfg's clients, prints
// "ready" once each has its first snapshot, then reads until stdin says
// "last N" (and every client got cursor N, or a minute passed) or stdin
// closes, and prints its report as JSON.
func runClients(cfg clientsConfig, stdin io.Reader, stdout io.Writer) {
	bc := &benchClients{cfg: cfg, reached: make(chan struct{}, cfg.Conns),
		http: &http.Client{Transport: &http.Transport{}}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg, ready sync.WaitGroup
	sem := make(chan struct{}, 32)
	ready.Add(cfg.Conns)
	for i := range cfg.Conns {
		wg.Go(func() { bc.run(ctx, i, sem, &ready) })
	}
	ready.Wait()
	fmt.Fprintln(stdout, "ready")

	var rep clientsReport
	sc := bufio.NewScanner(stdin)
	for sc.Scan() {
		last, ok := strings.CutPrefix(sc.Text(), "last ")
		if !ok {
			continue
		}
		n, _ := strconv.ParseUint(last, 10, 64)
		bc.target.Store(n)
		timeout := time.After(time.Minute)
		left := int64(cfg.Conns)
	wait:
		for left > 0 {
			select {
			case <-bc.reached:
				left--
			case <-timeout:
				break wait
			}
		}
		rep.Unfinished = left
		break
	}
	cancel()
	wg.Wait()
	rep.Items, rep.Messages, rep.Batches = bc.items.Load(), bc.msgs.Load(), bc.batch.Load()
	rep.Slow, rep.Other = bc.slow.Load(), bc.other.Load()
	rep.P50Ms = float64(bc.hist.quantile(0.50)) / 1000
	rep.P99Ms = float64(bc.hist.quantile(0.99)) / 1000
	rep.MaxMs = float64(bc.hist.max.Load()) / 1000
	rep.CPUSec = cpuTime().Seconds()
	if bc.err != nil {
		rep.Error = bc.err.Error()
	}
	json.NewEncoder(stdout).Encode(rep)
}

// run keeps client i connected, resuming from its last cursor, until ctx
// ends.
func (bc *benchClients) run(ctx context.Context, i int, sem chan struct{}, ready *sync.WaitGroup) {
	acct := i % len(bc.cfg.Accounts)
	var (
		last      uint64
		readyOnce sync.Once
		done      bool
	)
	for ctx.Err() == nil {
		q := "account=" + url.QueryEscape(bc.cfg.Accounts[acct]) + "&token=" + url.QueryEscape(bc.cfg.Tokens[acct])
		if bc.cfg.Filter != "" {
			q += "&" + bc.cfg.Filter
		}
		if last > 0 {
			q += "&cursor=" + strconv.FormatUint(last, 10)
		}
		sem <- struct{}{}
		dctx, dcancel := context.WithTimeout(ctx, 30*time.Second)
		c, _, err := websocket.Dial(dctx, "ws"+strings.TrimPrefix(bc.cfg.URL, "http")+"/v1/live?"+q,
			&websocket.DialOptions{HTTPClient: bc.http})
		dcancel()
		<-sem
		if err != nil {
			if ctx.Err() == nil {
				bc.fail(fmt.Errorf("dial: %w", err))
				time.Sleep(100 * time.Millisecond) // a child process, not a test: back off
			}
			continue
		}
		c.SetReadLimit(64 << 20)
		stop := context.AfterFunc(ctx, func() { c.CloseNow() })
		err = bc.read(c, &last, func() { readyOnce.Do(ready.Done) }, func() bool {
			if !done {
				if t := bc.target.Load(); t != 0 && last >= t {
					done = true
					bc.reached <- struct{}{}
				}
			}
			return done
		})
		stop()
		c.CloseNow()
		if ctx.Err() != nil {
			return
		}
		var ce websocket.CloseError
		if errors.As(err, &ce) && ce.Code == websocket.StatusPolicyViolation && strings.Contains(ce.Reason, "slow") {
			bc.slow.Add(1)
		} else {
			bc.other.Add(1)
			bc.fail(err)
		}
	}
}

func (bc *benchClients) fail(err error) { bc.errOnce.Do(func() { bc.err = err }) }

// read reads c's messages until it fails, tracking the newest cursor.
func (bc *benchClients) read(c *websocket.Conn, last *uint64, onList func(), check func() bool) error {
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
		bc.msgs.Add(1)
		now := time.Now().UnixMicro()
		b := buf.Bytes()
		if bytes.HasPrefix(b, []byte(`{"type":"batch"`)) {
			bc.batch.Add(1)
			if err := eachBatchFrame(b, func(f []byte) { bc.frame(f, last, now, onList) }); err != nil {
				return err
			}
		} else {
			bc.frame(b, last, now, onList)
		}
		check()
	}
}

// frame accounts for one frame received at now (µs).
func (bc *benchClients) frame(b []byte, last *uint64, now int64, onList func()) {
	switch {
	case bytes.HasPrefix(b, []byte(itemPrefix)):
		// Scanned, not decoded: at 200,000 deliveries a second a decode
		// would make the clients the bottleneck.
		c, ok := scanUint(b, `"cursor":`)
		if !ok || c <= *last {
			return
		}
		*last = c
		bc.items.Add(1)
		if at, ok := scanTimeUs(b, `"received_at":"`); ok {
			bc.hist.record(now - at)
		}
	case bytes.HasPrefix(b, []byte(`{"type":"snapshot"`)), bytes.HasPrefix(b, []byte(`{"type":"resume"`)):
		var f struct {
			Cursor uint64 `json:"cursor"`
			Items  []struct {
				Cursor uint64 `json:"cursor"`
			} `json:"items"`
		}
		if json.Unmarshal(b, &f) == nil {
			for _, it := range f.Items {
				*last = max(*last, it.Cursor)
			}
		}
		onList()
	}
}

// scanUint is the number after the first key in b.
func scanUint(b []byte, key string) (uint64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	var n uint64
	j := i + len(key)
	for ; j < len(b) && b[j] >= '0' && b[j] <= '9'; j++ {
		n = n*10 + uint64(b[j]-'0')
	}
	return n, j > i+len(key)
}

// scanTimeUs is the RFC 3339 time after the first key in b, in Unix µs.
func scanTimeUs(b []byte, key string) (int64, bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, false
	}
	b = b[i+len(key):]
	j := bytes.IndexByte(b, '"')
	if j < 0 {
		return 0, false
	}
	t, err := time.Parse(time.RFC3339Nano, string(b[:j]))
	return t.UnixMicro(), err == nil
}

// eachBatchFrame calls fn with each frame of a batch frame,
// {"type":"batch","frames":[f1,f2,…]}, found by tracking JSON nesting
// outside strings; strings are skipped with IndexByte, which is most of
// an item.
func eachBatchFrame(b []byte, fn func([]byte)) error {
	const key = `"frames":[`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return fmt.Errorf("batch without frames: %.100s", b)
	}
	b = b[i+len(key):]
	depth, start := 0, -1
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, ok := stringEnd(b, j+1)
			if !ok {
				return errors.New("batch frame cut short in a string")
			}
			j = end
		case '{', '[':
			if depth == 0 {
				start = j
			}
			depth++
		case '}', ']':
			if depth == 0 {
				return nil // the end of the frames
			}
			if depth--; depth == 0 {
				fn(b[start : j+1])
			}
		}
	}
	return errors.New("batch frame cut short")
}

// stringEnd is the index of the quote that closes the JSON string starting
// at b[from].
func stringEnd(b []byte, from int) (int, bool) {
	for {
		k := bytes.IndexByte(b[from:], '"')
		if k < 0 {
			return 0, false
		}
		q := from + k
		// Escaped when preceded by an odd number of backslashes.
		n := 0
		for p := q - 1; p >= 0 && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q, true
		}
		from = q + 1
	}
}

// benchServer is a Server without Kafka: its hub is fed by the test. Its
// HTTP server serves /v1/live.
type benchServer struct {
	srv  *Server
	http *httptest.Server
}

func newBenchServer(tb testing.TB, queueSize int) *benchServer {
	tb.Helper()
	log := slog.New(slog.DiscardHandler)
	s := &Server{
		log:           log,
		secret:        testSecret,
		queueSize:     queueSize,
		writeTimeout:  defaultWriteTimeout,
		pingInterval:  defaultPingInterval,
		statsInterval: defaultStatsInterval,
		hub: newHub(log, hubOptions{historySize: defaultHistorySize, historyBytes: defaultHistoryBytes,
			sampleRate: defaultSampleRate}),
		waiters: newWaiters(defaultMaxWaiters),
		ready:   make(chan struct{}),
		stopped: make(chan struct{}),
		epoch:   time.Now(),
	}
	close(s.ready)
	mux := http.NewServeMux()
	s.Register(mux)
	bs := &benchServer{srv: s, http: httptest.NewServer(mux)}
	tb.Cleanup(func() {
		s.shutdown()
		bs.http.Close()
	})
	return bs
}

// startClients starts the child process with cfg and waits until its
// clients are connected.
func startClients(tb testing.TB, cfg clientsConfig) *childClients {
	tb.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	// In a file: a thousand tokens exceed what an environment variable
	// may hold.
	path := filepath.Join(tb.TempDir(), "clients.json")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		tb.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), clientsEnv+"="+path, "GOMAXPROCS="+strconv.Itoa(runtime.GOMAXPROCS(0)))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		tb.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	cc := &childClients{cmd: cmd, in: in, out: bufio.NewReader(out)}
	tb.Cleanup(func() {
		cc.in.Close()
		cc.cmd.Process.Kill()
		cc.cmd.Wait()
	})
	line, err := cc.out.ReadString('\n')
	if err != nil || line != "ready\n" {
		tb.Fatalf("client process: %q, %v", line, err)
	}
	return cc
}

type childClients struct {
	cmd *exec.Cmd
	in  io.WriteCloser
	out *bufio.Reader
}

// finish tells the clients the last cursor (0: stop now) and returns their
// report.
func (cc *childClients) finish(tb testing.TB, last uint64) clientsReport {
	tb.Helper()
	if last > 0 {
		fmt.Fprintf(cc.in, "last %d\n", last)
	}
	cc.in.Close()
	var rep clientsReport
	if err := json.NewDecoder(cc.out).Decode(&rep); err != nil {
		tb.Fatalf("client report: %v", err)
	}
	cc.cmd.Wait()
	return rep
}

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// cpuTime is the process's user+system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchItem is a realistic event item (~700 bytes of JSON).
func benchItem(account string, cursor uint64, now time.Time) *livetabv1.ViewItem {
	session := fmt.Sprintf("a1b2c3d4-s%d", cursor%97)
	return &livetabv1.ViewItem{
		Cursor: cursor, Account: account, Kind: livetabv1.Kind_KIND_EVENT, Session: session,
		ReceivedUs: now.UnixMicro(), Counters: &livetabv1.Counters{Hits: cursor / 10, Events: cursor, Conversions: cursor / 100},
		Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{
			Id: fmt.Sprintf("%s-%d", session, cursor), Account: account, Session: session, Name: "purchase",
			TimeUs: now.UnixMicro(), ReceivedUs: now.UnixMicro(), Platform: livetabv1.Platform_PLATFORM_IOS,
			AppVersion: "2.3.0", DeviceIds: []string{"d-0123456789abcdef01234567"},
			Params: map[string]string{"pad": strings.Repeat("x", 64), "screen": "home"},
			Request: &livetabv1.Request{Ip: "10.1.2.3",
				UserAgent: "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"},
		}},
	}
}

// BenchmarkLiveFanOut publishes b.N items of one account, paced at
// LIVETAB_FANOUT_RATE, to LIVETAB_FANOUT_SUBS WebSocket clients with a
// kind filter (no sampling), and reports deliveries per second, the
// clients' latency from publish to read, slow disconnects, WebSocket
// messages per delivery and the server's CPU per delivery.
func BenchmarkLiveFanOut(b *testing.B) {
	subs := envInt("LIVETAB_FANOUT_SUBS", 1000)
	rate := envInt("LIVETAB_FANOUT_RATE", 200)
	b.Run(fmt.Sprintf("subs=%d/rate=%d", subs, rate), func(b *testing.B) {
		bs := newBenchServer(b, defaultQueueSize)
		cc := startClients(b, clientsConfig{URL: bs.http.URL, Accounts: []string{"hot"},
			Tokens: []string{validToken(b, "hot")}, Conns: subs, Filter: "kind=hit,event,conversion"})
		if path := os.Getenv("LIVETAB_CPUPROFILE"); path != "" {
			f, err := os.Create(path)
			if err != nil {
				b.Fatal(err)
			}
			if err := pprof.StartCPUProfile(f); err != nil {
				b.Fatal(err)
			}
			defer func() {
				pprof.StopCPUProfile()
				f.Close()
			}()
		}
		cpu0, start := cpuTime(), time.Now()
		b.ResetTimer()
		var tick *time.Ticker
		if rate > 0 {
			tick = time.NewTicker(time.Millisecond)
			defer tick.Stop()
		}
		for i := 1; i <= b.N; i++ {
			if rate > 0 {
				for due := start.Add(time.Duration(i-1) * time.Second / time.Duration(rate)); time.Now().Before(due); {
					<-tick.C
				}
			}
			u, err := newUpdate(benchItem("hot", uint64(i), time.Now()), "hot")
			if err != nil {
				b.Fatal(err)
			}
			bs.srv.hub.publish("hot", u, true)
		}
		rep := cc.finish(b, uint64(b.N))
		elapsed, cpu := time.Since(start), cpuTime()-cpu0
		b.StopTimer()
		deliveries := float64(b.N) * float64(subs)
		b.ReportMetric(float64(rep.Items)/elapsed.Seconds(), "deliveries/s")
		b.ReportMetric(rep.P50Ms, "p50-ms")
		b.ReportMetric(rep.P99Ms, "p99-ms")
		b.ReportMetric(rep.MaxMs, "max-ms")
		b.ReportMetric(float64(rep.Slow), "slow")
		b.ReportMetric(float64(rep.Messages)/max(1, float64(rep.Items)), "msgs/delivery")
		b.ReportMetric(float64(cpu.Microseconds())/deliveries, "cpu-µs/delivery")
		b.ReportMetric(rep.CPUSec*1e6/deliveries, "client-cpu-µs/delivery")
		if rep.Unfinished > 0 || rep.Error != "" {
			b.Logf("%d clients did not get every item; first client error: %s", rep.Unfinished, rep.Error)
		}
	})
}

// memFigures are the process's memory as the runtime and the kernel see
// it, after GCs.
type memFigures struct {
	heap, stack, rss int64
	goroutines       int
}

func measureMem() memFigures {
	// Each GC halves the stacks that use less than a quarter of theirs:
	// a few bring them to what they need, as a server's steady GCs do.
	for range 4 {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	m := memFigures{heap: int64(ms.HeapInuse), stack: int64(ms.StackInuse), goroutines: runtime.NumGoroutine()}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				m.rss = kb << 10
			}
		}
	}
	return m
}

// BenchmarkLiveConnections holds LIVETAB_CONNS connections, ten per
// account, while items flow (one per account per second, every client
// shown every item), and reports the server's memory per connection:
// heap in use, goroutine stacks and RSS, each the difference from before
// the clients connected. LIVETAB_HEAPPROFILE names a file for the heap
// profile taken while they are connected.
func BenchmarkLiveConnections(b *testing.B) {
	conns := envInt("LIVETAB_CONNS", 2000)
	const perAccount = 10
	profile := os.Getenv("LIVETAB_HEAPPROFILE")
	if profile != "" {
		runtime.MemProfileRate = 4096
	}
	for range b.N {
		bs := newBenchServer(b, defaultQueueSize)
		accounts := make([]string, conns/perAccount)
		tokens := make([]string, len(accounts))
		for i := range accounts {
			accounts[i] = fmt.Sprintf("acct-%04d", i)
			tokens[i] = validToken(b, accounts[i])
		}
		// Every account has a snapshot's worth of history, as after
		// recovery.
		cursor := make([]uint64, len(accounts))
		publish := func(i int) {
			cursor[i]++
			u, err := newUpdate(benchItem(accounts[i], cursor[i], time.Now()), accounts[i])
			if err != nil {
				b.Fatal(err)
			}
			bs.srv.hub.publish(accounts[i], u, true)
		}
		for i := range accounts {
			for range 100 {
				publish(i)
			}
		}
		before := measureMem()
		cc := startClients(b, clientsConfig{URL: bs.http.URL, Accounts: accounts, Tokens: tokens, Conns: conns,
			Filter: "kind=hit,event,conversion"})
		connected := measureMem()
		// Items flow for 5 s: one per account per second.
		stop := time.Now().Add(5 * time.Second)
		tick := time.NewTicker(time.Second / time.Duration(len(accounts)))
		for i := 0; time.Now().Before(stop); i++ {
			<-tick.C
			publish(i % len(accounts))
		}
		tick.Stop()
		loaded := measureMem()
		if profile != "" {
			f, err := os.Create(profile)
			if err != nil {
				b.Fatal(err)
			}
			pprof.Lookup("heap").WriteTo(f, 0)
			f.Close()
		}
		rep := cc.finish(b, 0)
		per := func(x, y int64) float64 { return float64(x-y) / float64(conns) }
		b.ReportMetric(per(connected.heap, before.heap), "heap-B/conn")
		b.ReportMetric(per(connected.stack, before.stack), "stack-B/conn")
		b.ReportMetric(per(connected.rss, before.rss), "rss-B/conn")
		b.ReportMetric(per(loaded.heap, before.heap), "loaded-heap-B/conn")
		b.ReportMetric(per(loaded.rss, before.rss), "loaded-rss-B/conn")
		b.ReportMetric(float64(connected.goroutines-before.goroutines)/float64(conns), "goroutines/conn")
		if rep.Other > 0 || rep.Slow > 0 {
			b.Errorf("clients: %d slow, %d other disconnects (%s)", rep.Slow, rep.Other, rep.Error)
		}
		bs.srv.shutdown()
	}
}

// BenchmarkViewsRestart fills the sessions table topic with
// LIVETAB_RESTART_RECORDS sessions (default 100,000) on an embedded
// broker, starts a views server, then restarts it and reports how long
// the restart took to be ready, how many sessions-table records it read,
// and the process's heap after it (which holds the broker's records too:
// compare the two modes). memory is the default; storage sets
// Options.StorageDir.
func BenchmarkViewsRestart(b *testing.B) {
	n := envInt("LIVETAB_RESTART_RECORDS", 100_000)
	for _, mode := range []string{"memory", "storage"} {
		b.Run(mode, func(b *testing.B) {
			for range b.N {
				var dir string
				if mode == "storage" {
					dir = b.TempDir()
					waitLevelDBClosed(b)
				}
				e := newEnv(b, envOptions{storageDir: dir, before: func(e *env) {
					const batch = 5000
					for from := 0; from < n; from += batch {
						var tls []*livetabv1.Timeline
						for i := from; i < min(n, from+batch); i++ {
							tls = append(tls, benchTimeline(i))
						}
						e.produceTimelines(tls...)
					}
				}})
				start := time.Now()
				e.stopRun()
				e.http.Close()
				e.startServer()
				took := time.Since(start)
				mem := measureMem()
				b.ReportMetric(took.Seconds(), "restart-s")
				b.ReportMetric(float64(e.srv.sessionRecords.Load()), "records-read")
				b.ReportMetric(float64(mem.heap)/(1<<20), "heap-MiB")
			}
		})
	}
}

// benchTimeline is session i's timeline: five events (about 1.5 KB).
func benchTimeline(i int) *livetabv1.Timeline {
	session := fmt.Sprintf("bench-session-%07d", i)
	tl := &livetabv1.Timeline{Session: session, Account: fmt.Sprintf("acct-%04d", i%1000)}
	for j := range 5 {
		tl.Entries = append(tl.Entries, &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: &livetabv1.Event{
			Id: fmt.Sprintf("%s-%d", session, j), Account: tl.Account, Session: session, Name: "purchase",
			TimeUs: int64(j), ReceivedUs: int64(j), Platform: livetabv1.Platform_PLATFORM_IOS, AppVersion: "2.3.0",
			Params: map[string]string{"pad": strings.Repeat("x", 200)},
		}}})
	}
	return tl
}
