package views

import (
	"maps"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// The JSON shapes below are livetab's public wire format: the live stream,
// the timeline API and the page all read them. Field names are fixed; empty
// fields are omitted. Times are RFC 3339 with nanoseconds, in UTC.

// itemJSON is a view item as clients see it.
type itemJSON struct {
	Cursor        uint64             `json:"cursor"`
	Account       string             `json:"account,omitempty"`
	Kind          string             `json:"kind,omitempty"`
	Session       string             `json:"session,omitempty"`
	ReceivedAt    string             `json:"received_at,omitempty"`
	Counters      *countersJSON      `json:"counters,omitempty"`
	Hit           *hitJSON           `json:"hit,omitempty"`
	Event         *eventJSON         `json:"event,omitempty"`
	Conversion    *conversionJSON    `json:"conversion,omitempty"`
	ConvertedWith *convertedWithJSON `json:"converted_with,omitempty"`
}

// countersJSON always carries its three fields, zeros included.
type countersJSON struct {
	Hits        uint64 `json:"hits"`
	Events      uint64 `json:"events"`
	Conversions uint64 `json:"conversions"`
}

type hitJSON struct {
	ID             string            `json:"id,omitempty"`
	Link           string            `json:"link,omitempty"`
	Campaign       string            `json:"campaign,omitempty"`
	ClickID        string            `json:"click_id,omitempty"`
	Session        string            `json:"session,omitempty"`
	Destination    string            `json:"destination,omitempty"`
	DeepLink       string            `json:"deep_link,omitempty"`
	Platform       string            `json:"platform,omitempty"`
	ReceivedAt     string            `json:"received_at,omitempty"`
	IP             string            `json:"ip,omitempty"`
	UserAgent      string            `json:"user_agent,omitempty"`
	Referrer       string            `json:"referrer,omitempty"`
	AcceptLanguage string            `json:"accept_language,omitempty"`
	Params         map[string]string `json:"params,omitempty"`
}

type eventJSON struct {
	ID         string            `json:"id,omitempty"`
	Name       string            `json:"name,omitempty"`
	Session    string            `json:"session,omitempty"`
	Time       string            `json:"time,omitempty"`
	ReceivedAt string            `json:"received_at,omitempty"`
	Platform   string            `json:"platform,omitempty"`
	AppVersion string            `json:"app_version,omitempty"`
	ClickID    string            `json:"click_id,omitempty"`
	DeviceIDs  []string          `json:"device_ids,omitempty"`
	Params     map[string]string `json:"params,omitempty"`
	IP         string            `json:"ip,omitempty"`
	UserAgent  string            `json:"user_agent,omitempty"`
}

// conversionJSON is a conversion. Durations (window, hit_to_install) are
// in Go's duration syntax, e.g. "168h0m0s" or "1m30.25s".
type conversionJSON struct {
	ID         string `json:"id,omitempty"`
	HitSession string `json:"hit_session,omitempty"`
	AppSession string `json:"app_session,omitempty"`
	HitID      string `json:"hit_id,omitempty"`
	EventID    string `json:"event_id,omitempty"`
	ClickID    string `json:"click_id,omitempty"`
	Method     string `json:"method,omitempty"`
	Time       string `json:"time,omitempty"`
	Link       string `json:"link,omitempty"`
	Campaign   string `json:"campaign,omitempty"`
	DeepLink   string `json:"deep_link,omitempty"`
	HitTime    string `json:"hit_time,omitempty"`
	EventTime  string `json:"event_time,omitempty"`
	// Window is the lookback window of the rule that matched.
	Window string `json:"window,omitempty"`
	// Candidates is how many hits a probabilistic (fingerprint) match
	// chose from.
	Candidates int32 `json:"candidates,omitempty"`
	// HitToInstall is the time from the hit to the install event reaching
	// the collector; negative when the install came first.
	HitToInstall string `json:"hit_to_install,omitempty"`
}

type convertedWithJSON struct {
	Session string `json:"session,omitempty"`
	Method  string `json:"method,omitempty"`
	HitID   string `json:"hit_id,omitempty"`
	At      string `json:"at,omitempty"`
}

// timelineJSON is the answer of GET /v1/timeline.
type timelineJSON struct {
	Account       string          `json:"account"`
	Session       string          `json:"session"`
	PairedSession string          `json:"paired_session,omitempty"`
	Conversion    *conversionJSON `json:"conversion,omitempty"`
	Entries       []entryJSON     `json:"entries"`
}

// entryJSON is one hit or event of a timeline, marked with the session it
// belongs to.
type entryJSON struct {
	Session string     `json:"session"`
	Kind    string     `json:"kind"`
	Time    string     `json:"time,omitempty"`
	Hit     *hitJSON   `json:"hit,omitempty"`
	Event   *eventJSON `json:"event,omitempty"`
}

// deeplinkJSON is the answer of GET /v1/deeplink. Every field is always
// present (empty when unknown), so that SDKs can rely on the shape.
type deeplinkJSON struct {
	Account     string `json:"account"`
	Session     string `json:"session"`
	DeepLink    string `json:"deep_link"`
	Link        string `json:"link"`
	Campaign    string `json:"campaign"`
	Method      string `json:"method"`
	HitSession  string `json:"hit_session"`
	ConvertedAt string `json:"converted_at"`
}

// errorJSON is the body of every error answer. Reason details an answer
// that is not a failure of the request, such as the deep-link API's 404.
type errorJSON struct {
	Error  string `json:"error"`
	Reason string `json:"reason,omitempty"`
}

// rawJSON is pre-encoded JSON (an item encoded once and shared by every
// subscriber).
type rawJSON []byte

// MarshalJSON returns r unchanged: it was produced by encoding/json.
func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

// durationJSON formats a duration in microseconds; zero is omitted.
func durationJSON(us int64) string {
	if us == 0 {
		return ""
	}
	return (time.Duration(us) * time.Microsecond).String()
}

// timeJSON formats Unix microseconds; zero means unknown and is omitted.
func timeJSON(us int64) string {
	if us == 0 {
		return ""
	}
	return time.UnixMicro(us).UTC().Format(time.RFC3339Nano)
}

func platformJSON(p livetabv1.Platform) string {
	switch p {
	case livetabv1.Platform_PLATFORM_IOS:
		return "ios"
	case livetabv1.Platform_PLATFORM_ANDROID:
		return "android"
	case livetabv1.Platform_PLATFORM_WEB:
		return "web"
	case livetabv1.Platform_PLATFORM_OTHER:
		return "other"
	}
	return ""
}

func methodJSON(m livetabv1.MatchMethod) string {
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return "click_id"
	case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
		return "device_id"
	case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
		return "fingerprint"
	}
	return ""
}

