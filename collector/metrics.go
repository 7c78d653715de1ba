package collector

import (
	"net/http"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metric names, for operators' dashboards and alerts. Every one is
// registered in the collector's own registry (Options.Metrics), never in
// Prometheus' global one.
const (
	// MetricRequests counts answered requests by route (the ServeMux
	// pattern, such as "GET /l/{account}/{slug}", never the raw path) and
	// status code.
	MetricRequests = "livetab_collector_http_requests_total"
	// MetricEventsAccepted counts SDK events written to Kafka.
	MetricEventsAccepted = "livetab_collector_events_accepted_total"
	// MetricEventsRejected counts SDK events refused, by reason code.
	MetricEventsRejected = "livetab_collector_events_rejected_total"
	// MetricProduceDuration is how long writes waited for Kafka, by topic
	// and result: "ok" (acknowledged), "error" (Kafka refused or the
	// producer gave up) or "timeout" (ProduceTimeout or the request ended
	// first; the write may still land).
	MetricProduceDuration = "livetab_collector_produce_duration_seconds"
	// MetricProduceInFlight is how many writes requests are waiting on.
	MetricProduceInFlight = "livetab_collector_produce_in_flight"
	// MetricProducerPending is how many messages the producer holds that
	// Kafka has neither acknowledged nor refused yet, including those of
	// requests that stopped waiting: it grows while Kafka is slow or down.
	MetricProducerPending = "livetab_collector_producer_pending_messages"
)

// Produce results, the values of the result label.
const (
	resultOK      = "ok"
	resultError   = "error"
	resultTimeout = "timeout"
)

// metrics counts what the collector does, for its operators. The methods
// are called from the request paths.
type metrics struct {
	registry        *prometheus.Registry
	requests        *prometheus.CounterVec
	accepted        prometheus.Counter
	rejected        *prometheus.CounterVec
	produceDuration *prometheus.HistogramVec
	inFlightGauge   prometheus.Collector
	pendingGauge    prometheus.Collector
	// inFlight and pending back the gauges of the same names.
	inFlight atomic.Int64
	pending  atomic.Int64

	// observers are produceDuration's series by topic and result, so that
	// a write does not look its labels up in the vector.
	observersMu sync.Mutex
	observers   map[[2]string]prometheus.Observer
}

// newMetrics creates the collector's metrics; register exposes them.
func newMetrics() *metrics {
	m := &metrics{
		observers: map[[2]string]prometheus.Observer{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricRequests,
			Help: "Requests answered by the collector, by route (ServeMux pattern) and status code.",
		}, []string{"route", "code"}),
		accepted: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricEventsAccepted,
			Help: "SDK events written to Kafka.",
		}),
		rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: MetricEventsRejected,
			Help: "SDK events refused, by reason.",
		}, []string{"reason"}),
		produceDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: MetricProduceDuration,
			Help: "Time requests waited for Kafka to acknowledge their write, by topic and result (ok, error, timeout).",
			// From a healthy cluster's few milliseconds up to the
			// default ProduceTimeout and beyond.
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"topic", "result"}),
	}
	m.inFlightGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricProduceInFlight,
		Help: "Writes that requests are waiting on.",
	}, func() float64 { return float64(m.inFlight.Load()) })
	m.pendingGauge = prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: MetricProducerPending,
		Help: "Messages handed to the producer that Kafka has neither acknowledged nor refused yet.",
	}, func() float64 { return float64(m.pending.Load()) })
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.accepted, m.rejected, m.produceDuration, m.inFlightGauge, m.pendingGauge}
}

// register registers the metrics in reg, all or none.
func (m *metrics) register(reg *prometheus.Registry) error {
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return err
		}
	}
	m.registry = reg
	return nil
}

// handler serves the registry in Prometheus' exposition format.
func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.registry, promhttp.HandlerOpts{})
}

// eventsAccepted counts n events written to Kafka.
func (m *metrics) eventsAccepted(n int) {
	if n > 0 {
		m.accepted.Add(float64(n))
	}
}

// reasonCode is what a reason label may look like; anything else is
// counted as "other" so that a stray message cannot blow up the number of
// series.
var reasonCode = regexp.MustCompile(`^[a-z][a-z0-9_]{0,39}$`)

// eventRejected counts one event rejected for reason, a short stable code
// such as "missing_field" or "too_long" (a label value: keep it low
// cardinality).
func (m *metrics) eventRejected(reason string) {
	if !reasonCode.MatchString(reason) {
		reason = "other"
	}
	m.rejected.WithLabelValues(reason).Inc()
}

// produced observes one write to topic that took d and ended with result.
func (m *metrics) produced(topic, result string, d time.Duration) {
	key := [2]string{topic, result}
	m.observersMu.Lock()
	o, ok := m.observers[key]
	if !ok {
		o = m.produceDuration.WithLabelValues(topic, result)
		m.observers[key] = o
	}
	m.observersMu.Unlock()
	o.Observe(d.Seconds())
}

// instrument counts the answers of h under route.
func (m *metrics) instrument(route string, h http.HandlerFunc) http.Handler {
	// The route's counters by code, so that a request does not look its
	// labels up in the vector (hashing, a lock, the code formatted).
	var mu sync.Mutex
	byCode := map[int]prometheus.Counter{}
	counter := func(code int) prometheus.Counter {
		mu.Lock()
		defer mu.Unlock()
		c, ok := byCode[code]
		if !ok {
			c = m.requests.WithLabelValues(route, strconv.Itoa(code))
			byCode[code] = c
		}
		return c
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &statusWriter{ResponseWriter: w}
		h(sw, r)
		counter(sw.code()).Inc()
	})
}

// statusWriter remembers the status code a handler answered.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	// 1xx answers are informational; the final status comes later.
	if s.status == 0 && code >= 200 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection (flushing,
// deadlines) through the wrapper.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

func (s *statusWriter) code() int {
	if s.status == 0 {
		// A handler that writes nothing answers 200.
		return http.StatusOK
	}
	return s.status
}
