package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// Event statuses in the answer of POST /v1/events.
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
)

// Codes of rejected events: the "code" of a rejected result, so that SDKs
// can act on it, and the reason label of the rejected-events metric. The
// result's "reason" says the same for people, naming the field.
const (
	// RejectMalformed: not an event object, a field of the wrong type, an
	// unknown field, a field the collector sets itself, or protobuf that
	// does not decode.
	RejectMalformed = "malformed"
	// RejectMissingField: id, account, session or name is missing or
	// empty.
	RejectMissingField = "missing_field"
	// RejectTooLong: a string over its limit (see limits.go).
	RejectTooLong = "too_long"
	// RejectTooManyParams: more than MaxEventParams params.
	RejectTooManyParams = "too_many_params"
	// RejectTooManyDeviceIDs: more than MaxDeviceIDs device_ids.
	RejectTooManyDeviceIDs = "too_many_device_ids"
	// RejectInvalidUTF8: a string (or a params name) that is not UTF-8.
	RejectInvalidUTF8 = "invalid_utf8"
	// RejectInvalidValue: a malformed account, time or platform, an empty
	// device id or param name.
	RejectInvalidValue = "invalid_value"
	// RejectUnknownAccount: the account has no link registered.
	RejectUnknownAccount = "unknown_account"
)

// eventError is why one event was rejected.
type eventError struct {
	code   string // one of the Reject constants
	reason string // for people; names the field
}

func (e *eventError) Error() string { return e.reason }

func rejectf(code, format string, args ...any) *eventError {
	return &eventError{code: code, reason: fmt.Sprintf(format, args...)}
}

// eventJSON is one event as SDKs send it in JSON.
type eventJSON struct {
	ID      string `json:"id"`
	Account string `json:"account"`
	Session string `json:"session"`
	Name    string `json:"name"`
	// Time is RFC 3339; empty means when the collector received it.
	Time       string            `json:"time"`
	Platform   string            `json:"platform"`
	AppVersion string            `json:"app_version"`
	DeviceIDs  []string          `json:"device_ids"`
	ClickID    string            `json:"click_id"`
	Params     map[string]string `json:"params"`
}

