package collector

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf16"
	"unicode/utf8"
)

// invalidJSONString finds the first string of data, a syntactically valid
// JSON value, that is not valid Unicode: raw bytes that are not UTF-8, or a
// \u escape of a lone UTF-16 surrogate. It returns the string's path (like
// `params["k"]` or `device_ids[2]`) and whether it is an object key;
// found is false when every string is valid.
//
// encoding/json silently turns both into U+FFFD, which would write a
// different value than the client sent; the collector rejects them
// instead, naming the field.
func invalidJSONString(data []byte) (path string, isKey, found bool) {
	if utf8.Valid(data) && !bytes.Contains(data, []byte(`\u`)) {
		return "", false, false // the common case: nothing to look at
	}
	type frame struct {
		object  bool
		wantKey bool
		key     string
		index   int
	}
	var stack []frame
	render := func(frames []frame) string {
		var b []byte
		for i, f := range frames {
			switch {
			case !f.object:
				b = append(b, '[')
				b = strconv.AppendInt(b, int64(f.index), 10)
				b = append(b, ']')
			case i == 0:
				b = append(b, f.key...)
			default:
				b = append(b, '[')
				b = strconv.AppendQuote(b, f.key)
				b = append(b, ']')
			}
		}
		return string(b)
	}
	afterValue := func() {
		if len(stack) == 0 {
			return
		}
		top := &stack[len(stack)-1]
		if top.object {
			top.wantKey = true
		} else {
			top.index++
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		start := dec.InputOffset()
		tok, err := dec.Token()
		if err != nil {
			// The end, or a syntax error, which the caller reports.
			return "", false, false
		}
		switch t := tok.(type) {
		case json.Delim:
			switch t {
			case '{':
				stack = append(stack, frame{object: true, wantKey: true})
			case '[':
				stack = append(stack, frame{})
			default:
				stack = stack[:len(stack)-1]
				afterValue()
			}
		case string:
			// Between two tokens are only spaces, ',' and ':': the first
			// quote opens this string.
			raw := data[start:dec.InputOffset()]
			raw = raw[bytes.IndexByte(raw, '"'):]
			key := len(stack) > 0 && stack[len(stack)-1].object && stack[len(stack)-1].wantKey
			if !validJSONStringLiteral(raw) {
				if key {
					return render(stack[:len(stack)-1]), true, true
				}
				return render(stack), false, true
			}
			if key {
				stack[len(stack)-1].key, stack[len(stack)-1].wantKey = t, false
			} else {
				afterValue()
			}
		default:
			afterValue()
		}
	}
}

// validJSONStringLiteral reports whether raw, one JSON string literal with
// its quotes, holds valid UTF-8 and no lone surrogate escape.
func validJSONStringLiteral(raw []byte) bool {
	s := raw[1 : len(raw)-1]
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == 'u':
			r, ok := hex4(s[i+2:])
			if !ok {
				return false
			}
			i += 6
			switch {
			case utf16.IsSurrogate(r) && r < 0xDC00: // high: a low one must follow
				if i+1 >= len(s) || s[i] != '\\' || s[i+1] != 'u' {
					return false
				}
				lo, ok := hex4(s[i+2:])
				if !ok || utf16.DecodeRune(r, lo) == utf8.RuneError {
					return false
				}
				i += 6
			case utf16.IsSurrogate(r):
				return false
			}
		case c == '\\':
			i += 2
		case c < utf8.RuneSelf:
			i++
		default:
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				return false
			}
			i += size
		}
	}
	return true
}

// hex4 reads the 4 hex digits of a \u escape.
func hex4(b []byte) (rune, bool) {
	if len(b) < 4 {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[:4]), 16, 16)
	return rune(n), err == nil
}

// invalidUTF8Reason words what invalidJSONString found.
func invalidUTF8Reason(path string, isKey bool) string {
	switch {
	case isKey && path == "":
		return "a field name is not valid UTF-8"
	case isKey:
		return path + ": a name is not valid UTF-8"
	}
	return path + ": not valid UTF-8"
}
