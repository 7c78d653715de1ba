package bench

import (
	"bytes"
	"encoding/json"
	"time"
)

// Frame types of the live stream (README, "Views").
const (
	frameSnapshot = "snapshot"
	frameResume   = "resume"
	frameSkipped  = "skipped"
	frameItem     = "item"
	frameUpdate   = "update"
	frameStats    = "stats"
	frameError    = "error"
	frameBatch    = "batch"
)

// frameType reads a frame's "type" without decoding the rest: the server
// writes it first. A frame written otherwise is decoded.
func frameType(b []byte) string {
	const prefix = `{"type":"`
	if bytes.HasPrefix(b, []byte(prefix)) {
		rest := b[len(prefix):]
		if i := bytes.IndexByte(rest, '"'); i >= 0 {
			return string(rest[:i])
		}
	}
	var f struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(b, &f) != nil {
		return ""
	}
	return f.Type
}

// batchFrames calls fn with each frame of a batch frame,
// {"type":"batch","frames":[f1,f2,…]}: several item and update frames the
// server had ready at once, to be handled in order as if each had come
// alone. It reports false for a frame that is not a well-formed batch;
// the frames before the fault were handed to fn.
func batchFrames(b []byte, fn func(frame []byte)) bool {
	const key = `"frames":[`
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return false
	}
	b = b[i+len(key):]
	if splitItemFrames(b, fn) {
		return true
	}
	return splitFrames(b, fn)
}

// itemFrameSep is where one item or update frame of a batch ends and the
// next begins. It only ever occurs outside JSON strings: its quote is not
// escaped, and is followed by type":" as only an opening quote can be.
// So inside a frame it would take an array of objects with "type" as
// their first key, which items do not have.
const itemFrameSep = `},{"type":"`

// splitItemFrames is the fast way through a batch frame's frames (b
// starts after its "frames":[), for the batches the views write: it
// splits at itemFrameSep with bytes.Index, and hands the frames to fn only
// when each has the shape of an item or update frame. Otherwise it reports
// false without calling fn, and splitFrames does the work.
func splitItemFrames(b []byte, fn func([]byte)) bool {
	end := len(b) - len(`]}`)
	if end < 0 || string(b[end:]) != `]}` {
		return false
	}
	b = b[:end]
	// The frames' ends, found first so that fn sees nothing of a batch
	// that turns out to be something else.
	var ends [maxFastFrames]int
	n := 0
	for from := 0; ; {
		k := bytes.Index(b[from:], []byte(itemFrameSep))
		if k < 0 {
			break
		}
		if n == len(ends)-1 {
			return false
		}
		ends[n] = from + k + 1
		n++
		from += k + 2
	}
	ends[n] = len(b)
	n++
	start := 0
	for _, e := range ends[:n] {
		f := b[start:e]
		if !(bytes.HasPrefix(f, []byte(`{"type":"item","item":{`)) || bytes.HasPrefix(f, []byte(`{"type":"update","item":{`))) ||
			!bytes.HasSuffix(f, []byte(`}}`)) {
			return false
		}
		start = e + 1
	}
	start = 0
	for _, e := range ends[:n] {
		fn(b[start:e])
		start = e + 1
	}
	return true
}

// maxFastFrames bounds the frames splitItemFrames takes on (the views
// send at most 64 in a batch).
const maxFastFrames = 256

// splitFrames finds the frames of a batch (b starts after its
// "frames":[) by their nesting outside JSON strings, which are skipped
// with IndexByte.
func splitFrames(b []byte, fn func([]byte)) bool {
	depth, start := 0, 0
	for j := 0; j < len(b); j++ {
		switch b[j] {
		case '"':
			end, ok := stringEnd(b, j+1)
			if !ok {
				return false
			}
			j = end
		case '{', '[':
			if depth == 0 {
				start = j
			}
			depth++
		case '}', ']':
			if depth == 0 {
				// The end of the frames: only the batch's closing brace
				// may follow.
				return b[j] == ']' && bytes.Equal(bytes.TrimSpace(b[j+1:]), []byte("}"))
			}
			if depth--; depth == 0 {
				fn(b[start : j+1])
			}
		}
	}
	return false
}

// stringEnd is the index of the quote that closes the JSON string whose
// content starts at b[from].
func stringEnd(b []byte, from int) (int, bool) {
	for {
		k := bytes.IndexByte(b[from:], '"')
		if k < 0 {
			return 0, false
		}
		q := from + k
		// The quote is escaped when an odd number of backslashes precede
		// it.
		n := 0
		for p := q - 1; p >= from && b[p] == '\\'; p-- {
			n++
		}
		if n%2 == 0 {
			return q, true
		}
		from = q + 1
	}
}

// itemInfo is what the generator needs of one item.
type itemInfo struct {
	cursor  uint64
	account []byte
	kind    []byte
	// receivedUs is the item's received_at (collector accept), emittedUs
	// its emitted_at when the server exposes it (0 otherwise); Unix µs.
	receivedUs int64
	emittedUs  int64
}

