package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/system"
	"github.com/livetab/livetab/topics"
)

const usage = `livetab shows app publishers a live feed of their traffic.

Usage:
  livetab <command> [flags]

Commands:
  dev       run everything in one process (embedded broker unless --brokers), with demo traffic
  collect   run the HTTP collector against --brokers
  process   run the goka processors against --brokers
  serve     run the views (WebSocket, timeline API, page) against --brokers
  token     print an access token for an account
  bench     drive the whole system with realistic load and measure it

Run 'livetab <command> --help' for a command's flags.
Environment: LIVETAB_BROKERS (default of --brokers), LIVETAB_SECRET (token secret).
`

// run executes one command and returns the process exit code: 0 on
// success, 1 when the command failed, 2 on a usage error.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "dev":
		err = runParts(ctx, "dev", system.AllParts(), rest, stdout, stderr)
	case "collect":
		err = runParts(ctx, "collect", system.Parts{Collector: true}, rest, stdout, stderr)
	case "process":
		err = runParts(ctx, "process", system.Parts{Processors: true}, rest, stdout, stderr)
	case "serve":
		err = runParts(ctx, "serve", system.Parts{Views: true}, rest, stdout, stderr)
	case "token":
		err = runToken(rest, stdout, stderr)
	case "bench":
		err = runBench(ctx, rest, stdout, stderr)
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "livetab: unknown command %q\n\n%s", cmd, usage)
		return 2
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	default:
		fmt.Fprintf(stderr, "livetab %s: %v\n", cmd, err)
		return 1
	}
}

// errUsage marks errors already reported by the flag package.
var errUsage = errors.New("usage")

func newFlags(name, synopsis string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("livetab "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: livetab %s [flags]\n\n%s\n\nFlags:\n", name, synopsis)
		fs.PrintDefaults()
	}
	return fs
}

func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}

func synopsis(name string) string {
	return map[string]string{
		"dev":     "Runs the collector, processors and views in one process. With no --brokers it starts\nan embedded Kafka-protocol broker keeping its data in --data-dir, seeds the account\n\"demo\" and sends it demo traffic, then prints the URLs to open.",
		"collect": "Runs the HTTP collector (short links, SDK events, link admin) against a Kafka cluster.",
		"process": "Runs the goka processors (sessions, attribution, liveview) against a Kafka cluster.\nScale out by starting more instances: they share the consumer groups.",
		"serve":   "Runs the views (WebSocket live feed, timeline API, Live Tab page) against a Kafka cluster.",
	}[name]
}

func runParts(ctx context.Context, name string, parts system.Parts, args []string, stdout, stderr io.Writer) error {
	opts := system.DefaultOptions()
	opts.Parts = parts
	fs := newFlags(name, synopsis(name), stderr)
	brokers := fs.String("brokers", os.Getenv("LIVETAB_BROKERS"), "comma-separated Kafka brokers (env LIVETAB_BROKERS)")
	logLevel := fs.String("log-level", "info", "log level: debug, info, warn, error")
	proxies := fs.String("trusted-proxies", "", "comma-separated CIDRs whose X-Forwarded-For is trusted")
	partitions := fs.Int("partitions", topics.DefaultPartitions, "partitions of every topic livetab creates (existing topics must match)")
	if parts.Collector || parts.Views {
		fs.StringVar(&opts.Addr, "addr", opts.Addr, "HTTP listen address")
	}
	origins := ""
	if parts.Views {
		fs.Float64Var(&opts.SampleRate, "sample-rate", 5, "items per second an unfiltered live-view client is shown on average")
		fs.StringVar(&origins, "allowed-origins", "", "comma-separated extra browser origins (host patterns) allowed to open the live view")
	}
	if parts.Collector {
		fs.DurationVar(&opts.ProduceTimeout, "produce-timeout", collector.DefaultProduceTimeout, "how long a collector request waits for Kafka before it is answered 503")
	}
	backgroundWait := topics.DefaultBackgroundFetchWait
	if parts.Processors || parts.Views {
		fs.DurationVar(&backgroundWait, "background-wait", backgroundWait, "how long the parts off the live path (sessions, attribution, the views' copy of the sessions table) wait to fill a Kafka fetch; they hold sends a fifth of it. Longer leaves more CPU to the live path and delays the timeline, conversions and deep links by up to that much per hop; 0 makes them as eager as the live path")
	}
	if name == "dev" || parts.Processors {
		fs.StringVar(&opts.DataDir, "data-dir", opts.DataDir, "directory for the embedded broker's data, local tables and the dev secret")
	}
	if parts.Processors {
		d := attribution.Config{}.WithDefaults()
		fs.DurationVar(&opts.Attribution.ClickWindow, "click-window", d.ClickWindow, "lookback of click-id matches")
		fs.DurationVar(&opts.Attribution.DeviceWindow, "device-window", d.DeviceWindow, "lookback of device-id matches")
		fs.DurationVar(&opts.Attribution.FingerprintWindow, "fingerprint-window", d.FingerprintWindow, "lookback of fingerprint (IP + OS + device) matches")
		fs.DurationVar(&opts.Attribution.Grace, "grace", d.Grace, "how long an install without a click-id match waits for late hits")
		fs.DurationVar(&opts.SweepInterval, "sweep-interval", time.Hour, "how often sessions older than 60 days and attribution's idle match keys are deleted")
	}
	if name == "dev" {
		fs.BoolVar(&opts.Demo, "demo", true, "seed account \"demo\" and send it demo traffic")
		fs.Float64Var(&opts.DemoRate, "demo-rate", opts.DemoRate, "demo visitors per second")
		fs.IntVar(&opts.BrokerPort, "broker-port", 0, "port of the embedded broker on 127.0.0.1 (0: any free port)")
		fs.DurationVar(&opts.CompactInterval, "compact-interval", topics.DefaultCompactInterval, "how often the embedded broker compacts the tables: shorter keeps restarts fast (it reads its data directory whole when it starts), but each pass holds up requests for longer the more table data there is")
	} else {
		opts.Demo = false
	}
	if err := parse(fs, args); err != nil {
		return err
	}
	if backgroundWait < 0 {
		return usageErr(fs, "--background-wait must not be negative")
	}
	opts.BackgroundPace = backgroundPace(backgroundWait)
	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return usageErr(fs, "bad --log-level %q: %v", *logLevel, err)
	}
	opts.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	opts.Brokers = system.SplitList(*brokers)
	if name != "dev" && len(opts.Brokers) == 0 {
		return usageErr(fs, "no brokers: set --brokers or LIVETAB_BROKERS (or run 'livetab dev' for the embedded broker)")
	}
	if parts.Processors && (opts.Attribution.ClickWindow <= 0 || opts.Attribution.DeviceWindow <= 0 ||
		opts.Attribution.FingerprintWindow <= 0 || opts.Attribution.Grace <= 0 || opts.SweepInterval <= 0) {
		return usageErr(fs, "--click-window, --device-window, --fingerprint-window, --grace and --sweep-interval must be positive")
	}
	if parts.Views && opts.SampleRate <= 0 {
		return usageErr(fs, "--sample-rate must be positive")
	}
	opts.AllowedOrigins = system.SplitList(origins)
	if parts.Collector && opts.ProduceTimeout <= 0 {
		return usageErr(fs, "--produce-timeout must be positive")
	}
	if *partitions <= 0 || *partitions > 10000 {
		return usageErr(fs, "--partitions must be between 1 and 10000")
	}
	opts.Topics.Partitions = int32(*partitions)
	for _, p := range strings.Split(*proxies, ",") {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			return usageErr(fs, "bad --trusted-proxies entry %q: %v", p, err)
		}
		opts.TrustedProxies = append(opts.TrustedProxies, prefix)
	}
	if parts.Collector || parts.Views {
		secretDir := ""
		if name == "dev" {
			secretDir = opts.DataDir
		}
		secret, err := system.LoadSecret(secretDir)
		if err != nil {
			return err
		}
		opts.Secret = secret
	}
	return system.Run(ctx, opts, func(info system.Info) {
		printReady(stdout, name, opts, info)
	})
}

