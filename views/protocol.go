package views

import (
	"encoding/json"
	"errors"
	"fmt"
)

// The live protocol (GET /v1/live). Every frame is one JSON text message
// with a "type"; clients ignore fields and types they do not know.
//
// The connection starts with a snapshot (the newest ≤100 items matching
// the filters), or with a cursor with a resume (every matching item after
// it) or, when the history no longer holds it, a skipped frame and a
// snapshot. Then come item frames (new items, oldest first; an item of an
// older cursor only when it newly matches, such as an install whose
// conversion paired it with the filtered session), update frames (a new
// version of an item the client was sent), and a stats frame every
// second. Item and update frames that are ready at once go out as one
// batch frame, {"type":"batch","frames":[…]}, in order (see
// liveConn.writeBatch); a lone one goes out as itself. The client may
// send subscribe messages (new filters, with or without a cursor) and
// token messages (a refreshed token, acknowledged with a token frame); a
// bad one gets an error frame. Without filters a busy account's stream
// is sampled by session (see sample.go).
//
// Close codes: 1008 "too slow: outgoing queue full", 1008 "token expired",
// 1008 "too many bad messages" (after maxStrikes error frames), 1009 for
// a message beyond clientHardLimit, 1001 on shutdown.

// Error codes of error frames.
const (
	codeBadMessage  = "bad_message"
	codeTooLarge    = "too_large"
	codeRateLimited = "rate_limited"
	codeBadFilter   = "bad_filter"
	codeForbidden   = "forbidden"
)

// Reasons of skipped frames.
const (
	reasonTooOld = "cursor older than the retained history"
	reasonAhead  = "cursor newer than the newest item"
)

// snapshotFrame is the account's newest items that match the filters,
// oldest first: the first frame of a connection without a cursor, and the
// answer to a subscribe message without one.
type snapshotFrame struct {
	Type     string       `json:"type"` // "snapshot"
	Account  string       `json:"account"`
	Items    []rawJSON    `json:"items"`
	Counters countersJSON `json:"counters"`
	Filters  filtersJSON  `json:"filters"`
	// Sampled says that the stream is sampled: no filter is set and the
	// account sends more than the sample rate.
	Sampled bool `json:"sampled"`
	// Cursor is the account's newest cursor: the client has every item up
	// to it that it is to be shown. It resumes from the larger of this and
	// the newest cursor it received.
	Cursor uint64 `json:"cursor"`
}

// resumeFrame is every item after the client's cursor that matches the
// filters, oldest first; live items follow without a gap or a duplicate.
type resumeFrame struct {
	Type     string       `json:"type"` // "resume"
	Account  string       `json:"account"`
	Items    []rawJSON    `json:"items"`
	Counters countersJSON `json:"counters"`
	Filters  filtersJSON  `json:"filters"`
	Sampled  bool         `json:"sampled"`
	Cursor   uint64       `json:"cursor"`
}

// skippedFrame says that the server cannot resume from the client's
// cursor; a snapshot follows.
type skippedFrame struct {
	Type   string `json:"type"` // "skipped"
	After  uint64 `json:"after"`
	Oldest uint64 `json:"oldest"`
	Reason string `json:"reason"`
}

// statsFrame is sent every Options.StatsInterval.
type statsFrame struct {
	Type string `json:"type"` // "stats"
	// ArrivingPerS is the account's arriving rate (new items per second,
	// the moving average sampling uses); ShowingPerS the rate of new items
	// this client is sent (a moving average over about 4 s).
	ArrivingPerS float64 `json:"arriving_per_s"`
	ShowingPerS  float64 `json:"showing_per_s"`
	Sampled      bool    `json:"sampled"`
	// DelayMS is the median, over the last 64 new items sent to this
	// client, of the time from the collector receiving the item to the
	// server writing it to this client; 0 before the first.
	DelayMS int64 `json:"delay_ms"`
	// Lag is the view consumer's lag: the view topic's high watermarks
	// minus the offsets consumed, summed over partitions.
	Lag      int64        `json:"lag"`
	Counters countersJSON `json:"counters"`
	// Cursor is as in snapshotFrame: every item up to it that this client
	// is to be shown was sent before this frame.
	Cursor uint64 `json:"cursor"`
}

// errorFrame answers a client message the server did not accept.
type errorFrame struct {
	Type  string `json:"type"` // "error"
	Error string `json:"error"`
	Code  string `json:"code"`
}

// tokenFrame acknowledges a token refresh.
type tokenFrame struct {
	Type string `json:"type"` // "token"
	// Expires is when the new token expires (RFC 3339); absent when it
	// does not.
	Expires string `json:"expires,omitempty"`
}

// clientMessage is a client frame: {"type":"subscribe","filters":{…},
// "cursor":N} or {"type":"token","token":"…"}.
type clientMessage struct {
	Type    string          `json:"type"`
	Filters json.RawMessage `json:"filters"`
	Cursor  *uint64         `json:"cursor"`
	Token   string          `json:"token"`
}

// errClient is wrapped by a client message's problems; clientError
// carries the code.
var errClient = errors.New("bad client message")

type clientError struct {
	code string
	msg  string
}

func (e *clientError) Error() string { return e.msg }
func (e *clientError) Unwrap() error { return errClient }

func newClientError(code, format string, args ...any) *clientError {
	return &clientError{code: code, msg: fmt.Sprintf(format, args...)}
}

// The item frames, {"type":"item","item":…} and {"type":"update",…}: an
// item's JSON is wrapped once, and the frame shared by every subscriber.
const (
	itemPrefix   = `{"type":"item","item":`
	updatePrefix = `{"type":"update","item":`
)

func wrapItem(prefix string, item []byte) []byte {
	b := make([]byte, 0, len(prefix)+len(item)+1)
	b = append(b, prefix...)
	b = append(b, item...)
	return append(b, '}')
}

// mustJSON encodes a frame of the types above, which always encode.
func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only a bug gets here: say so on the wire rather than panic.
		return []byte(`{"type":"error","error":"internal error encoding a frame","code":"internal"}`)
	}
	return b
}
