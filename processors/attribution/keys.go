package attribution

import (
	"slices"
	"strings"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// Config is the matching cascade's configuration. Zero fields take the
// defaults below.
type Config struct {
	// ClickWindow: a hit and an install with the same click id match when
	// received at most this far apart (either order). Default 7 days.
	ClickWindow time.Duration
	// DeviceWindow: a hit whose device id the install carries matches
	// when received at most this long before the install. Default 7 days.
	DeviceWindow time.Duration
	// FingerprintWindow: a hit with the install's fingerprint matches when
	// received at most this long before the install. Default 24 hours.
	FingerprintWindow time.Duration
	// Grace is how long an install without a click-id match waits for
	// late hits before it is decided, after its received time, judged on
	// the clock topic's ticks. Default 10 seconds.
	Grace time.Duration
}

// Defaults of Config.
const (
	DefaultClickWindow       = 7 * 24 * time.Hour
	DefaultDeviceWindow      = 7 * 24 * time.Hour
	DefaultFingerprintWindow = 24 * time.Hour
	DefaultGrace             = 10 * time.Second
)

// WithDefaults returns c with its zero (or negative) fields set to the
// defaults.
func (c Config) WithDefaults() Config {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.ClickWindow, DefaultClickWindow)
	def(&c.DeviceWindow, DefaultDeviceWindow)
	def(&c.FingerprintWindow, DefaultFingerprintWindow)
	def(&c.Grace, DefaultGrace)
	return c
}

// Window is the lookback window of method m (zero for an unknown method).
func (c Config) Window(m livetabv1.MatchMethod) time.Duration {
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return c.ClickWindow
	case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
		return c.DeviceWindow
	case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
		return c.FingerprintWindow
	}
	return 0
}

// InstallLike reports whether an event with this name can convert: the
// install itself, or the app's first open after it.
func InstallLike(name string) bool { return name == "install" || name == "first_open" }

// Key namespaces of the attribution table. Timer keys ("t:") belong to
// package timers.
const (
	clickPrefix       = "c:"
	devicePrefix      = "d:"
	fingerprintPrefix = "f:"
	appPrefix         = "a:"
)

// escape keeps key components free of '/' (topics.Hasher partitions by the
// part before the first '/'), of the ':' and '|' that separate components,
// and injective, so that two different ids never share a key.
var escape = strings.NewReplacer("%", "%25", "/", "%2F", ":", "%3A", "|", "%7C").Replace

// ClickKey is the match key of a click id.
func ClickKey(clickID string) string { return clickPrefix + escape(clickID) }

// DeviceKey is the match key of a device id of an account.
func DeviceKey(account, deviceID string) string {
	return devicePrefix + escape(account) + ":" + escape(deviceID)
}

// FingerprintKey is the match key of a fingerprint (see Fingerprint) of
// an account.
func FingerprintKey(account, fingerprint string) string {
	return fingerprintPrefix + escape(account) + ":" + fingerprint
}

// AppKey is the key of an app session.
func AppKey(session string) string { return appPrefix + escape(session) }

// keyMethod is the method of a match key, or MATCH_METHOD_UNSPECIFIED.
func keyMethod(key string) livetabv1.MatchMethod {
	switch {
	case strings.HasPrefix(key, clickPrefix):
		return livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID
	case strings.HasPrefix(key, devicePrefix):
		return livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID
	case strings.HasPrefix(key, fingerprintPrefix):
		return livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT
	}
	return livetabv1.MatchMethod_MATCH_METHOD_UNSPECIFIED
}

// Fingerprint is the normalised client of a request,
// "<ip>|<os>|<os major.minor>|<device>", each part escaped like a key
// component and lower-cased. A request without IP or OS has none: an IP
// alone is too weak a signal to pair anything.
func Fingerprint(r *livetabv1.Request) (string, bool) {
	ip := strings.ToLower(strings.TrimSpace(r.GetIp()))
	os := strings.ToLower(strings.TrimSpace(r.GetOs()))
	if ip == "" || os == "" {
		return "", false
	}
	parts := []string{ip, os, NormalizeOSVersion(r.GetOsVersion()), strings.ToLower(strings.TrimSpace(r.GetDevice()))}
	for i, p := range parts {
		parts[i] = escape(p)
	}
	return strings.Join(parts, "|"), true
}

// NormalizeOSVersion reduces an OS version to "major.minor": "17.4.1" and
// "17_4_1" become "17.4", "17" becomes "17.0"; browsers and apps report
// patch levels differently for the same device. A version that does not
// start with a number is only lower-cased.
func NormalizeOSVersion(v string) string {
	v = strings.ToLower(strings.TrimSpace(v))
	parts := strings.FieldsFunc(v, func(r rune) bool { return r == '.' || r == '_' })
	if len(parts) == 0 || !numeric(parts[0]) {
		return v
	}
	minor := "0"
	if len(parts) > 1 && numeric(parts[1]) {
		minor = parts[1]
	}
	return trimZeros(parts[0]) + "." + trimZeros(minor)
}

func numeric(s string) bool {
	return s != "" && strings.IndexFunc(s, func(r rune) bool { return r < '0' || r > '9' }) < 0
}

func trimZeros(s string) string {
	if t := strings.TrimLeft(s, "0"); t != "" {
		return t
	}
	return "0"
}

// HitKeys are the match keys a hit is looped to: its click id, its device
// id and its fingerprint, those it has.
func HitKeys(h *livetabv1.Hit) []string {
	var keys []string
	if h.GetClickId() != "" {
		keys = append(keys, ClickKey(h.GetClickId()))
	}
	if h.GetDeviceId() != "" {
		keys = append(keys, DeviceKey(h.GetAccount(), h.GetDeviceId()))
	}
	if fp, ok := Fingerprint(h.GetRequest()); ok {
		keys = append(keys, FingerprintKey(h.GetAccount(), fp))
	}
	return keys
}

// InstallKeys are the match keys an install-like event asks: its click
// id, each of its device ids and its fingerprint, those it has.
func InstallKeys(e *livetabv1.Event) []string {
	var keys []string
	if e.GetClickId() != "" {
		keys = append(keys, ClickKey(e.GetClickId()))
	}
	for _, d := range e.GetDeviceIds() {
		if k := DeviceKey(e.GetAccount(), d); d != "" && !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	if fp, ok := Fingerprint(e.GetRequest()); ok {
		keys = append(keys, FingerprintKey(e.GetAccount(), fp))
	}
	return keys
}
