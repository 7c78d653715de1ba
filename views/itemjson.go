package views

import (
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// appendItemJSON appends the JSON of it to dst: the bytes json.Marshal produces
// for encodeItem(it), without reflection and without building the
// intermediate structures. It is the per-item encoding of the live
// stream, once for every view record; encodeItem and the *JSON structs
// in encode.go remain the reference it is tested against, so a field
// added there must be added here in the same place.
func appendItemJSON(dst []byte, it *livetabv1.ViewItem) []byte {
	dst = append(dst, `{"cursor":`...)
	dst = strconv.AppendUint(dst, it.GetCursor(), 10)
	dst = appendStringField(dst, `"account":`, it.GetAccount())
	dst = appendStringField(dst, `"kind":`, kindJSON(it))
	dst = appendStringField(dst, `"session":`, it.GetSession())
	dst = appendTimeField(dst, `"received_at":`, it.GetReceivedUs())
	if c := it.GetCounters(); c != nil {
		dst = append(dst, `,"counters":{"hits":`...)
		dst = strconv.AppendUint(dst, c.GetHits(), 10)
		dst = append(dst, `,"events":`...)
		dst = strconv.AppendUint(dst, c.GetEvents(), 10)
		dst = append(dst, `,"conversions":`...)
		dst = strconv.AppendUint(dst, c.GetConversions(), 10)
		dst = append(dst, '}')
	}
	if h := it.GetHit(); h != nil {
		dst = appendHitJSON(append(dst, `,"hit":`...), h)
	}
	if e := it.GetEvent(); e != nil {
		dst = appendEventJSON(append(dst, `,"event":`...), e)
	}
	if c := it.GetConversion(); c != nil {
		dst = appendConversionJSON(append(dst, `,"conversion":`...), c)
	}
	if cw := it.GetConvertedWith(); cw != nil {
		dst = append(dst, `,"converted_with":{`...)
		dst = appendStringField(dst, `"session":`, cw.GetSession())
		dst = appendStringField(dst, `"method":`, methodJSON(cw.GetMethod()))
		dst = appendStringField(dst, `"hit_id":`, cw.GetHitId())
		dst = appendTimeField(dst, `"at":`, cw.GetTimeUs())
		dst = append(dst, '}')
	}
	return append(dst, '}')
}

// appendHitJSON appends h as hitJSON.
func appendHitJSON(dst []byte, h *livetabv1.Hit) []byte {
	r := h.GetRequest()
	dst = append(dst, '{')
	dst = appendStringField(dst, `"id":`, h.GetId())
	dst = appendStringField(dst, `"link":`, h.GetLink())
	dst = appendStringField(dst, `"campaign":`, h.GetCampaign())
	dst = appendStringField(dst, `"click_id":`, h.GetClickId())
	dst = appendStringField(dst, `"session":`, h.GetSession())
	dst = appendStringField(dst, `"destination":`, h.GetDestination())
	dst = appendStringField(dst, `"deep_link":`, h.GetDeepLink())
	dst = appendStringField(dst, `"platform":`, platformJSON(h.GetPlatform()))
	dst = appendTimeField(dst, `"received_at":`, h.GetReceivedUs())
	dst = appendStringField(dst, `"ip":`, r.GetIp())
	dst = appendStringField(dst, `"user_agent":`, r.GetUserAgent())
	dst = appendStringField(dst, `"referrer":`, r.GetReferrer())
	dst = appendStringField(dst, `"accept_language":`, r.GetAcceptLanguage())
	dst = appendParamsField(dst, r.GetParams())
	return append(dst, '}')
}

// appendEventJSON appends e as eventJSON.
func appendEventJSON(dst []byte, e *livetabv1.Event) []byte {
	dst = append(dst, '{')
	dst = appendStringField(dst, `"id":`, e.GetId())
	dst = appendStringField(dst, `"name":`, e.GetName())
	dst = appendStringField(dst, `"session":`, e.GetSession())
	dst = appendTimeField(dst, `"time":`, e.GetTimeUs())
	dst = appendTimeField(dst, `"received_at":`, e.GetReceivedUs())
	dst = appendStringField(dst, `"platform":`, platformJSON(e.GetPlatform()))
	dst = appendStringField(dst, `"app_version":`, e.GetAppVersion())
	dst = appendStringField(dst, `"click_id":`, e.GetClickId())
	if ids := e.GetDeviceIds(); len(ids) > 0 {
		dst = appendKey(dst, `"device_ids":`)
		dst = append(dst, '[')
		for i, id := range ids {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = appendJSONString(dst, id)
		}
		dst = append(dst, ']')
	}
	dst = appendParamsField(dst, e.GetParams())
	dst = appendStringField(dst, `"ip":`, e.GetRequest().GetIp())
	dst = appendStringField(dst, `"user_agent":`, e.GetRequest().GetUserAgent())
	return append(dst, '}')
}

// appendConversionJSON appends c as conversionJSON.
func appendConversionJSON(dst []byte, c *livetabv1.Conversion) []byte {
	dst = append(dst, '{')
	dst = appendStringField(dst, `"id":`, c.GetId())
	dst = appendStringField(dst, `"hit_session":`, c.GetHitSession())
	dst = appendStringField(dst, `"app_session":`, c.GetAppSession())
	dst = appendStringField(dst, `"hit_id":`, c.GetHitId())
	dst = appendStringField(dst, `"event_id":`, c.GetEventId())
	dst = appendStringField(dst, `"click_id":`, c.GetClickId())
	dst = appendStringField(dst, `"method":`, methodJSON(c.GetMethod()))
	dst = appendTimeField(dst, `"time":`, c.GetTimeUs())
	dst = appendStringField(dst, `"link":`, c.GetLink())
	dst = appendStringField(dst, `"campaign":`, c.GetCampaign())
	dst = appendStringField(dst, `"deep_link":`, c.GetDeepLink())
	dst = appendTimeField(dst, `"hit_time":`, c.GetHitTimeUs())
	dst = appendTimeField(dst, `"event_time":`, c.GetEventTimeUs())
	// Durations are rare (conversions only): the string durationJSON
	// allocates is not worth a second formatter.
	dst = appendStringField(dst, `"window":`, durationJSON(c.GetWindowUs()))
	if n := c.GetCandidates(); n != 0 {
		dst = appendKey(dst, `"candidates":`)
		dst = strconv.AppendInt(dst, int64(n), 10)
	}
	dst = appendStringField(dst, `"hit_to_install":`, durationJSON(hitToInstallUs(c)))
	return append(dst, '}')
}

// appendKey appends key, a quoted name and its colon, preceded by a comma
// unless it is the first member of the object dst ends in. Every object
// is opened with '{' immediately before its first member and no value
// ends in '{', so the last byte tells.
func appendKey(dst []byte, key string) []byte {
	if dst[len(dst)-1] != '{' {
		dst = append(dst, ',')
	}
	return append(dst, key...)
}

// appendStringField appends a string member, omitted when empty (the
// omitempty of the *JSON structs).
func appendStringField(dst []byte, key, s string) []byte {
	if s == "" {
		return dst
	}
	return appendJSONString(appendKey(dst, key), s)
}

// appendTimeField appends a time member as timeJSON formats it, omitted
// when zero. It formats straight into dst instead of through timeJSON's
// string: the output of RFC 3339 in UTC is digits, '-', ':', 'T', '.'
// and 'Z' only (years out of range included), which JSON never escapes.
func appendTimeField(dst []byte, key string, us int64) []byte {
	if us == 0 {
		return dst
	}
	dst = append(appendKey(dst, key), '"')
	dst = time.UnixMicro(us).UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '"')
}