// scanItem reads an item frame's fields (emitted_at only when emitted is
// set) without decoding the whole item:
// at 200,000 deliveries a second a full decode would make the generator,
// which shares the machine, the bottleneck. The item's own fields come
// before its payload (hit, event, conversion), whose keys repeat some of
// their names; keys cannot occur inside JSON strings (their quotes would
// be escaped), so the first match of each key is the item's.
func scanItem(b []byte, emitted bool) (itemInfo, bool) {
	const prefix = `{"type":"item","item":{`
	if bytes.HasPrefix(b, []byte(prefix)) {
		b = b[len(prefix)-1:]
	} else if i := bytes.Index(b, []byte(`"item":{`)); i >= 0 {
		b = b[i+len(`"item":`):]
	} else {
		return itemInfo{}, false
	}
	// The views write the item's own fields in this order; each is looked
	// for after the previous one, so the frame is scanned about once.
	var it itemInfo
	c, n, ok := scanNumber(b, `"cursor":`)
	if !ok || c == 0 {
		return itemInfo{}, false
	}
	it.cursor = c
	pos := n
	field := func(key string) []byte {
		v, end, ok := scanString(b[pos:], key)
		if !ok {
			// Out of order: look from the start.
			if v, end, ok = scanString(b, key); !ok {
				return nil
			}
			return v
		}
		pos += end
		return v
	}
	it.account = field(`"account":"`)
	it.kind = field(`"kind":"`)
	rec := field(`"received_at":"`)
	if rec == nil {
		return itemInfo{}, false
	}
	if it.receivedUs, ok = parseTimeUs(rec); !ok {
		return itemInfo{}, false
	}
	// emitted_at, when a server sends it, is among the item's own fields
	// next to received_at: look there only, not through the payload.
	if !emitted {
		return it, true
	}
	if em, _, ok := scanString(b[pos:min(len(b), pos+256)], `"emitted_at":"`); ok {
		it.emittedUs, _ = parseTimeUs(em)
	}
	return it, true
}

// parseTimeUs parses an RFC 3339 time as Unix microseconds. The views
// write UTC with a Z and up to nine fraction digits, which is parsed
// without allocating; anything else goes through time.Parse.
func parseTimeUs(b []byte) (int64, bool) {
	// 2006-01-02T15:04:05[.fraction]Z
	if len(b) >= 20 && b[len(b)-1] == 'Z' && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' {
		num := func(s []byte) (int, bool) {
			n := 0
			for _, c := range s {
				if c < '0' || c > '9' {
					return 0, false
				}
				n = n*10 + int(c-'0')
			}
			return n, true
		}
		y, ok1 := num(b[0:4])
		mo, ok2 := num(b[5:7])
		d, ok3 := num(b[8:10])
		h, ok4 := num(b[11:13])
		mi, ok5 := num(b[14:16])
		sec, ok6 := num(b[17:19])
		ns, okF := 0, true
		if frac := b[19 : len(b)-1]; len(frac) > 0 {
			if frac[0] != '.' || len(frac) > 10 || len(frac) < 2 {
				okF = false
			} else {
				n, ok := num(frac[1:])
				for range 10 - len(frac) {
					n *= 10
				}
				ns, okF = n, ok
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && okF {
			return time.Date(y, time.Month(mo), d, h, mi, sec, ns, time.UTC).UnixMicro(), true
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return 0, false
	}
	return t.UnixMicro(), true
}

// scanString is the value of the first key (given with its opening quote
// of the value) in b, and where the value ends; values with escapes are
// returned escaped.
func scanString(b []byte, key string) (value []byte, end int, ok bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return nil, 0, false
	}
	start := i + len(key)
	rest := b[start:]
	for j := 0; j < len(rest); j++ {
		switch rest[j] {
		case '\\':
			j++
		case '"':
			return rest[:j], start + j + 1, true
		}
	}
	return nil, 0, false
}

// scanNumber is the unsigned number after key in b, and where it ends.
func scanNumber(b []byte, key string) (n uint64, end int, ok bool) {
	i := bytes.Index(b, []byte(key))
	if i < 0 {
		return 0, 0, false
	}
	start := i + len(key)
	rest := b[start:]
	j := 0
	for ; j < len(rest) && rest[j] >= '0' && rest[j] <= '9'; j++ {
		if j == 19 {
			return 0, 0, false // beyond what a cursor can be
		}
		n = n*10 + uint64(rest[j]-'0')
	}
	return n, start + j, j > 0
}

// listFrame is a snapshot or resume frame: only the items' positions
// matter to the generator.
type listFrame struct {
	Items []struct {
		Cursor uint64 `json:"cursor"`
		Kind   string `json:"kind"`
	} `json:"items"`
}

// statsFrame is the server's periodic report on a connection.
type statsFrame struct {
	ArrivingPerS float64 `json:"arriving_per_s"`
	ShowingPerS  float64 `json:"showing_per_s"`
	Sampled      bool    `json:"sampled"`
	DelayMs      float64 `json:"delay_ms"`
	Lag          int64   `json:"lag"`
}
