package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/netip"
	"os"
	"os/exec"
	rpprof "runtime/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/livetab/livetab/system"
)

// SUTOptions configure the system under test that `livetab bench sut`
// runs in the child process.
type SUTOptions struct {
	// Addr is the HTTP listen address. Default "127.0.0.1:0" (a free port,
	// reported on the ready line).
	Addr string
	// DataDir keeps the embedded broker's data and the local tables.
	DataDir string
	// BrokerPort of the embedded broker; 0 picks one.
	BrokerPort int
	// Partitions of every topic.
	Partitions int
	// CompactInterval of the embedded broker; 0 keeps the default.
	CompactInterval time.Duration
	// Pprof, when set, serves net/http/pprof on this address (e.g.
	// "127.0.0.1:0"; the address is reported on the ready line).
	Pprof string
	// CPUProfile, when set, writes a CPU profile of the child's whole life
	// to this file.
	CPUProfile string
	// Logger for the system. Default: discard.
	Logger *slog.Logger
}

// readyPrefix starts the line a child prints on stdout once it serves,
// followed by a JSON sutInfo.
const readyPrefix = "livetab-bench-sut ready "

// sutInfo says where a system under test listens.
type sutInfo struct {
	URL     string   `json:"url"`
	Brokers []string `json:"brokers,omitempty"`
	Pprof   string   `json:"pprof,omitempty"`
	PID     int      `json:"pid,omitempty"`
}

// loopback is trusted as a proxy by the system under test, so that the
// generator's X-Forwarded-For gives every simulated visitor its own
// address, as a load balancer would, and fingerprint matching sees
// realistic traffic rather than one IP.
func loopback() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}

// RunSUT runs the system under test until ctx ends: system.Run with every
// part on the embedded broker and no demo traffic — what `livetab dev
// --demo=false` runs — trusting loopback proxies, with the token secret
// from LIVETAB_SECRET (or DataDir/secret). Once it serves, it prints the
// ready line on stdout.
func RunSUT(ctx context.Context, opts SUTOptions, stdout io.Writer) error {
	if opts.Addr == "" {
		opts.Addr = "127.0.0.1:0"
	}
	if opts.DataDir == "" {
		return errors.New("bench sut: no data directory")
	}
	secret, err := system.LoadSecret(opts.DataDir)
	if err != nil {
		return fmt.Errorf("bench sut: %w", err)
	}
	if opts.CPUProfile != "" {
		stop, err := startCPUProfile(opts.CPUProfile)
		if err != nil {
			return fmt.Errorf("bench sut: %w", err)
		}
		defer stop()
	}
	var pprofAddr string
	if opts.Pprof != "" {
		addr, stop, err := servePprof(opts.Pprof)
		if err != nil {
			return fmt.Errorf("bench sut: %w", err)
		}
		defer stop()
		pprofAddr = addr
	}
	sopts := system.DefaultOptions()
	sopts.Addr = opts.Addr
	sopts.DataDir = opts.DataDir
	sopts.BrokerPort = opts.BrokerPort
	sopts.Demo = false
	sopts.Secret = secret
	sopts.TrustedProxies = loopback()
	sopts.Logger = opts.Logger
	if opts.Partitions > 0 {
		sopts.Topics.Partitions = int32(opts.Partitions)
	}
	if opts.CompactInterval > 0 {
		sopts.CompactInterval = opts.CompactInterval
	}
	return system.Run(ctx, sopts, func(i system.Info) {
		b, _ := json.Marshal(sutInfo{URL: i.URL, Brokers: i.Brokers, Pprof: pprofAddr, PID: os.Getpid()})
		fmt.Fprintf(stdout, "%s%s\n", readyPrefix, b)
	})
}

// servePprof serves the net/http/pprof handlers on addr until stop.
func servePprof(addr string) (string, func(), error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", nil, fmt.Errorf("pprof listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

// startCPUProfile profiles the process's CPU into path until stop.
func startCPUProfile(path string) (stop func(), err error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	if err := rpprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, fmt.Errorf("cpu profile: %w", err)
	}
	return func() {
		rpprof.StopCPUProfile()
		f.Close()
	}, nil
}

