package views

import (
	_ "embed"
	"net/http"
)

// page is the live page: one self-contained HTML file (no CDN, no other
// asset) that reads account and token from its own URL and follows
// /v1/live.
//
//go:embed page.html
var page []byte

// pageCSP lets the page run its inline script and style and connect back to
// this origin only.
const pageCSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; " +
	"connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	// The token is in the page's URL: never send it to another site.
	h.Set("Referrer-Policy", "no-referrer")
	w.Write(page)
}
