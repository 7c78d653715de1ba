package collector

import "net/http"

// Register registers the collector's routes on mux (Go 1.22 method
// patterns). Other methods on a route's path get a JSON 405 with Allow, and
// unknown paths under /l/ and /v1/links/ a JSON 404, so that every error
// the collector gives is JSON.
func (c *Collector) Register(mux *http.ServeMux) {
	mux.HandleFunc("PUT /v1/links/{account}/{slug}", c.putLink)
	mux.HandleFunc("GET /v1/links/{account}/{slug}", c.getLink)
	mux.HandleFunc("DELETE /v1/links/{account}/{slug}", c.deleteLink)
	mux.HandleFunc("/v1/links/{account}/{slug}", methodNotAllowed("GET", "HEAD", "PUT", "DELETE"))
	mux.HandleFunc("GET /v1/links/{account}", c.listLinks)
	mux.HandleFunc("/v1/links/{account}", methodNotAllowed("GET", "HEAD"))
	mux.HandleFunc("/v1/links/", notFound)

	mux.HandleFunc("GET /l/{account}/{slug}", c.hit)
	mux.HandleFunc("/l/{account}/{slug}", methodNotAllowed("GET", "HEAD"))
	mux.HandleFunc("/l/", notFound)

	mux.HandleFunc("POST /v1/events", c.events)
	mux.HandleFunc("/v1/events", methodNotAllowed("POST"))
}