// target is the system under test as the generator sees it.
type target interface {
	info() sutInfo
	// usage is the system's own resource use; ok is false when it cannot
	// be told apart from the generator's or is unknown.
	usage() (u usage, ok bool)
	// lastLog is the system's most recent log line, for progress.
	lastLog() string
	// stop stops the system gracefully and says how long that took.
	stop(ctx context.Context) (time.Duration, error)
}

// newSecret makes a token secret for a system the generator starts.
func newSecret() []byte {
	b := make([]byte, 16)
	rand.Read(b)
	return []byte(hex.EncodeToString(b))
}

// child is the system under test in its own process.
type child struct {
	cmd   *exec.Cmd
	inf   sutInfo
	proc  procReader
	log   *lastLineWriter
	logF  *os.File
	done  chan struct{}
	exitE error
}

// childSpec says how to start a child.
type childSpec struct {
	command    []string
	dataDir    string
	partitions int
	// compactInterval, when positive, is passed as --compact-interval.
	compactInterval time.Duration
	secret          []byte
	pprof           bool
	logPath         string
	timeout         time.Duration
	// progress, when set, is called every second while the child starts.
	progress func(elapsed time.Duration, c *child)
}

// startChild starts the system under test and waits for its ready line.
// The child's log (info level) goes to spec.logPath.
func startChild(ctx context.Context, spec childSpec) (*child, time.Duration, error) {
	args := append(append([]string(nil), spec.command[1:]...),
		"--data-dir", spec.dataDir,
		"--partitions", fmt.Sprint(spec.partitions),
		"--log-level", "info")
	if spec.pprof {
		args = append(args, "--pprof", "127.0.0.1:0")
	}
	if spec.compactInterval > 0 {
		args = append(args, "--compact-interval", spec.compactInterval.String())
	}
	logF, err := os.OpenFile(spec.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, 0, fmt.Errorf("bench: child log: %w", err)
	}
	c := &child{log: &lastLineWriter{w: logF}, logF: logF, done: make(chan struct{})}
	c.cmd = exec.Command(spec.command[0], args...)
	c.cmd.Env = append(os.Environ(), system.SecretEnv+"="+string(spec.secret))
	c.cmd.Stderr = c.log
	// A generator that dies must not leave its system running.
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		logF.Close()
		return nil, 0, fmt.Errorf("bench: child stdout: %w", err)
	}
	begin := time.Now()
	if err := c.cmd.Start(); err != nil {
		logF.Close()
		return nil, 0, fmt.Errorf("bench: start %s: %w", spec.command[0], err)
	}
	c.proc = newProcReader(c.cmd.Process.Pid)
	ready := make(chan sutInfo, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			if rest, ok := strings.CutPrefix(line, readyPrefix); ok {
				var inf sutInfo
				if json.Unmarshal([]byte(rest), &inf) == nil {
					ready <- inf
				}
				continue
			}
			c.log.Write([]byte(line + "\n"))
		}
		// Drain to EOF so that Wait does not race the pipe.
		io.Copy(io.Discard, stdout)
	}()
	go func() {
		c.exitE = c.cmd.Wait()
		logF.Close()
		close(c.done)
	}()

	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	timeout := time.NewTimer(spec.timeout)
	defer timeout.Stop()
	for {
		select {
		case c.inf = <-ready:
			return c, time.Since(begin), nil
		case <-c.done:
			return nil, 0, fmt.Errorf("bench: system under test exited before it was ready (%v); last log line: %s", c.exitE, c.lastLog())
		case <-tick.C:
			if spec.progress != nil {
				spec.progress(time.Since(begin), c)
			}
		case <-timeout.C:
			c.kill()
			return nil, 0, fmt.Errorf("bench: system under test not ready within %s; last log line: %s", spec.timeout, c.lastLog())
		case <-ctx.Done():
			c.kill()
			return nil, 0, ctx.Err()
		}
	}
}

func (c *child) info() sutInfo { return c.inf }

func (c *child) usage() (usage, bool) {
	u, err := c.proc.read()
	return u, err == nil
}

