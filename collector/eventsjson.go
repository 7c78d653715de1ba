package collector

import (
	"bytes"
	"unicode/utf16"
	"unicode/utf8"
)

// decodeJSONBatch decodes a JSON body of events — one event object, an
// array of them or {"events":[…]} — in a single pass over the body, the way
// SDKs send them. It takes only what it decodes exactly as the thorough
// path does (splitEvents, then decodeJSONEvent for each event): an event's
// own fields, each at most once and spelled as documented, with string
// values (or null), device_ids an array of strings, params an object of
// strings, and strings valid Unicode. Anything else — a syntax error, an
// unknown or repeated field, a field name in other case, a value of
// another type, invalid UTF-8 or a lone surrogate, no events, more than
// MaxEventsPerRequest — makes ok false, and the caller takes the thorough
// path, which words the problem for the client. FuzzJSONBatch holds the
// two paths together.
//
// The strings of the events share one copy of the body, unless they have
// escapes.
func decodeJSONBatch(body []byte) (events []eventJSON, ok bool) {
	s := batchScanner{data: body, str: string(body)}
	s.ws()
	switch s.peek() {
	case '[':
		events, ok = s.array(newEvents(body))
	case '{':
		start := s.off
		s.off++
		s.ws()
		if key, isKey := s.string(); isKey && key == "events" {
			// The wrapper takes no other field.
			if !s.consume(':') {
				return nil, false
			}
			s.ws()
			if s.peek() != '[' {
				return nil, false
			}
			if events, ok = s.array(newEvents(body)); !ok || !s.consume('}') {
				return nil, false
			}
			break
		}
		s.off = start
		events = make([]eventJSON, 1)
		ok = s.event(&events[0])
	default:
		return nil, false
	}
	s.ws()
	if !ok || s.off != len(s.data) || len(events) == 0 || len(events) > MaxEventsPerRequest {
		return nil, false
	}
	return events, true
}

// newEvents is room for the events of body: each opens with a '{', and so
// do their params. A guess: the array grows if it is short.
func newEvents(body []byte) []eventJSON {
	n := bytes.Count(body, []byte{'{'}) - bytes.Count(body, []byte(`"params":{`))
	return make([]eventJSON, 0, min(max(n, 1), MaxEventsPerRequest))
}

// batchScanner reads a JSON body strictly: every method reports false on
// input it does not take, and the scan is then abandoned.
type batchScanner struct {
	data []byte
	str  string // data, as a string that decoded strings share
	off  int
	// lists holds the device_ids of the events read so far, one after
	// the other, so that they take one allocation rather than one each.
	lists []string
}

// ws skips JSON whitespace.
func (s *batchScanner) ws() {
	for s.off < len(s.data) {
		switch s.data[s.off] {
		case ' ', '\t', '\n', '\r':
			s.off++
		default:
			return
		}
	}
}

// peek is the byte at the scan's position, or 0 at the end.
func (s *batchScanner) peek() byte {
	if s.off < len(s.data) {
		return s.data[s.off]
	}
	return 0
}

// consume skips whitespace and then c, reporting whether c was there.
func (s *batchScanner) consume(c byte) bool {
	s.ws()
	if s.peek() != c {
		return false
	}
	s.off++
	return true
}

// null skips a null literal, reporting whether there was one.
func (s *batchScanner) null() bool {
	if len(s.data)-s.off >= 4 && string(s.data[s.off:s.off+4]) == "null" {
		s.off += 4
		return true
	}
	return false
}

// array reads an array of event objects at the scan's position, appending
// them to events. It gives up beyond MaxEventsPerRequest: the thorough
// path refuses the request.
func (s *batchScanner) array(events []eventJSON) ([]eventJSON, bool) {
	s.off++ // '['
	if s.consume(']') {
		return events, true
	}
	for {
		s.ws()
		if s.peek() != '{' || len(events) == MaxEventsPerRequest {
			return nil, false
		}
		events = append(events, eventJSON{})
		if !s.event(&events[len(events)-1]) {
			return nil, false
		}
		if s.consume(',') {
			continue
		}
		if s.consume(']') {
			return events, true
		}
		return nil, false
	}
}

// Bits of the fields an event has set, to turn down repeated ones.
const (
	fieldID = 1 << iota
	fieldAccount
	fieldSession
	fieldName
	fieldTime
	fieldPlatform
	fieldAppVersion
	fieldDeviceIDs
	fieldClickID
	fieldParams
)

