package collector

import (
	"net/http"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// Bounds on what a request may put into a message. Clicks must never fail
// for a long query, so longer values are cut and further parameters dropped
// rather than rejected.
const (
	// MaxRequestParams is how many query parameters a message keeps (the
	// first ones by name).
	MaxRequestParams = 64
	// maxParamKey and maxParamValue bound each parameter, in bytes.
	maxParamKey   = 128
	maxParamValue = 1024
	// maxHeaderValue bounds user agent, referrer and accept-language.
	maxHeaderValue = 1024
)

// requestInfo is what r tells about its sender, as a livetab.v1 Request,
// and its parsed user agent.
func (c *Collector) requestInfo(r *http.Request) (*livetabv1.Request, userAgent) {
	ua := clean(r.UserAgent(), maxHeaderValue)
	parsed := c.ua.parse(ua)
	req := &livetabv1.Request{
		UserAgent:      ua,
		Referrer:       clean(r.Referer(), maxHeaderValue),
		AcceptLanguage: clean(r.Header.Get("Accept-Language"), maxHeaderValue),
		Params:         firstValues(r),
		Os:             parsed.OS,
		OsVersion:      parsed.OSVersion,
		Device:         parsed.Device,
		Browser:        parsed.Browser,
	}
	if ip := c.proxies.clientIP(r); ip.IsValid() {
		req.Ip = ip.String()
	}
	return req, parsed
}

// firstValues are the first value of each query parameter, at most
// MaxRequestParams of them, cleaned for protobuf.
func firstValues(r *http.Request) map[string]string {
	q := r.URL.Query()
	if len(q) == 0 {
		return nil
	}
	keys := make([]string, 0, len(q))
	for k := range q {
		if k != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	if len(keys) > MaxRequestParams {
		keys = keys[:MaxRequestParams]
	}
	params := make(map[string]string, len(keys))
	for _, k := range keys {
		params[clean(k, maxParamKey)] = clean(q[k][0], maxParamValue)
	}
	return params
}

// clean makes s fit a protobuf string of at most max bytes: invalid UTF-8
// (which proto.Marshal refuses) becomes U+FFFD, and the string is cut at a
// rune boundary.
func clean(s string, max int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= max {
		return s
	}
	cut := max
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}