func (c *child) lastLog() string { return c.log.last() }

// stop sends SIGTERM (the child stops gracefully, as `livetab dev` on
// Ctrl-C) and waits; after a minute it kills.
func (c *child) stop(ctx context.Context) (time.Duration, error) {
	begin := time.Now()
	select {
	case <-c.done:
		return 0, fmt.Errorf("bench: system under test had exited: %v", c.exitE)
	default:
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return 0, fmt.Errorf("bench: stop system under test: %w", err)
	}
	t := time.NewTimer(time.Minute)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C:
		c.kill()
		return time.Since(begin), errors.New("bench: system under test did not stop within a minute; killed")
	case <-ctx.Done():
		c.kill()
		return time.Since(begin), ctx.Err()
	}
	if c.exitE != nil {
		return time.Since(begin), fmt.Errorf("bench: system under test stopped with %v; last log line: %s", c.exitE, c.lastLog())
	}
	return time.Since(begin), nil
}

func (c *child) kill() {
	c.cmd.Process.Kill()
	<-c.done
}

// lastLineWriter passes writes on and remembers the last complete line.
type lastLineWriter struct {
	w    io.Writer
	mu   sync.Mutex
	line string
	part []byte
}

func (l *lastLineWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	l.part = append(l.part, p...)
	if i := bytes.LastIndexByte(l.part, '\n'); i >= 0 {
		lines := l.part[:i]
		if j := bytes.LastIndexByte(lines, '\n'); j >= 0 {
			lines = lines[j+1:]
		}
		l.line = string(lines)
		l.part = append(l.part[:0], l.part[i+1:]...)
	}
	defer l.mu.Unlock()
	return l.w.Write(p)
}

func (l *lastLineWriter) last() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.line
}

// inProcess runs the system inside the generator's process (tests).
type inProcess struct {
	inf    sutInfo
	cancel context.CancelFunc
	done   chan error
	// stopped holds Run's result once it returned; later stops return it.
	once    sync.Once
	stopped chan struct{}
	err     error
}

func startInProcess(ctx context.Context, dataDir string, partitions int, secret []byte, log *slog.Logger) (*inProcess, error) {
	opts := system.DefaultOptions()
	opts.Addr = "127.0.0.1:0"
	opts.DataDir = dataDir
	opts.Demo = false
	opts.Secret = secret
	opts.TrustedProxies = loopback()
	opts.Topics.Partitions = int32(partitions)
	opts.Logger = log
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &inProcess{cancel: cancel, done: make(chan error, 1), stopped: make(chan struct{})}
	ready := make(chan system.Info, 1)
	go func() { p.done <- system.Run(runCtx, opts, func(i system.Info) { ready <- i }) }()
	select {
	case i := <-ready:
		p.inf = sutInfo{URL: i.URL, Brokers: i.Brokers}
		return p, nil
	case err := <-p.done:
		cancel()
		return nil, fmt.Errorf("bench: system stopped before it was ready: %v", err)
	case <-ctx.Done():
		cancel()
		<-p.done
		return nil, ctx.Err()
	}
}

func (p *inProcess) info() sutInfo        { return p.inf }
func (p *inProcess) usage() (usage, bool) { return usage{}, false }
func (p *inProcess) lastLog() string      { return "" }
func (p *inProcess) stop(ctx context.Context) (time.Duration, error) {
	begin := time.Now()
	p.cancel()
	p.once.Do(func() {
		go func() {
			p.err = <-p.done
			close(p.stopped)
		}()
	})
	select {
	case <-p.stopped:
		return time.Since(begin), p.err
	case <-ctx.Done():
		return time.Since(begin), ctx.Err()
	}
}

// remote is a deployment the generator only measures.
type remote struct {
	inf  sutInfo
	proc *procReader
}

func (r *remote) info() sutInfo { return r.inf }
func (r *remote) usage() (usage, bool) {
	if r.proc == nil {
		return usage{}, false
	}
	u, err := r.proc.read()
	return u, err == nil
}
func (r *remote) lastLog() string                             { return "" }
func (r *remote) stop(context.Context) (time.Duration, error) { return 0, nil }
