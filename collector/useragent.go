package collector

import (
	"strings"

	"github.com/mssola/useragent"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// userAgent is what the collector reads from a User-Agent header.
type userAgent struct {
	Platform  livetabv1.Platform
	OS        string
	OSVersion string
	Device    string
	Browser   string
}

// userAgentParser reads a User-Agent header.
type userAgentParser interface {
	parse(ua string) userAgent
}

// mssolaUA parses user agents with github.com/mssola/useragent and maps
// its answers onto livetab's platforms and the names people know ("iOS",
// "macOS", "Samsung Internet").
type mssolaUA struct{}

// Bounds on the parsed names; the header itself is at most MaxHeaderLen.
const maxUAPart = 128

func (mssolaUA) parse(s string) (ua userAgent) {
	defer func() {
		// A click must never fail for its headers: should the library
		// trip over one (FuzzUserAgent found none), the visitor is an
		// unknown client and still redirected.
		if recover() != nil {
			ua = userAgent{Platform: livetabv1.Platform_PLATFORM_OTHER}
		}
	}()
	p := useragent.New(s)
	info := p.OSInfo()
	ua = userAgent{
		Platform:  livetabv1.Platform_PLATFORM_OTHER,
		OS:        info.Name,
		OSVersion: info.Version,
	}
	platform := p.Platform()
	switch {
	case strings.HasPrefix(platform, "iPhone"), strings.HasPrefix(platform, "iPad"), strings.HasPrefix(platform, "iPod"):
		ua.Platform, ua.OS = livetabv1.Platform_PLATFORM_IOS, "iOS"
		ua.Device, _, _ = strings.Cut(platform, " ") // "iPod touch": iPod
	case info.Name == "Android":
		ua.Platform = livetabv1.Platform_PLATFORM_ANDROID
		ua.Device = androidModel(p.Model())
	case p.Bot():
		// Link checkers and crawlers: OTHER, so that they do not count as
		// web visitors.
		ua.OS, ua.OSVersion = "", ""
	case p.Mozilla() != "":
		ua.Platform = livetabv1.Platform_PLATFORM_WEB
		switch {
		case info.Name == "Mac OS X":
			ua.OS = "macOS"
		case strings.HasPrefix(info.Name, "CrOS"):
			ua.OS = "ChromeOS"
		}
	}
	// Anything else (curl, an SDK's HTTP client, no header) stays OTHER.
	ua.Browser = browserName(s, p)
	ua.OS, ua.OSVersion = clean(ua.OS, maxUAPart), clean(ua.OSVersion, maxUAPart)
	ua.Device, ua.Browser = clean(ua.Device, maxUAPart), clean(ua.Browser, maxUAPart)
	return ua
}

// androidModel drops what the library reports as a model but is none:
// Chrome's reduced user agent says "K", WebViews add "wv".
func androidModel(m string) string {
	if m == "K" || m == "wv" || strings.HasPrefix(m, "Android") {
		return ""
	}
	return m
}

// browserName is the library's browser name, except for browsers it
// mistakes for another one: they are told by a token only they send.
func browserName(s string, p *useragent.UserAgent) string {
	for _, b := range []struct{ token, name string }{
		{"SamsungBrowser/", "Samsung Internet"},
		{"Instagram ", "Instagram"},
		{"FBAN/", "Facebook"},
		{"FBAV/", "Facebook"},
	} {
		if strings.Contains(s, b.token) {
			return b.name
		}
	}
	name, _ := p.Browser()
	return name
}

// uaCache remembers what parser made of the user agents seen last, so that
// the same browser or SDK build is parsed once, not on every request: a
// few dozen user agents make most of any traffic, and parsing one costs
// more than the rest of a hit.
type uaCache struct {
	parser userAgentParser
	cache  *stringCache[userAgent]
}

// defaultUACacheSize is the entries of one generation of the collector's
// cache (see stringCache): user agents are at most MaxHeaderLen bytes, so
// the cache holds at most about 2 MB of them.
const defaultUACacheSize = 1024

func newUACache(p userAgentParser, size int) *uaCache {
	return &uaCache{parser: p, cache: newStringCache[userAgent](size)}
}

func (c *uaCache) parse(s string) userAgent {
	if ua, ok := c.cache.get(s); ok {
		return ua
	}
	// Parsed outside the cache's lock: two requests may parse the same
	// new user agent at once, which costs less than making every request
	// wait.
	ua := c.parser.parse(s)
	c.cache.put(s, ua)
	return ua
}
