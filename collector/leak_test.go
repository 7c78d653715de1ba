package collector_test

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain checks that the collector stops every goroutine it started:
// goka's view leaves its sarama clients open unless the collector closes
// them. go-metrics' meter arbiter is a process-wide goroutine sarama starts
// once.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/rcrowley/go-metrics.(*meterArbiter).tick"))
}
