// Command livetab runs livetab: `livetab dev` runs everything on one
// machine on an embedded broker; collect, process and serve run one part
// each against a Kafka cluster; token prints an access token.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