// eventResult is the fate of one event, in input order.
type eventResult struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Code   string `json:"code,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Warning says what the collector changed in an accepted event (a
	// clamped time).
	Warning string `json:"warning,omitempty"`
}

// eventsAnswer is the body of every answer to POST /v1/events that got as
// far as looking at the events; Error is set when none was accepted.
type eventsAnswer struct {
	Error   string        `json:"error,omitempty"`
	Results []eventResult `json:"results"`
}

var platforms = map[string]livetabv1.Platform{
	"ios":     livetabv1.Platform_PLATFORM_IOS,
	"android": livetabv1.Platform_PLATFORM_ANDROID,
	"web":     livetabv1.Platform_PLATFORM_WEB,
	"other":   livetabv1.Platform_PLATFORM_OTHER,
}

// rawEvent is one event of a request body, not decoded yet.
type rawEvent struct {
	data  []byte
	proto bool // a livetab.v1.Event in wire format, else a JSON value
}

func (r rawEvent) decode() (*livetabv1.Event, *eventError) {
	if r.proto {
		return decodeProtoEvent(r.data)
	}
	return decodeJSONEvent(r.data)
}

// id is the event's id as far as it can be read, for the answer.
func (r rawEvent) id() string {
	if r.proto {
		return probeProtoID(r.data)
	}
	return probeJSONID(r.data)
}

// events serves POST /v1/events: it checks each event, produces the valid
// ones as one batch (a record per app session, see eventMessages), and
// answers each event's fate once Kafka has them all. Nothing is produced
// unless at least one event is valid.
func (c *Collector) events(w http.ResponseWriter, r *http.Request) {
	mt, ok := requireMediaType(w, r, mediaJSON, mediaProtobuf)
	if !ok {
		return
	}
	body, ok := readBody(w, r, MaxEventsBody)
	if !ok {
		return
	}
	received := c.now()
	results, evs, err := parseEvents(mt, body, received)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if err := c.checkAccounts(results, evs); err != nil {
		if errors.Is(err, errNotReady) {
			writeUnavailable(w, "accounts are not loaded yet, retry in a moment")
			return
		}
		c.log.Error("check event accounts", "err", err)
		writeError(w, http.StatusInternalServerError, "cannot check accounts")
		return
	}

	// The events of a request share its headers: the Request is read and
	// encoded once, and every event's encoding ends with it.
	req, _ := c.requestInfo(r)
	msgs, accepted := c.eventMessages(results, evs, req, len(body))
	if len(msgs) == 0 {
		c.countRejected(results)
		status, reason := http.StatusBadRequest, "no valid event"
		if allUnknownAccount(results) {
			status, reason = http.StatusNotFound, "unknown account: no link is registered for it"
		}
		writeEventsAnswer(w, status, eventsAnswer{Error: reason, Results: results})
		return
	}
	if err := c.producer.SendMessagesContext(r.Context(), msgs); err != nil {
		// Some records may have been written, each with all its events:
		// the SDK retries the batch with the same ids, which the pipeline
		// deduplicates.
		c.log.Warn("produce events", "events", accepted, "records", len(msgs), "err", err)
		writeUnavailable(w, "cannot record the events, retry in a moment")
		return
	}
	c.countRejected(results)
	c.metrics.eventsAccepted(accepted)
	writeEventsAnswer(w, http.StatusOK, eventsAnswer{Results: results})
}

// parseEvents splits a body of media type mt into its events and checks
// each. evs[i] is the valid event of results[i], or nil when results[i]
// rejects it. A problem of the request as a whole (the body's shape, no
// events, too many) is an error, whose text is the answer's reason.
//
// A JSON body as SDKs send it is decoded in one pass (decodeJSONBatch);
// anything else takes the thorough path, which splits the body first and
// words each problem.
func parseEvents(mt string, body []byte, received time.Time) (results []eventResult, evs []*livetabv1.Event, err error) {
	if mt == mediaJSON {
		if ins, ok := decodeJSONBatch(body); ok {
			results, evs = checkJSONEvents(ins, received)
			return results, evs, nil
		}
	}
	return splitAndCheckEvents(mt, body, received)
}

// splitAndCheckEvents is parseEvents' thorough path: the body is split
// into its events first (splitBody), then each is decoded and checked on
// its own (checkEvents).
func splitAndCheckEvents(mt string, body []byte, received time.Time) (results []eventResult, evs []*livetabv1.Event, err error) {
	raws, err := splitBody(mt, body)
	switch {
	case err != nil:
		return nil, nil, err
	case len(raws) == 0:
		return nil, nil, errors.New("no events")
	case len(raws) > MaxEventsPerRequest:
		return nil, nil, fmt.Errorf("too many events: %d, at most %d per request", len(raws), MaxEventsPerRequest)
	}
	results, evs = checkEvents(raws, received)
	return results, evs, nil
}

// checkJSONEvents turns decoded JSON events into Events and checks each,
// as checkEvents does for raw ones.
func checkJSONEvents(ins []eventJSON, received time.Time) (results []eventResult, evs []*livetabv1.Event) {
	results = make([]eventResult, len(ins))
	evs = make([]*livetabv1.Event, len(ins))
	slab := make([]livetabv1.Event, len(ins))
	for i := range ins {
		ev := &slab[i]
		err := ins[i].fill(ev)
		warning := ""
		if err == nil {
			warning, err = checkEvent(ev, received)
		}
		if err != nil {
			// What probeJSONID reads from the event's JSON.
			results[i] = eventResult{ID: clean(ins[i].ID, MaxEventIDLen), Status: StatusRejected, Code: err.code, Reason: err.reason}
			continue
		}
		results[i] = eventResult{ID: ev.Id, Status: StatusAccepted, Warning: warning}
		evs[i] = ev
	}
	return results, evs
}

// splitBody splits a body of media type mt into its events.
func splitBody(mt string, body []byte) ([]rawEvent, error) {
	if mt == mediaProtobuf {
		datas, err := splitProtoEvents(body)
		raws := make([]rawEvent, len(datas))
		for i, d := range datas {
			raws[i] = rawEvent{data: d, proto: true}
		}
		return raws, err
	}
	datas, err := splitEvents(body)
	raws := make([]rawEvent, len(datas))
	for i, d := range datas {
		raws[i] = rawEvent{data: d}
	}
	return raws, err
}

// checkEvents decodes and checks each event. evs[i] is the valid event of
// raws[i], or nil when results[i] rejects it.
func checkEvents(raws []rawEvent, received time.Time) (results []eventResult, evs []*livetabv1.Event) {
	results = make([]eventResult, len(raws))
	evs = make([]*livetabv1.Event, len(raws))
	for i, raw := range raws {
		ev, err := raw.decode()
		warning := ""
		if err == nil {
			warning, err = checkEvent(ev, received)
		}
		if err != nil {
			results[i] = eventResult{ID: raw.id(), Status: StatusRejected, Code: err.code, Reason: err.reason}
			continue
		}
		results[i] = eventResult{ID: ev.Id, Status: StatusAccepted, Warning: warning}
		evs[i] = ev
	}
	return results, evs
}

// checkAccounts rejects the valid events whose account has no link.
func (c *Collector) checkAccounts(results []eventResult, evs []*livetabv1.Event) error {
	known := map[string]bool{}
	for i, ev := range evs {
		if ev == nil {
			continue
		}
		ok, seen := known[ev.Account]
		if !seen {
			var err error
			if ok, err = c.links.hasAccount(ev.Account); err != nil {
				return err
			}
			known[ev.Account] = ok
		}
		if !ok {
			results[i] = eventResult{ID: ev.Id, Status: StatusRejected, Code: RejectUnknownAccount,
				Reason: fmt.Sprintf("account: unknown account %q (no link is registered for it)", ev.Account)}
			evs[i] = nil
		}
	}
	return nil
}

func (c *Collector) countRejected(results []eventResult) {
	for _, r := range results {
		if r.Status == StatusRejected {
			c.metrics.eventRejected(r.Code)
		}
	}
}

// allUnknownAccount reports whether every event was rejected for its
// account: then the request as a whole is about an unknown account (404).
func allUnknownAccount(results []eventResult) bool {
	return !slices.ContainsFunc(results, func(r eventResult) bool { return r.Code != RejectUnknownAccount })
}

// splitEvents accepts one event object, an array of them, or
// {"events":[…]}, and returns the events' raw JSON. Only the body's shape
// is checked here; each event is checked on its own.
func splitEvents(body []byte) ([]json.RawMessage, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, errors.New("empty body")
	}
	if reason := jsonSyntaxError(body); reason != "" {
		return nil, errors.New(reason)
	}
	var raws []json.RawMessage
	switch trimmed[0] {
	case '[':
		if err := json.Unmarshal(trimmed, &raws); err != nil {
			return nil, describeJSONError(trimmed, err)
		}
	case '{':
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(trimmed, &obj); err != nil {
			return nil, describeJSONError(trimmed, err)
		}
		wrapped, ok := obj["events"]
		if !ok {
			return []json.RawMessage{trimmed}, nil
		}
		if len(obj) != 1 {
			return nil, errors.New(`an object with "events" is a wrapper and takes no other field`)
		}
		if w := bytes.TrimSpace(wrapped); len(w) == 0 || w[0] != '[' {
			return nil, errors.New(`"events" must be an array`)
		}
		if err := json.Unmarshal(wrapped, &raws); err != nil {
			return nil, describeJSONError(wrapped, err)
		}
	default:
		return nil, errors.New(`body must be an event object, an array of events, or {"events":[…]}`)
	}
	return raws, nil
}

// decodeJSONEvent decodes one JSON event into an Event, to be checked by
// checkEvent; an absent time is 0.
func decodeJSONEvent(raw []byte) (*livetabv1.Event, *eventError) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, rejectf(RejectMalformed, "an event must be a JSON object")
	}
	if path, isKey, found := invalidJSONString(raw); found {
		return nil, rejectf(RejectInvalidUTF8, "%s", invalidUTF8Reason(path, isKey))
	}
	var in eventJSON
	if err := decodeStrict(raw, &in); err != nil {
		return nil, rejectf(RejectMalformed, "%s", err.Error())
	}
	ev := &livetabv1.Event{}
	if err := in.fill(ev); err != nil {
		return nil, err
	}
	return ev, nil
}

// fill sets the fields of ev, a new Event, from in.
func (in *eventJSON) fill(ev *livetabv1.Event) *eventError {
	ev.Id, ev.Account, ev.Session, ev.Name = in.ID, in.Account, in.Session, in.Name
	ev.AppVersion, ev.DeviceIds, ev.ClickId, ev.Params = in.AppVersion, in.DeviceIDs, in.ClickID, in.Params
	if in.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Time)
		if err != nil {
			return rejectf(RejectInvalidValue, "time: %s is not RFC 3339, like 2026-11-22T10:00:00Z", quoteCut(in.Time))
		}
		ev.TimeUs = t.UnixMicro()
	}
	if in.Platform != "" {
		p, ok := platforms[strings.ToLower(in.Platform)]
		if !ok {
			return rejectf(RejectInvalidValue, "platform: %s is not ios, android, web or other", quoteCut(in.Platform))
		}
		ev.Platform = p
	}
	return nil
}

// checkEvent checks a decoded event against the limits and fills in its
// time; the first problem found is returned, naming the field. It does not
// look at the account's links (checkAccounts does).
func checkEvent(ev *livetabv1.Event, received time.Time) (warning string, err *eventError) {
	for _, f := range []struct{ name, val string }{
		{"id", ev.Id}, {"account", ev.Account}, {"session", ev.Session}, {"name", ev.Name},
	} {
		if f.val == "" {
			return "", rejectf(RejectMissingField, "missing %s", f.name)
		}
	}
	for _, f := range []struct {
		name, val string
		max       int
	}{
		{"id", ev.Id, MaxEventIDLen}, {"account", ev.Account, MaxNameLen}, {"session", ev.Session, MaxEventIDLen},
		{"name", ev.Name, MaxEventNameLen}, {"click_id", ev.ClickId, MaxEventIDLen}, {"app_version", ev.AppVersion, MaxAppVersionLen},
	} {
		if len(f.val) > f.max {
			return "", rejectf(RejectTooLong, "%s: %d bytes, at most %d", f.name, len(f.val), f.max)
		}
	}
	if !validName(ev.Account) {
		return "", rejectf(RejectInvalidValue, "account: %s does not match %s", quoteCut(ev.Account), namePattern)
	}
	if _, ok := livetabv1.Platform_name[int32(ev.Platform)]; !ok {
		return "", rejectf(RejectInvalidValue, "platform: unknown value %d", ev.Platform)
	}
	if len(ev.DeviceIds) > MaxDeviceIDs {
		return "", rejectf(RejectTooManyDeviceIDs, "device_ids: %d ids, at most %d", len(ev.DeviceIds), MaxDeviceIDs)
	}
	for i, d := range ev.DeviceIds {
		switch {
		case d == "":
			return "", rejectf(RejectInvalidValue, "device_ids[%d]: empty", i)
		case len(d) > MaxDeviceIDLen:
			return "", rejectf(RejectTooLong, "device_ids[%d]: %d bytes, at most %d", i, len(d), MaxDeviceIDLen)
		}
	}
	if len(ev.Params) > MaxEventParams {
		return "", rejectf(RejectTooManyParams, "params: %d entries, at most %d", len(ev.Params), MaxEventParams)
	}
	if err := checkParams(ev.Params); err != nil {
		return "", err
	}
	ev.ReceivedUs = received.UnixMicro()
	ev.TimeUs, warning = eventTime(ev.TimeUs, ev.ReceivedUs)
	return warning, nil
}

// checkParams checks an event's params against the limits.
func checkParams(params map[string]string) *eventError {
	bad := false
	for k, v := range params {
		if k == "" || len(k) > MaxParamKeyLen || len(v) > MaxParamValueLen {
			bad = true
			break
		}
	}
	if !bad {
		return nil
	}
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	slices.Sort(keys) // the first problem found is the same on every try
	for _, k := range keys {
		switch v := params[k]; {
		case k == "":
			return rejectf(RejectInvalidValue, "params: empty name")
		case len(k) > MaxParamKeyLen:
			return rejectf(RejectTooLong, "params: name %s has %d bytes, at most %d", quoteCut(k), len(k), MaxParamKeyLen)
		case len(v) > MaxParamValueLen:
			return rejectf(RejectTooLong, "params[%q]: %d bytes, at most %d", k, len(v), MaxParamValueLen)
		}
	}
	return nil
}

// eventTime is the time an event is recorded with, given the device's
// time (0: not sent) and when the collector received it: the device's
// time, unless the device's clock is evidently wrong — more than
// MaxClockSkew ahead of the collector's, or before MinEventTimeUs (a clock
// reset to 1970). Then the event is clamped to the time received, and the
// answer carries a warning.
//
// Clamped, not rejected: the event itself is real — an install on a phone
// with a wrong clock is still an install — and no retry can fix the
// device's clock, so a rejection would lose it for good. SDKs send events
// soon after they happen, so the receive time is the best estimate, and it
// keeps a session's timeline in order and attribution windows meaningful,
// which a time years ahead would break. Times in the past are otherwise
// kept: SDKs legitimately flush queues of events recorded offline.
func eventTime(deviceUs, receivedUs int64) (int64, string) {
	switch {
	case deviceUs == 0:
		return receivedUs, ""
	case deviceUs > receivedUs+MaxClockSkew.Microseconds():
		return receivedUs, fmt.Sprintf("time %s is more than %gh ahead of the collector's clock; recorded as the time received",
			formatUs(deviceUs), MaxClockSkew.Hours())
	case deviceUs < MinEventTimeUs:
		return receivedUs, fmt.Sprintf("time %s is before %s, the device's clock is wrong; recorded as the time received",
			formatUs(deviceUs), formatUs(MinEventTimeUs))
	}
	return deviceUs, ""
}

func formatUs(us int64) string {
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}

// quoteCut quotes a client's value for a reason, cut to a readable length.
func quoteCut(s string) string {
	const max = 64
	if len(s) > max {
		return strconv.Quote(clean(s, max)) + "…"
	}
	return strconv.Quote(s)
}

// probeJSONID reads the id of an event that was rejected, when it has
// one, so that the client can tell which one it was.
func probeJSONID(raw []byte) string {
	var probe struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		if s, ok := probe.ID.(string); ok {
			return clean(s, MaxEventIDLen)
		}
	}
	return ""
}
