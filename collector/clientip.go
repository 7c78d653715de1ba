package collector

import (
	"errors"
	"net/http"
	"net/netip"
	"strings"
)

// proxies are the networks whose forwarding headers the collector believes.
type proxies []netip.Prefix

func (p proxies) trusted(a netip.Addr) bool {
	if !a.IsValid() {
		return false
	}
	for _, pre := range p {
		if pre.Contains(a) {
			return true
		}
	}
	return false
}

// peerAddr is the address of the direct peer, or the zero Addr when
// RemoteAddr is not an IP (a unix socket, a test that left it empty).
func peerAddr(r *http.Request) netip.Addr {
	return parseHop(r.RemoteAddr)
}

// clientIP is the address of the client that sent r: the direct peer,
// unless the peer is a trusted proxy. Then X-Forwarded-For (or, without it,
// the for= parameters of Forwarded) is walked from the right, skipping
// trusted proxies, and the first untrusted address is the client. A hop
// that is not an address (garbage, "unknown", an obfuscated name) ends the
// walk at the last address that was trusted, as nothing further left can be
// believed. Headers from untrusted peers are ignored: anyone can send them.
func (p proxies) clientIP(r *http.Request) netip.Addr {
	peer := peerAddr(r)
	if !p.trusted(peer) {
		return peer
	}
	hops := forwardedFor(r.Header)
	client := peer
	for i := len(hops) - 1; i >= 0; i-- {
		a := parseHop(hops[i])
		if !a.IsValid() {
			break
		}
		client = a
		if !p.trusted(a) {
			break
		}
	}
	return client
}

// secure reports whether the client reached the collector over HTTPS: r came
// over TLS, or a trusted proxy says it terminated HTTPS.
func (p proxies) secure(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	if !p.trusted(peerAddr(r)) {
		return false
	}
	if proto := r.Header.Get("X-Forwarded-Proto"); proto != "" {
		return strings.EqualFold(strings.TrimSpace(proto), "https")
	}
	protos := forwardedParam(r.Header.Values("Forwarded"), "proto")
	return len(protos) > 0 && strings.EqualFold(protos[len(protos)-1], "https")
}

// forwardedFor lists the hops a request went through, client first:
// X-Forwarded-For when present, else Forwarded's for= parameters.
func forwardedFor(h http.Header) []string {
	if xff := h.Values("X-Forwarded-For"); len(xff) > 0 {
		var hops []string
		for _, line := range xff {
			for hop := range strings.SplitSeq(line, ",") {
				hops = append(hops, strings.TrimSpace(hop))
			}
		}
		return hops
	}
	return forwardedParam(h.Values("Forwarded"), "for")
}

// forwardedParam returns the values of parameter name in every element of
// RFC 7239 Forwarded header lines, in order, unquoted. An element without
// the parameter yields "", which ends a walk over the hops.
func forwardedParam(lines []string, name string) []string {
	var vals []string
	for _, line := range lines {
		for _, elem := range splitQuoted(line, ',') {
			val := ""
			for _, pair := range splitQuoted(elem, ';') {
				k, v, ok := strings.Cut(strings.TrimSpace(pair), "=")
				if ok && strings.EqualFold(strings.TrimSpace(k), name) {
					val = unquote(strings.TrimSpace(v))
					break
				}
			}
			vals = append(vals, val)
		}
	}
	return vals
}

// splitQuoted splits s at sep outside of double-quoted strings.
func splitQuoted(s string, sep byte) []string {
	var parts []string
	start, quoted, escaped := 0, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case escaped:
			escaped = false
		case c == '\\' && quoted:
			escaped = true
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

func unquote(s string) string {
	if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
		s = s[1 : len(s)-1]
		s = strings.ReplaceAll(s, `\"`, `"`)
		s = strings.ReplaceAll(s, `\\`, `\`)
	}
	return s
}

// errHasPort stands for netip.ParseAddr's error on an address with a
// port.
var errHasPort = errors.New("address with a port")

// parseHop parses one address as proxies write them: "192.0.2.1",
// "192.0.2.1:4711", "2001:db8::1", "[2001:db8::1]:4711". IPv4-mapped IPv6
// addresses become IPv4 and zones are dropped, so that prefixes match
// however the address was written. Anything else is the zero Addr.
func parseHop(s string) netip.Addr {
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Addr{}
	}
	var a netip.Addr
	err := errHasPort
	// With one colon and no brackets, s is no address but may be an
	// address and port (RemoteAddr always is): skip the attempt, whose
	// error costs an allocation on every request.
	if strings.Count(s, ":") != 1 || strings.ContainsAny(s, "[]") {
		a, err = netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(s, "["), "]"))
	}
	if err != nil {
		ap, err := netip.ParseAddrPort(s)
		if err != nil {
			return netip.Addr{}
		}
		a = ap.Addr()
	}
	return a.Unmap().WithZone("")
}
