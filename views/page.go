package views

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/base64"
	"net/http"
	"sync"
)

// The Live Tab page is one self-contained HTML document: page.html with
// static/page.css and static/page.js inlined, so it works offline (no CDN,
// no other request) and is served by a single route.
var (
	//go:embed page.html
	pageHTML []byte
	//go:embed static/page.css
	pageCSS []byte
	//go:embed static/page.js
	pageJS []byte
)

// livePage is the assembled page and the Content-Security-Policy that lets
// exactly its own inline style and script run, nothing injected beside them.
type livePage struct {
	body []byte
	csp  string
}

// buildPage inlines the style and script into the HTML and derives the CSP
// from their hashes: an item's text can never become markup (the script
// only sets textContent), and should that ever break, the browser still runs
// no script but this one. connect-src 'self' covers the WebSocket and the
// timeline API on the page's own origin.
func buildPage(html, css, js []byte) livePage {
	body := bytes.Replace(html, []byte("{{style}}"), css, 1)
	body = bytes.Replace(body, []byte("{{script}}"), js, 1)
	hash := func(b []byte) string {
		sum := sha256.Sum256(b)
		return "'sha256-" + base64.StdEncoding.EncodeToString(sum[:]) + "'"
	}
	csp := "default-src 'none'; script-src " + hash(js) + "; style-src " + hash(css) +
		"; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return livePage{body: body, csp: csp}
}

// thePage is built once, on first use; it never changes afterwards.
var thePage = sync.OnceValue(func() livePage { return buildPage(pageHTML, pageCSS, pageJS) })

func (s *Server) handlePage(w http.ResponseWriter, r *http.Request) {
	p := thePage()
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", p.csp)
	h.Set("X-Content-Type-Options", "nosniff")
	// The token is in the page's URL: never send it to another site.
	h.Set("Referrer-Policy", "no-referrer")
	w.Write(p.body)
}
