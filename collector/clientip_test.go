package collector

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestClientIP(t *testing.T) {
	trusted := proxies{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("2001:db8:1::/48"), netip.MustParsePrefix("127.0.0.1/32")}
	tests := []struct {
		name      string
		proxies   proxies
		peer      string
		xff       []string
		forwarded []string
		want      string
	}{
		{name: "direct peer", proxies: trusted, peer: "203.0.113.5:4711", want: "203.0.113.5"},
		{name: "direct peer without port", proxies: trusted, peer: "203.0.113.5", want: "203.0.113.5"},
		{name: "direct IPv6 peer", proxies: trusted, peer: "[2001:db8:2::5]:443", want: "2001:db8:2::5"},
		{name: "IPv4-mapped peer", proxies: trusted, peer: "[::ffff:203.0.113.5]:80", want: "203.0.113.5"},
		{name: "spoofed XFF from untrusted peer", proxies: trusted, peer: "203.0.113.5:1", xff: []string{"198.51.100.1"}, want: "203.0.113.5"},
		{name: "spoofed Forwarded from untrusted peer", proxies: trusted, peer: "203.0.113.5:1", forwarded: []string{"for=198.51.100.1"}, want: "203.0.113.5"},
		{name: "no trusted proxies configured", proxies: nil, peer: "10.1.1.1:1", xff: []string{"198.51.100.1"}, want: "10.1.1.1"},
		{name: "trusted peer, one hop", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client-sent spoof left of the real client", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"1.2.3.4, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of trusted proxies skipped", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"198.51.100.1, 10.9.9.9, 10.0.0.3"}, want: "198.51.100.1"},
		{name: "several header lines read in order", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"1.2.3.4, 198.51.100.1", "10.0.0.3"}, want: "198.51.100.1"},
		{name: "all hops trusted: leftmost", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"10.0.0.7, 10.0.0.3"}, want: "10.0.0.7"},
		{name: "garbage hop stops at last trusted", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"198.51.100.1, garbage, 10.0.0.3"}, want: "10.0.0.3"},
		{name: "empty XFF entry stops the walk", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"198.51.100.1,,"}, want: "10.0.0.2"},
		{name: "hop with port", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"198.51.100.1:5555"}, want: "198.51.100.1"},
		{name: "IPv6 hop through trusted IPv6 proxy", proxies: trusted, peer: "[2001:db8:1::2]:1", xff: []string{"2001:db8:9::1"}, want: "2001:db8:9::1"},
		{name: "bracketed IPv6 hop with port", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"[2001:db8:9::1]:8080"}, want: "2001:db8:9::1"},
		{name: "Forwarded for=", proxies: trusted, peer: "10.0.0.2:1", forwarded: []string{"for=198.51.100.1;proto=https;by=10.0.0.2"}, want: "198.51.100.1"},
		{name: "Forwarded quoted IPv6 with port", proxies: trusted, peer: "10.0.0.2:1", forwarded: []string{`for="[2001:db8:9::1]:4711"`}, want: "2001:db8:9::1"},
		{name: "Forwarded several elements and lines", proxies: trusted, peer: "10.0.0.2:1", forwarded: []string{"for=1.2.3.4, for=198.51.100.1", "For=10.0.0.3"}, want: "198.51.100.1"},
		{name: "Forwarded unknown ends at trusted hop", proxies: trusted, peer: "10.0.0.2:1", forwarded: []string{"for=198.51.100.1, for=unknown, for=10.0.0.3"}, want: "10.0.0.3"},
		{name: "Forwarded element without for", proxies: trusted, peer: "10.0.0.2:1", forwarded: []string{"proto=https"}, want: "10.0.0.2"},
		{name: "XFF preferred over Forwarded", proxies: trusted, peer: "10.0.0.2:1", xff: []string{"198.51.100.1"}, forwarded: []string{"for=198.51.100.2"}, want: "198.51.100.1"},
		{name: "unparsable peer", proxies: trusted, peer: "@", xff: []string{"198.51.100.1"}, want: "invalid IP"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/l/acme/spring", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			for _, v := range tt.forwarded {
				r.Header.Add("Forwarded", v)
			}
			if got := tt.proxies.clientIP(r).String(); got != tt.want {
				t.Errorf("clientIP = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSecure(t *testing.T) {
	trusted := proxies{netip.MustParsePrefix("10.0.0.0/8")}
	tests := []struct {
		name   string
		peer   string
		header string
		value  string
		tls    bool
		want   bool
	}{
		{name: "plain", peer: "203.0.113.5:1"},
		{name: "tls", peer: "203.0.113.5:1", tls: true, want: true},
		{name: "proto from untrusted peer ignored", peer: "203.0.113.5:1", header: "X-Forwarded-Proto", value: "https"},
		{name: "X-Forwarded-Proto from trusted proxy", peer: "10.0.0.1:1", header: "X-Forwarded-Proto", value: "https", want: true},
		{name: "X-Forwarded-Proto http", peer: "10.0.0.1:1", header: "X-Forwarded-Proto", value: "http"},
		{name: "Forwarded proto", peer: "10.0.0.1:1", header: "Forwarded", value: "for=1.2.3.4;proto=https", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.peer
			if tt.header != "" {
				r.Header.Set(tt.header, tt.value)
			}
			if tt.tls {
				r.TLS = &tls.ConnectionState{}
			}
			if got := trusted.secure(r); got != tt.want {
				t.Errorf("secure = %v, want %v", got, tt.want)
			}
		})
	}
}
