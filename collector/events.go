package collector

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// Limits of POST /v1/events.
const (
	// MaxEventsPerRequest is how many events one request may carry. A
	// larger batch is refused whole (400), before anything is produced:
	// SDKs split their queues into batches of at most this many.
	MaxEventsPerRequest = 100
	// MaxEventsBody is the largest body accepted, in bytes (larger: 413).
	MaxEventsBody = 1 << 20
	// maxEventField bounds id, account, session, name, click_id and
	// app_version, in bytes.
	maxEventField = 256
	maxDeviceIDs  = 10
	maxEventParam = 64 // parameters per event
)

// Event statuses in the answer of POST /v1/events.
const (
	StatusAccepted = "accepted"
	StatusRejected = "rejected"
)

// eventJSON is one event as SDKs send it.
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
	Reason string `json:"reason,omitempty"`
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

// events serves POST /v1/events: it validates each event, produces the
// valid ones as one batch, and answers each event's status once Kafka has
// them all.
func (c *Collector) events(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	body, ok := readBody(w, r, MaxEventsBody)
	if !ok {
		return
	}
	raws, err := splitEvents(body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	switch {
	case len(raws) == 0:
		writeError(w, http.StatusBadRequest, "no events")
		return
	case len(raws) > MaxEventsPerRequest:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("too many events: %d, at most %d per request", len(raws), MaxEventsPerRequest))
		return
	}

	now := c.now()
	req, _ := c.requestInfo(r)
	results := make([]eventResult, len(raws))
	msgs := make([]*sarama.ProducerMessage, 0, len(raws))
	for i, raw := range raws {
		ev, err := parseEvent(raw, now)
		if err != nil {
			results[i] = eventResult{ID: probeID(raw), Status: StatusRejected, Reason: err.Error()}
			continue
		}
		ev.Request = req
		value, err := proto.Marshal(ev)
		if err != nil {
			results[i] = eventResult{ID: ev.Id, Status: StatusRejected, Reason: "cannot encode event"}
			continue
		}
		msgs = append(msgs, &sarama.ProducerMessage{
			Topic: string(topics.Events),
			Key:   sarama.StringEncoder(ev.Session),
			Value: sarama.ByteEncoder(value),
		})
		results[i] = eventResult{ID: ev.Id, Status: StatusAccepted}
	}
	if len(msgs) == 0 {
		writeJSON(w, http.StatusBadRequest, eventsAnswer{Error: "no valid event", Results: results})
		return
	}
	if err := c.producer.SendMessages(msgs); err != nil {
		// Some events may have been written: the SDK retries the batch with
		// the same ids, which the pipeline deduplicates.
		c.log.Warn("produce events", "events", len(msgs), "err", err)
		writeUnavailable(w, "cannot record the events, retry in a moment")
		return
	}
	writeJSON(w, http.StatusOK, eventsAnswer{Results: results})
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

// parseEvent decodes and checks one event; received is when the collector
// got it.
func parseEvent(raw json.RawMessage, received time.Time) (*livetabv1.Event, error) {
	if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
		return nil, errors.New("an event must be a JSON object")
	}
	var in eventJSON
	if err := decodeStrict(raw, &in); err != nil {
		return nil, err
	}
	for _, f := range []struct{ name, val string }{
		{"id", in.ID}, {"account", in.Account}, {"session", in.Session}, {"name", in.Name},
	} {
		if f.val == "" {
			return nil, errors.New("missing " + f.name)
		}
	}
	for _, f := range []struct{ name, val string }{
		{"id", in.ID}, {"session", in.Session}, {"name", in.Name}, {"click_id", in.ClickID}, {"app_version", in.AppVersion},
	} {
		if len(f.val) > maxEventField {
			return nil, fmt.Errorf("%s longer than %d bytes", f.name, maxEventField)
		}
	}
	if !namePattern.MatchString(in.Account) {
		return nil, errors.New("invalid account: must match " + namePattern.String())
	}
	at := received
	if in.Time != "" {
		t, err := time.Parse(time.RFC3339Nano, in.Time)
		if err != nil {
			return nil, fmt.Errorf("invalid time %q: must be RFC 3339, like 2026-11-22T10:00:00Z", in.Time)
		}
		at = t
	}
	platform := livetabv1.Platform_PLATFORM_UNSPECIFIED
	if in.Platform != "" {
		p, ok := platforms[strings.ToLower(in.Platform)]
		if !ok {
			return nil, fmt.Errorf("invalid platform %q: must be ios, android, web or other", in.Platform)
		}
		platform = p
	}
	if len(in.DeviceIDs) > maxDeviceIDs {
		return nil, fmt.Errorf("more than %d device_ids", maxDeviceIDs)
	}
	for _, d := range in.DeviceIDs {
		if d == "" || len(d) > maxDeviceID {
			return nil, fmt.Errorf("device_ids must have 1 to %d bytes each", maxDeviceID)
		}
	}
	if len(in.Params) > maxEventParam {
		return nil, fmt.Errorf("more than %d params", maxEventParam)
	}
	for k, v := range in.Params {
		if k == "" || len(k) > maxParamKey {
			return nil, fmt.Errorf("param names must have 1 to %d bytes", maxParamKey)
		}
		if len(v) > maxParamValue {
			return nil, fmt.Errorf("param %q: value longer than %d bytes", k, maxParamValue)
		}
	}
	return &livetabv1.Event{
		Id:         in.ID,
		Account:    in.Account,
		Session:    in.Session,
		Name:       in.Name,
		TimeUs:     at.UnixMicro(),
		ReceivedUs: received.UnixMicro(),
		Platform:   platform,
		AppVersion: in.AppVersion,
		DeviceIds:  in.DeviceIDs,
		ClickId:    in.ClickID,
		Params:     in.Params,
	}, nil
}

// probeID reads the id of an event that was rejected, when it has one, so
// that the client can tell which one it was.
func probeID(raw json.RawMessage) string {
	var probe struct {
		ID any `json:"id"`
	}
	if json.Unmarshal(raw, &probe) == nil {
		if s, ok := probe.ID.(string); ok {
			return clean(s, maxEventField)
		}
	}
	return ""
}
