package views

import (
	"encoding/json"
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package when a test leaves goroutines behind: live
// connections, views and their Kafka clients must all be stopped. With
// clientsEnv set the binary is instead the benchmarks' client process
// (conn_bench_test.go).
func TestMain(m *testing.M) {
	if path := os.Getenv(clientsEnv); path != "" {
		var c clientsConfig
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &c)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "bad client configuration:", err)
			os.Exit(2)
		}
		runClients(c, os.Stdin, os.Stdout)
		os.Exit(0)
	}
	goleak.VerifyTestMain(m,
		// sarama's metrics registry starts one process-wide ticker.
		goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
