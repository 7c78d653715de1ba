package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// errorBody is every error answer: {"error":"<reason>"}.
type errorBody struct {
	Error string `json:"error"`
}

// writeJSON answers status with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		// Only the collector's own types are written; failing here is a bug.
		status, b = http.StatusInternalServerError, []byte(`{"error":"cannot encode answer"}`)
	}
	writeJSONBytes(w, status, append(b, '\n'))
}

// writeJSONBytes answers status with b, JSON and a newline.
func writeJSONBytes(w http.ResponseWriter, status int, b []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	w.Write(b)
}

// writeEventsAnswer answers status with a, as writeJSON would, without
// going through reflection: every request to POST /v1/events gets one.
func writeEventsAnswer(w http.ResponseWriter, status int, a eventsAnswer) {
	writeJSONBytes(w, status, append(appendEventsAnswer(nil, a), '\n'))
}

// appendEventsAnswer appends a as json.Marshal writes it.
func appendEventsAnswer(b []byte, a eventsAnswer) []byte {
	if b == nil {
		// An accepted event's result takes about 60 bytes and its id.
		b = make([]byte, 0, 32+len(a.Error)+len(a.Results)*(64+32))
	}
	b = append(b, '{')
	if a.Error != "" {
		b = append(b, `"error":`...)
		b = appendJSONString(b, a.Error)
		b = append(b, ',')
	}
	b = append(b, `"results":`...)
	if a.Results == nil {
		return append(b, "null}"...)
	}
	b = append(b, '[')
	for i, r := range a.Results {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"id":`...)
		b = appendJSONString(b, r.ID)
		b = append(b, `,"status":`...)
		b = appendJSONString(b, r.Status)
		for _, f := range [...]struct{ name, val string }{{`,"code":`, r.Code}, {`,"reason":`, r.Reason}, {`,"warning":`, r.Warning}} {
			if f.val != "" {
				b = append(b, f.name...)
				b = appendJSONString(b, f.val)
			}
		}
		b = append(b, '}')
	}
	return append(b, "]}"...)
}

// appendJSONString appends s as encoding/json writes a string: as it is
// when it holds nothing to escape, which is what ids and statuses look
// like, else through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, err := json.Marshal(s)
			if err != nil {
				// A string always encodes.
				return append(b, `""`...)
			}
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

// writeError answers status with {"error": reason}.
func writeError(w http.ResponseWriter, status int, reason string) {
	writeJSON(w, status, errorBody{Error: reason})
}

// writeUnavailable answers 503 with Retry-After, for failures that a retry
// in a moment may not meet (Kafka down, view recovering).
func writeUnavailable(w http.ResponseWriter, reason string) {
	w.Header().Set("Retry-After", "1")
	writeError(w, http.StatusServiceUnavailable, reason)
}

// methodNotAllowed answers 405 in JSON for any method but allow, which the
// ServeMux would otherwise answer in plain text.
func methodNotAllowed(allow ...string) http.HandlerFunc {
	header := strings.Join(allow, ", ")
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", header)
		writeError(w, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, use %s", r.Method, header))
	}
}

// notFound answers 404 in JSON for paths under the collector's prefixes
// that match no route.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "no such route: "+r.URL.Path)
}

// Media types the collector reads.
const (
	mediaJSON = "application/json"
	// mediaProtobuf is the body of a livetab.v1 message; the collector also
	// takes application/protobuf, the name the IETF draft registers.
	mediaProtobuf = "application/x-protobuf"
)

// requireMediaType returns the request's media type when it is one of
// accepted, and otherwise answers 415 and returns false. JSON must be
// UTF-8: a charset parameter that says otherwise is refused too, as is a
// compressed body (Content-Encoding), which the collector does not
// inflate.
func requireMediaType(w http.ResponseWriter, r *http.Request, accepted ...string) (string, bool) {
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		w.Header().Set("Accept-Encoding", "identity")
		writeError(w, http.StatusUnsupportedMediaType, "content encoding "+strconv.Quote(ce)+" is not supported, send the body uncompressed")
		return "", false
	}
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if mt == "application/protobuf" {
		mt = mediaProtobuf
	}
	if err == nil && slices.Contains(accepted, mt) {
		if cs, ok := params["charset"]; ok && mt == mediaJSON && !strings.EqualFold(cs, "utf-8") {
			writeError(w, http.StatusUnsupportedMediaType, "JSON must be UTF-8, not charset "+strconv.Quote(cs))
			return "", false
		}
		return mt, true
	}
	writeError(w, http.StatusUnsupportedMediaType, "content type must be "+strings.Join(accepted, " or "))
	return "", false
}

// requireJSON answers 415 unless the request says its body is JSON.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	_, ok := requireMediaType(w, r, mediaJSON)
	return ok
}

// readBody reads at most limit bytes of the body. It answers 413 for a
// larger body and 400 for one that cannot be read, and then returns false.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 && n <= limit {
		// One allocation when the client says how long the body is:
		// ReadFrom wants MinRead bytes of room to see the end.
		buf.Grow(int(n) + bytes.MinRead)
	}
	_, err := buf.ReadFrom(http.MaxBytesReader(w, r.Body, limit))
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", limit))
		return nil, false
	case err != nil:
		writeError(w, http.StatusBadRequest, "cannot read body: "+err.Error())
		return nil, false
	}
	return buf.Bytes(), true
}

// jsonSyntaxError describes where data stops being valid JSON, or returns
// "" when it is valid.
func jsonSyntaxError(data []byte) string {
	if json.Valid(data) {
		return ""
	}
	var v any
	err := json.Unmarshal(data, &v)
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("malformed JSON at %s: %s", syntaxPosition(data, se), se.Error())
	}
	if err != nil {
		return "malformed JSON: " + err.Error()
	}
	return ""
}

// syntaxPosition renders where encoding/json stopped: its Offset counts
// the bytes read, the last of which was the offending one.
func syntaxPosition(data []byte, se *json.SyntaxError) string {
	return position(data, max(se.Offset-1, 0))
}

// position renders the byte at offset of data as line and column
// (1-based), the way an editor shows it.
func position(data []byte, offset int64) string {
	if offset > int64(len(data)) {
		offset = int64(len(data))
	}
	line, col := 1, 1
	for _, c := range data[:offset] {
		if c == '\n' {
			line, col = line+1, 1
		} else {
			col++
		}
	}
	return "line " + strconv.Itoa(line) + ", column " + strconv.Itoa(col) + " (byte " + strconv.FormatInt(offset, 10) + ")"
}

// decodeStrict decodes one JSON value from data into v, rejecting unknown
// fields and trailing data, and says what was wrong in terms a client can
// act on.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return describeJSONError(data, err)
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// describeJSONError turns encoding/json's errors into a reason.
func describeJSONError(data []byte, err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Errorf("malformed JSON at %s: %s", syntaxPosition(data, se), se.Error())
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return fmt.Errorf("expected %s, got JSON %s", jsonKind(te.Type.String()), te.Value)
		}
		return fmt.Errorf("field %q: expected %s, got JSON %s", field, jsonKind(te.Type.String()), te.Value)
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		// encoding/json has no type for this error.
		return errors.New(strings.TrimPrefix(err.Error(), "json: "))
	case errors.Is(err, io.EOF):
		return errors.New("empty JSON")
	}
	return fmt.Errorf("invalid JSON: %w", err)
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(goType string) string {
	switch {
	case goType == "string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["), strings.Contains(goType, "."):
		return "an object"
	case strings.HasPrefix(goType, "int"), strings.HasPrefix(goType, "uint"), strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "a boolean"
	}
	return goType
}
