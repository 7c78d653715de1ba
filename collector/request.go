package collector

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// requestInfo is what r tells about its sender, as a livetab.v1 Request,
// and its parsed user agent.
func (c *Collector) requestInfo(r *http.Request) (*livetabv1.Request, userAgent) {
	ua := clean(r.UserAgent(), MaxHeaderLen)
	parsed := c.ua.parse(ua)
	req := &livetabv1.Request{
		UserAgent:      ua,
		Referrer:       clean(r.Referer(), MaxHeaderLen),
		AcceptLanguage: clean(r.Header.Get("Accept-Language"), MaxHeaderLen),
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

// firstValues are the first value of each query parameter, for the first
// MaxRequestParams names in the order the URL has them, cleaned for
// protobuf. Unlike url.ParseQuery, a parameter with a bad %-escape or a
// ';' is kept, as written, rather than dropped: customers' macros are
// whatever their ad networks put there.
func firstValues(r *http.Request) map[string]string {
	var params map[string]string
	for seg := range strings.SplitSeq(r.URL.RawQuery, "&") {
		if len(params) == MaxRequestParams {
			break
		}
		k, v, _ := strings.Cut(seg, "=")
		if k = clean(unescapeLoose(k), MaxParamKeyLen); k == "" {
			continue
		}
		if params == nil {
			params = map[string]string{}
		}
		if _, ok := params[k]; !ok {
			params[k] = clean(unescapeLoose(v), MaxParamValueLen)
		}
	}
	return params
}

// queryValue is the first value of parameter name in rawQuery, unescaped
// like firstValues does, and whether there was one.
func queryValue(rawQuery, name string) (string, bool) {
	for seg := range strings.SplitSeq(rawQuery, "&") {
		k, v, _ := strings.Cut(seg, "=")
		if unescapeLoose(k) == name {
			return unescapeLoose(v), true
		}
	}
	return "", false
}

// unescapeLoose query-unescapes s, or returns it as it is when it is not
// validly escaped.
func unescapeLoose(s string) string {
	if u, err := url.QueryUnescape(s); err == nil {
		return u
	}
	return s
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
