package collector

import (
	"regexp"
	"strings"

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

// userAgentParser reads a User-Agent header. The collector's own is a few
// heuristics; a real parser library can take its place behind this
// interface.
type userAgentParser interface {
	parse(ua string) userAgent
}

// heuristicUA recognises the common mobile and desktop user agents by their
// well-known tokens.
type heuristicUA struct{}

var (
	iosVersion     = regexp.MustCompile(`OS (\d+(?:_\d+)*) like Mac OS X`)
	androidVersion = regexp.MustCompile(`Android (\d+(?:\.\d+)*)`)
	macVersion     = regexp.MustCompile(`Mac OS X (\d+(?:[_.]\d+)*)`)
	windowsVersion = regexp.MustCompile(`Windows NT (\d+(?:\.\d+)*)`)
)

func (heuristicUA) parse(s string) userAgent {
	ua := userAgent{Platform: livetabv1.Platform_PLATFORM_WEB, Browser: browser(s)}
	switch {
	case strings.Contains(s, "iPhone"), strings.Contains(s, "iPad"), strings.Contains(s, "iPod"):
		ua.Platform, ua.OS = livetabv1.Platform_PLATFORM_IOS, "iOS"
		// iPods say "CPU iPhone OS", so iPhone comes last.
		for _, d := range []string{"iPad", "iPod", "iPhone"} {
			if strings.Contains(s, d) {
				ua.Device = d
				break
			}
		}
		if m := iosVersion.FindStringSubmatch(s); m != nil {
			ua.OSVersion = strings.ReplaceAll(m[1], "_", ".")
		}
	case strings.Contains(s, "Android"):
		ua.Platform, ua.OS = livetabv1.Platform_PLATFORM_ANDROID, "Android"
		if m := androidVersion.FindStringSubmatch(s); m != nil {
			ua.OSVersion = m[1]
		}
		ua.Device = androidModel(s)
	case strings.Contains(s, "Windows"):
		ua.OS = "Windows"
		if m := windowsVersion.FindStringSubmatch(s); m != nil {
			ua.OSVersion = m[1]
		}
	case strings.Contains(s, "Macintosh"), strings.Contains(s, "Mac OS X"):
		ua.OS = "macOS"
		if m := macVersion.FindStringSubmatch(s); m != nil {
			ua.OSVersion = strings.ReplaceAll(m[1], "_", ".")
		}
	case strings.Contains(s, "CrOS"):
		ua.OS = "ChromeOS"
	case strings.Contains(s, "Linux"):
		ua.OS = "Linux"
	}
	return ua
}

// androidModel is the device model of "Mozilla/5.0 (Linux; Android 14;
// Pixel 8 Build/AP1A) ...": the comment segment after the Android version.
// Chrome's reduced user agent says "K" there, which names nothing.
func androidModel(s string) string {
	open := strings.IndexByte(s, '(')
	end := strings.IndexByte(s, ')')
	if open < 0 || end < open {
		return ""
	}
	segs := strings.Split(s[open+1:end], ";")
	for i, seg := range segs {
		if strings.HasPrefix(strings.TrimSpace(seg), "Android") && i+1 < len(segs) {
			model := strings.TrimSpace(segs[i+1])
			if b := strings.Index(model, " Build/"); b >= 0 {
				model = model[:b]
			}
			if model == "K" || strings.HasPrefix(model, "wv") {
				return ""
			}
			return model
		}
	}
	return ""
}

// browser names the browser by the token that only it sends; the order
// matters because most browsers also claim to be Chrome or Safari.
func browser(s string) string {
	for _, b := range []struct{ token, name string }{
		{"Edg", "Edge"},
		{"OPR/", "Opera"},
		{"SamsungBrowser/", "Samsung Internet"},
		{"CriOS/", "Chrome"},
		{"FxiOS/", "Firefox"},
		{"Firefox/", "Firefox"},
		{"Chrome/", "Chrome"},
		{"Version/", "Safari"},
	} {
		if strings.Contains(s, b.token) {
			return b.name
		}
	}
	return ""
}