func printReady(w io.Writer, name string, opts system.Options, info system.Info) {
	fmt.Fprintf(w, "livetab %s is running on %s\n", name, info.URL)
	if info.Embedded {
		fmt.Fprintf(w, "  broker:     %s (embedded, data in %s)\n", strings.Join(info.Brokers, ","), opts.DataDir)
	}
	if opts.Parts.Views && opts.Secret != nil {
		token, err := codecs.SignToken(opts.Secret, codecs.Claims{Account: system.DemoAccount, Expires: time.Now().Add(24 * time.Hour)})
		if err == nil {
			q := url.Values{"account": {system.DemoAccount}, "token": {token}}.Encode()
			fmt.Fprintf(w, "  Live Tab:   %s/?%s\n", info.URL, q)
			fmt.Fprintf(w, "  WebSocket:  ws%s/v1/live?%s\n", strings.TrimPrefix(info.URL, "http"), q)
		}
	}
	if opts.Parts.Collector {
		fmt.Fprintf(w, "  try a hit:  curl -i %s/l/%s/spring-sale\n", info.URL, system.DemoAccount)
	}
	if info.Embedded {
		fmt.Fprintf(w, "  admin token (to change links): livetab token --admin --account %s --data-dir %s\n", system.DemoAccount, opts.DataDir)
	}
	fmt.Fprintln(w, "Press Ctrl-C to stop; data is kept for the next start.")
}

func usageErr(fs *flag.FlagSet, format string, args ...any) error {
	fmt.Fprintf(fs.Output(), format+"\n", args...)
	return errUsage
}

func runToken(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("token", "Prints an access token for an account, signed with LIVETAB_SECRET or, without it,\nwith the secret kept in --data-dir by 'livetab dev'.", stderr)
	account := fs.String("account", "", "account the token grants (required)")
	admin := fs.Bool("admin", false, "also allow changing the account's links")
	ttl := fs.Duration("ttl", 24*time.Hour, "how long the token is valid")
	dataDir := fs.String("data-dir", system.DefaultOptions().DataDir, "data directory of 'livetab dev' (for its secret)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *account == "" {
		return usageErr(fs, "--account is required")
	}
	if *ttl <= 0 {
		return usageErr(fs, "--ttl must be positive")
	}
	secret, err := system.LoadSecret(*dataDir)
	if err != nil {
		return err
	}
	token, err := codecs.SignToken(secret, codecs.Claims{Account: *account, Admin: *admin, Expires: time.Now().Add(*ttl)})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout, token)
	return nil
}

// backgroundPace is the pace of --background-wait: fetches wait up to wait
// for topics.DefaultBackgroundFetchBytes and sends linger a fifth of it; 0
// is the live path's eager pace.
func backgroundPace(wait time.Duration) topics.Pace {
	if wait == 0 {
		return topics.Pace{FetchBytes: 1}
	}
	return topics.Pace{FetchWait: wait, FetchBytes: topics.DefaultBackgroundFetchBytes, Linger: wait / 5}
}
