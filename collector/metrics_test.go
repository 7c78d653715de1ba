package collector_test

import (
	"bufio"
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/livetab/livetab/collector"
)

// scrape reads GET /metrics over HTTP and returns every sample by its
// series, exactly as exposed: `name{label="value",...}` with the labels in
// name order, or the bare name.
func (e *env) scrape() map[string]float64 {
	e.t.Helper()
	resp, body := e.do(request{method: "GET", path: "/metrics"})
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		e.t.Errorf("GET /metrics: content type %q, want Prometheus' text format", ct)
	}
	samples := map[string]float64{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, ' ')
		if cut < 0 {
			e.t.Fatalf("GET /metrics: malformed line %q", line)
		}
		v, err := strconv.ParseFloat(line[cut+1:], 64)
		if err != nil {
			e.t.Fatalf("GET /metrics: line %q: %v", line, err)
		}
		samples[line[:cut]] = v
	}
	return samples
}

// sum adds every sample of the series of name whose labels contain all of
// labels (each `key="value"`).
func sum(samples map[string]float64, name string, labels ...string) float64 {
	total := 0.0
	for series, v := range samples {
		n, rest, _ := strings.Cut(series, "{")
		if n != name {
			continue
		}
		ok := true
		for _, l := range labels {
			if !strings.Contains(rest, l) {
				ok = false
			}
		}
		if ok {
			total += v
		}
	}
	return total
}

// TestMetrics sends traffic of every kind and scrapes /metrics: requests
// by route pattern and status, events accepted and rejected by reason,
// produce latency by topic and result, and the in-flight gauges back at
// zero.
func TestMetrics(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.putLink("acme", "spring", map[string]any{"destination": "https://example.com/spring"})
	for range 2 {
		if resp, _ := e.do(request{method: "GET", path: "/l/acme/spring"}); resp.StatusCode != http.StatusFound {
			t.Fatalf("hit: %d", resp.StatusCode)
		}
	}
	if resp, _ := e.do(request{method: "GET", path: "/l/acme/nope"}); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown link: %d", resp.StatusCode)
	}
	resp, data := e.do(request{method: "POST", path: "/v1/events", body: `[
		{"id":"m1","account":"acme","session":"s1","name":"open"},
		{"id":"m2","account":"acme","session":"s1","name":"install"},
		{"id":"m3","account":"acme","name":"open"}]`})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("events: %d %s", resp.StatusCode, data)
	}
	if resp, _ := e.do(request{method: "GET", path: "/v1/events"}); resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/events: %d", resp.StatusCode)
	}

	m := e.scrape()
	for _, c := range []struct {
		route, code string
		want        float64
	}{
		{"PUT /v1/links/{account}/{slug}", "200", 1},
		{"GET /l/{account}/{slug}", "302", 2},
		{"GET /l/{account}/{slug}", "404", 1},
		{"POST /v1/events", "200", 1},
		{"/v1/events", "405", 1},
	} {
		got := sum(m, collector.MetricRequests, `route="`+c.route+`"`, `code="`+c.code+`"`)
		if got != c.want {
			t.Errorf("%s{route=%q,code=%q} = %v, want %v", collector.MetricRequests, c.route, c.code, got, c.want)
		}
	}
	if got := sum(m, collector.MetricRequests); got != 6 {
		t.Errorf("%s counts %v requests in all, want 6", collector.MetricRequests, got)
	}
	for series := range m {
		// Label values come from patterns, never from paths.
		if strings.Contains(series, "acme") || strings.Contains(series, "spring") {
			t.Errorf("series %s carries an account or slug", series)
		}
	}

	if got := sum(m, collector.MetricEventsAccepted); got != 2 {
		t.Errorf("%s = %v, want 2", collector.MetricEventsAccepted, got)
	}
	if got := sum(m, collector.MetricEventsRejected, `reason="missing_field"`); got != 1 {
		t.Errorf(`%s{reason="missing_field"} = %v, want 1`, collector.MetricEventsRejected, got)
	}

	for _, c := range []struct {
		topic string
		want  float64
	}{{"livetab.links", 1}, {"livetab.hits", 2}, {"livetab.events", 1}} {
		name := collector.MetricProduceDuration + "_count"
		if got := sum(m, name, `topic="`+c.topic+`"`, `result="ok"`); got != c.want {
			t.Errorf(`%s{topic=%q,result="ok"} = %v, want %v`, name, c.topic, got, c.want)
		}
	}
	if got := sum(m, collector.MetricProduceDuration+"_bucket", `topic="livetab.hits"`, `result="ok"`, `le="+Inf"`); got != 2 {
		t.Errorf("produce latency histogram has %v hits in its +Inf bucket, want 2", got)
	}
	for _, g := range []string{collector.MetricProduceInFlight, collector.MetricProducerPending} {
		v, ok := m[g]
		if !ok || v != 0 {
			t.Errorf("%s = %v (exposed: %v), want 0 once every request is answered", g, v, ok)
		}
	}
}

// TestMetricsInFlight scrapes /metrics while Kafka holds writes: the
// in-flight gauge shows the waiting requests, and a write answered 503
// after ProduceTimeout is counted as a timeout.
func TestMetricsInFlight(t *testing.T) {
	e := startEnv(t, envOptions{opts: func(o *collector.Options) { o.ProduceTimeout = testProduceTimeout }})
	e.putLink("acme", "spring", map[string]any{"destination": "https://example.com/spring"})
	g := holdProduce(t, e)
	g.close()
	l := newLedger()
	done := make(chan int, 1)
	go func() { done <- e.hit(l, 0) }()
	waitFor(t, 10*time.Second, "a write in flight", func() bool {
		return e.scrape()[collector.MetricProduceInFlight] == 1
	})
	if status := <-done; status != http.StatusServiceUnavailable {
		t.Fatalf("hit while Kafka holds writes: %d, want 503", status)
	}
	m := e.scrape()
	if got := sum(m, collector.MetricProduceDuration+"_count", `topic="livetab.hits"`, `result="timeout"`); got != 1 {
		t.Errorf("timed out hit writes = %v, want 1", got)
	}
	if got := m[collector.MetricProducerPending]; got != 1 {
		t.Errorf("%s = %v while Kafka holds the write, want 1", collector.MetricProducerPending, got)
	}
	if got := sum(m, collector.MetricRequests, `route="GET /l/{account}/{slug}"`, `code="503"`); got != 1 {
		t.Errorf("503 hits counted %v, want 1", got)
	}
	g.open()
	waitFor(t, 10*time.Second, "the held write to land", func() bool {
		return e.scrape()[collector.MetricProducerPending] == 0
	})
}

// TestSharedRegistry checks that a collector registers its metrics in the
// registry it is given, so that a process serves one /metrics, and that a
// second collector on the same registry is refused rather than mixing its
// counts in.
func TestSharedRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := startEnv(t, envOptions{opts: func(o *collector.Options) { o.Metrics = reg }})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == collector.MetricProduceInFlight
	}
	if !found {
		t.Errorf("%s not in the shared registry", collector.MetricProduceInFlight)
	}
	if _, ok := e.scrape()[collector.MetricProduceInFlight]; !ok {
		t.Errorf("Metrics() does not serve the shared registry")
	}
	c, err := collector.New(collector.Options{Kafka: e.k, Secret: testSecret, Metrics: reg})
	if err == nil {
		c.Close()
		t.Fatal("a second collector registered its metrics in the same registry")
	}
}
