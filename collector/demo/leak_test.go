package demo_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the demo and the collector stop every goroutine they started:
// goka's view leaves its sarama clients open unless the collector closes
// them. go-metrics' meter arbiter is a process-wide goroutine sarama starts
// once.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