// kindJSON names an item's kind, from its payload when the kind is unset.
func kindJSON(it *livetabv1.ViewItem) string {
	switch it.GetKind() {
	case livetabv1.Kind_KIND_HIT:
		return "hit"
	case livetabv1.Kind_KIND_EVENT:
		return "event"
	case livetabv1.Kind_KIND_CONVERSION:
		return "conversion"
	}
	switch {
	case it.GetHit() != nil:
		return "hit"
	case it.GetEvent() != nil:
		return "event"
	case it.GetConversion() != nil:
		return "conversion"
	}
	return ""
}

// cloneParams copies a parameter map so that the JSON value never aliases
// a decoded message; empty maps are omitted.
func cloneParams(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

func encodeCounters(c *livetabv1.Counters) countersJSON {
	return countersJSON{Hits: c.GetHits(), Events: c.GetEvents(), Conversions: c.GetConversions()}
}

func encodeItem(it *livetabv1.ViewItem) *itemJSON {
	j := &itemJSON{
		Cursor:     it.GetCursor(),
		Account:    it.GetAccount(),
		Kind:       kindJSON(it),
		Session:    it.GetSession(),
		ReceivedAt: timeJSON(it.GetReceivedUs()),
		Hit:        encodeHit(it.GetHit()),
		Event:      encodeEvent(it.GetEvent()),
		Conversion: encodeConversion(it.GetConversion()),
	}
	if c := it.GetCounters(); c != nil {
		cj := encodeCounters(c)
		j.Counters = &cj
	}
	if cw := it.GetConvertedWith(); cw != nil {
		j.ConvertedWith = &convertedWithJSON{
			Session: cw.GetSession(),
			Method:  methodJSON(cw.GetMethod()),
			HitID:   cw.GetHitId(),
			At:      timeJSON(cw.GetTimeUs()),
		}
	}
	return j
}

func encodeHit(h *livetabv1.Hit) *hitJSON {
	if h == nil {
		return nil
	}
	r := h.GetRequest()
	return &hitJSON{
		ID:             h.GetId(),
		Link:           h.GetLink(),
		Campaign:       h.GetCampaign(),
		ClickID:        h.GetClickId(),
		Session:        h.GetSession(),
		Destination:    h.GetDestination(),
		DeepLink:       h.GetDeepLink(),
		Platform:       platformJSON(h.GetPlatform()),
		ReceivedAt:     timeJSON(h.GetReceivedUs()),
		IP:             r.GetIp(),
		UserAgent:      r.GetUserAgent(),
		Referrer:       r.GetReferrer(),
		AcceptLanguage: r.GetAcceptLanguage(),
		Params:         cloneParams(r.GetParams()),
	}
}

func encodeEvent(e *livetabv1.Event) *eventJSON {
	if e == nil {
		return nil
	}
	var ids []string
	if len(e.GetDeviceIds()) > 0 {
		ids = append(ids, e.GetDeviceIds()...)
	}
	return &eventJSON{
		ID:         e.GetId(),
		Name:       e.GetName(),
		Session:    e.GetSession(),
		Time:       timeJSON(e.GetTimeUs()),
		ReceivedAt: timeJSON(e.GetReceivedUs()),
		Platform:   platformJSON(e.GetPlatform()),
		AppVersion: e.GetAppVersion(),
		ClickID:    e.GetClickId(),
		DeviceIDs:  ids,
		Params:     cloneParams(e.GetParams()),
		IP:         e.GetRequest().GetIp(),
		UserAgent:  e.GetRequest().GetUserAgent(),
	}
}

func encodeConversion(c *livetabv1.Conversion) *conversionJSON {
	if c == nil {
		return nil
	}
	return &conversionJSON{
		ID:         c.GetId(),
		HitSession: c.GetHitSession(),
		AppSession: c.GetAppSession(),
		HitID:      c.GetHitId(),
		EventID:    c.GetEventId(),
		ClickID:    c.GetClickId(),
		Method:     methodJSON(c.GetMethod()),
		Time:       timeJSON(c.GetTimeUs()),
		Link:       c.GetLink(),
		Campaign:   c.GetCampaign(),
		DeepLink:   c.GetDeepLink(),
		HitTime:    timeJSON(c.GetHitTimeUs()),
		EventTime:  timeJSON(c.GetEventTimeUs()),
		Window:     durationJSON(c.GetWindowUs()),
		Candidates: c.GetCandidates(),
		// Until conversions carry it, the time from hit to install is
		// derived from when the install reached the collector.
		HitToInstall: durationJSON(hitToInstallUs(c)),
	}
}

// hitToInstallUs is the time from the conversion's hit to its install
// event reaching the collector, 0 when either time is unknown.
func hitToInstallUs(c *livetabv1.Conversion) int64 {
	if c.GetHitTimeUs() == 0 || c.GetReceivedUs() == 0 {
		return 0
	}
	return c.GetReceivedUs() - c.GetHitTimeUs()
}
