package attribution_test

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
)

func TestConfigDefaults(t *testing.T) {
	got := attribution.Config{Grace: time.Minute, FingerprintWindow: -time.Hour}.WithDefaults()
	want := attribution.Config{ClickWindow: 7 * day, DeviceWindow: 7 * day, FingerprintWindow: day, Grace: time.Minute}
	if got != want {
		t.Errorf("WithDefaults = %+v, want %+v", got, want)
	}
	for m, w := range map[livetabv1.MatchMethod]time.Duration{byClick: 7 * day, byDevice: 7 * day, byFingerprint: day, 0: 0} {
		if got := want.Window(m); got != w {
			t.Errorf("Window(%v) = %v, want %v", m, got, w)
		}
	}
}

func TestInstallLike(t *testing.T) {
	for name, want := range map[string]bool{"install": true, "first_open": true, "open": false, "purchase": false, "": false, "reinstall": false} {
		if got := attribution.InstallLike(name); got != want {
			t.Errorf("InstallLike(%q) = %v, want %v", name, got, want)
		}
	}
}

func TestNormalizeOSVersion(t *testing.T) {
	tests := map[string]string{
		"17.4.1":  "17.4",
		"17_4_1":  "17.4",
		"17.4":    "17.4",
		"17":      "17.0",
		" 14 ":    "14.0",
		"10.15.7": "10.15",
		"017.04":  "17.4",
		"17.x":    "17.0",
		"":        "",
		"Vista":   "vista",
		"NT 10.0": "nt 10.0",
	}
	for in, want := range tests {
		if got := attribution.NormalizeOSVersion(in); got != want {
			t.Errorf("NormalizeOSVersion(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	tests := []struct {
		name string
		req  *livetabv1.Request
		want string
		ok   bool
	}{
		{"browser", browserReq, "203.0.113.7|ios|17.4|iphone", true},
		{"app, other case and patch", appReq, "203.0.113.7|ios|17.4|iphone", true},
		{"android model", &livetabv1.Request{Ip: "198.51.100.1", Os: "Android", OsVersion: "14", Device: "Pixel 8"}, "198.51.100.1|android|14.0|pixel 8", true},
		{"ipv6 and separators are escaped", &livetabv1.Request{Ip: "2001:DB8::1", Os: "a/b", Device: "x|y"}, "2001%3Adb8%3A%3A1|a%2Fb||x%7Cy", true},
		{"no ip", &livetabv1.Request{Os: "iOS"}, "", false},
		{"no os", &livetabv1.Request{Ip: "203.0.113.7"}, "", false},
		{"no request", nil, "", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := attribution.Fingerprint(tt.req)
			if got != tt.want || ok != tt.ok {
				t.Errorf("Fingerprint = %q, %v; want %q, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestKeys(t *testing.T) {
	h := hit("h1", 0, click("c/1"), device("dev:1"), from(browserReq))
	gotHit := attribution.HitKeys(h)
	wantHit := []string{"c:c%2F1", "d:acme:dev%3A1", "f:acme:203.0.113.7|ios|17.4|iphone"}
	if !slices.Equal(gotHit, wantHit) {
		t.Errorf("HitKeys = %v, want %v", gotHit, wantHit)
	}
	e := install("e1", "app/1", 0, withClick("c/1"), withDevices("dev:1", "", "idfv", "dev:1"), withReq(appReq))
	gotEv := attribution.InstallKeys(e)
	wantEv := []string{"c:c%2F1", "d:acme:dev%3A1", "d:acme:idfv", "f:acme:203.0.113.7|ios|17.4|iphone"}
	if !slices.Equal(gotEv, wantEv) {
		t.Errorf("InstallKeys = %v, want %v", gotEv, wantEv)
	}
	if got := attribution.HitKeys(hit("h0", 0)); len(got) != 0 {
		t.Errorf("a hit without click id, device id or request has keys %v", got)
	}
	if got := attribution.AppKey("app/1"); got != "a:app%2F1" {
		t.Errorf("AppKey = %q", got)
	}
	// Escaping is injective: ids that differ never share a key, and no
	// key has a '/' (the partitioner would cut it there).
	if attribution.ClickKey("a/b") == attribution.ClickKey("a%2Fb") || attribution.DeviceKey("a:b", "c") == attribution.DeviceKey("a", "b:c") {
		t.Error("two different ids share a key")
	}
	for _, k := range append(gotHit, gotEv...) {
		if strings.Contains(k, "/") {
			t.Errorf("key %q contains '/'", k)
		}
	}
}
