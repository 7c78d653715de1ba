// Command livetab runs livetab: `livetab dev` runs everything on one
// machine on an embedded broker; collect, process and serve run one part
// each against a Kafka cluster; token prints an access token.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/rcrowley/go-metrics"
)

func main() {
	// sarama records histograms and meters of every request and response
	// in go-metrics, which livetab never reads (its own /metrics come
	// from the parts): ~8 % of livetab dev's CPU in a profile at 500
	// events/s (BENCHMARKS.md). go-metrics only has
	// this process-wide switch, so the binary flips it before any client
	// exists.
	metrics.UseNilMetrics = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
