package collector

import "net/http"

// Register registers the collector's routes on mux (Go 1.22 method
// patterns). Other methods on a route's path get a JSON 405 with Allow, and
// unknown paths under /l/ and /v1/links/ a JSON 404, so that every error
// the collector gives is JSON. Every answer is counted in MetricRequests
// under its pattern.
//
// The operators' endpoints are not registered here, so that a process
// running several parts can serve them once: mount Metrics at GET /metrics
// and ReadyHandler (or an aggregate of Ready) at GET /readyz.
func (c *Collector) Register(mux *http.ServeMux) {
	handle := func(pattern string, h http.HandlerFunc) {
		// The pattern, not the path, labels the requests: paths carry
		// accounts and slugs without bound.
		mux.Handle(pattern, c.metrics.instrument(pattern, h))
	}
	handle("PUT /v1/links/{account}/{slug}", c.putLink)
	handle("GET /v1/links/{account}/{slug}", c.getLink)
	handle("DELETE /v1/links/{account}/{slug}", c.deleteLink)
	handle("/v1/links/{account}/{slug}", methodNotAllowed("GET", "HEAD", "PUT", "DELETE"))
	handle("GET /v1/links/{account}", c.listLinks)
	handle("/v1/links/{account}", methodNotAllowed("GET", "HEAD"))
	handle("/v1/links/", notFound)

	handle("GET /l/{account}/{slug}", c.hit)
	handle("/l/{account}/{slug}", methodNotAllowed("GET", "HEAD"))
	handle("/l/", notFound)

	handle("POST /v1/events", c.events)
	handle("/v1/events", methodNotAllowed("POST"))
}