// appendParamsField appends a parameter map as encoding/json does, keys
// sorted by their bytes; an empty map is omitted.
func appendParamsField(dst []byte, m map[string]string) []byte {
	if len(m) == 0 {
		return dst
	}
	// Items carry a handful of parameters: room for them on the stack.
	var room [16]string
	keys := room[:0]
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = appendKey(dst, `"params":`)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = append(appendJSONString(dst, k), ':')
		dst = appendJSONString(dst, m[k])
	}
	return append(dst, '}')
}

const hexDigits = "0123456789abcdef"

// jsonSafe tells the bytes a JSON string holds as they are: ASCII but
// control characters, '"', '\\', and the HTML-unsafe '<', '>' and '&'.
// Bytes from utf8.RuneSelf up start a rune, checked on its own; the table
// covers them (false) so that any byte indexes it without a bounds check.
// It is a constant table, set once.
var jsonSafe = func() (safe [256]bool) {
	for b := byte(0x20); b < utf8.RuneSelf; b++ {
		safe[b] = b != '"' && b != '\\' && b != '<' && b != '>' && b != '&'
	}
	return safe
}()

// appendJSONString appends s quoted as encoding/json quotes strings by
// default: '"' and '\\' escaped with a backslash; \b \f \n \r \t by name;
// other control characters, and '<', '>' and '&' (HTML-safe), as \u00XX;
// U+2028 and U+2029 as \u2028 and \u2029; every byte of invalid UTF-8 as
// \ufffd. Everything else, DEL and valid non-ASCII included, is copied.
func appendJSONString(dst []byte, s string) []byte {
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		b := s[i]
		if b < utf8.RuneSelf {
			if jsonSafe[b] {
				// Runs of safe bytes are most of every string: skip them
				// in a loop of their own.
				for i++; i < len(s) && jsonSafe[s[i]]; i++ {
				}
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '"', '\\':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case c == utf8.RuneError && size == 1:
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
		case c == '\u2028' || c == '\u2029':
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
		default:
			i += size
			continue
		}
		i += size
		start = i
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