// event reads one event object at the scan's position into in.
func (s *batchScanner) event(in *eventJSON) bool {
	s.off++ // '{'
	if s.consume('}') {
		return true
	}
	seen := 0
	for {
		s.ws()
		key, ok := s.string()
		if !ok || !s.consume(':') {
			return false
		}
		s.ws()
		var bit int
		var dst *string
		switch key {
		case "id":
			bit, dst = fieldID, &in.ID
		case "account":
			bit, dst = fieldAccount, &in.Account
		case "session":
			bit, dst = fieldSession, &in.Session
		case "name":
			bit, dst = fieldName, &in.Name
		case "time":
			bit, dst = fieldTime, &in.Time
		case "platform":
			bit, dst = fieldPlatform, &in.Platform
		case "app_version":
			bit, dst = fieldAppVersion, &in.AppVersion
		case "click_id":
			bit, dst = fieldClickID, &in.ClickID
		case "device_ids":
			bit = fieldDeviceIDs
		case "params":
			bit = fieldParams
		default:
			return false
		}
		if seen&bit != 0 {
			return false
		}
		seen |= bit
		switch {
		case s.null():
			// Absent, as encoding/json leaves a field that is null.
		case dst != nil:
			if *dst, ok = s.string(); !ok {
				return false
			}
		case bit == fieldDeviceIDs:
			if in.DeviceIDs, ok = s.strings(); !ok {
				return false
			}
		default:
			if in.Params, ok = s.stringMap(); !ok {
				return false
			}
		}
		if s.consume(',') {
			continue
		}
		return s.consume('}')
	}
}

// strings reads an array of strings.
func (s *batchScanner) strings() ([]string, bool) {
	if s.peek() != '[' {
		return nil, false
	}
	s.off++
	if s.lists == nil {
		s.lists = make([]string, 0, 32)
	}
	start := len(s.lists)
	if s.consume(']') {
		return s.lists[start:start:start], true
	}
	for {
		s.ws()
		v, ok := s.string()
		if !ok {
			return nil, false
		}
		if len(s.lists) == cap(s.lists) {
			// A new backing array: the lists handed out keep the old one.
			grown := make([]string, len(s.lists)-start, 2*cap(s.lists))
			copy(grown, s.lists[start:])
			s.lists, start = grown, 0
		}
		s.lists = append(s.lists, v)
		if s.consume(',') {
			continue
		}
		// The list's capacity ends with it: appending to it never
		// reaches the next one.
		return s.lists[start:len(s.lists):len(s.lists)], s.consume(']')
	}
}

// stringMap reads an object of strings; a name given twice keeps its last
// value, as encoding/json does.
func (s *batchScanner) stringMap() (map[string]string, bool) {
	if s.peek() != '{' {
		return nil, false
	}
	s.off++
	m := map[string]string{}
	if s.consume('}') {
		return m, true
	}
	for {
		s.ws()
		k, ok := s.string()
		if !ok || !s.consume(':') {
			return nil, false
		}
		s.ws()
		v, ok := s.string()
		if !ok {
			return nil, false
		}
		m[k] = v
		if s.consume(',') {
			continue
		}
		return m, s.consume('}')
	}
}

// string reads a string literal: a slice of the body when it has no
// escapes. Control characters, invalid UTF-8 and lone surrogates are not
// taken.
func (s *batchScanner) string() (string, bool) {
	if s.peek() != '"' {
		return "", false
	}
	start := s.off + 1
	ascii := true
	for i := start; i < len(s.data); i++ {
		switch c := s.data[i]; {
		case c == '"':
			v := s.str[start:i]
			if !ascii && !utf8.ValidString(v) {
				return "", false
			}
			s.off = i + 1
			return v, true
		case c == '\\':
			return s.unescape(start, i)
		case c < 0x20:
			return "", false
		case c >= utf8.RuneSelf:
			ascii = false
		}
	}
	return "", false
}

// unescape reads the rest of a string literal that opened at start and
// has its first escape at i.
func (s *batchScanner) unescape(start, i int) (string, bool) {
	b := make([]byte, 0, i-start+16)
	b = append(b, s.data[start:i]...)
	for i < len(s.data) {
		c := s.data[i]
		switch {
		case c == '"':
			// Escapes decode to whole runes, never to a continuation byte,
			// so b is valid exactly when the raw parts are.
			if !utf8.Valid(b) {
				return "", false
			}
			s.off = i + 1
			return string(b), true
		case c < 0x20:
			return "", false
		case c != '\\':
			b = append(b, c)
			i++
			continue
		}
		if i+1 >= len(s.data) {
			return "", false
		}
		switch e := s.data[i+1]; e {
		case '"', '\\', '/':
			b = append(b, e)
		case 'b':
			b = append(b, '\b')
		case 'f':
			b = append(b, '\f')
		case 'n':
			b = append(b, '\n')
		case 'r':
			b = append(b, '\r')
		case 't':
			b = append(b, '\t')
		case 'u':
			r, ok := hexRune(s.data[i+2:])
			if !ok {
				return "", false
			}
			if utf16.IsSurrogate(r) {
				// Only a high surrogate followed by a low one is a rune.
				rest := s.data[i+6:]
				if r >= 0xDC00 || len(rest) < 2 || rest[0] != '\\' || rest[1] != 'u' {
					return "", false
				}
				lo, ok := hexRune(rest[2:])
				if !ok {
					return "", false
				}
				if r = utf16.DecodeRune(r, lo); r == utf8.RuneError {
					return "", false
				}
				i += 6
			}
			b = utf8.AppendRune(b, r)
			i += 6
			continue
		default:
			return "", false
		}
		i += 2
	}
	return "", false
}

// hexRune reads the four hex digits of a \u escape.
func hexRune(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range b[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c -= 'a' - 10
		case 'A' <= c && c <= 'F':
			c -= 'A' - 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}
