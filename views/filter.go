package views

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// errBadFilter is wrapped by every filter a client may not ask for.
var errBadFilter = errors.New("bad filter")

// maxFilterLen bounds a filter's text value.
const maxFilterLen = 256

// Kinds as a bit set, so that a kind filter is one AND.
const (
	kindHit uint8 = 1 << iota
	kindEvent
	kindConversion
)

var kindNames = []struct {
	bit  uint8
	name string
}{{kindHit, "hit"}, {kindEvent, "event"}, {kindConversion, "conversion"}}

// itemAttrs are what filters and sampling look at in an item, extracted
// once when the item is decoded.
type itemAttrs struct {
	kind     uint8
	platform livetabv1.Platform
	// session is the item's session: a hit's or event's, a conversion's
	// app session.
	session string
	// hitSession and appSession are a conversion's two sessions.
	hitSession, appSession string
	// convertedWith is the hit session a marked event converted with.
	convertedWith string
	// event is an event's name.
	event string
	// link and campaign are a hit's or a conversion's.
	link, campaign string
}

func attrsOf(it *livetabv1.ViewItem) itemAttrs {
	a := itemAttrs{session: it.GetSession(), convertedWith: it.GetConvertedWith().GetSession()}
	switch kindJSON(it) {
	case "hit":
		a.kind = kindHit
	case "event":
		a.kind = kindEvent
	case "conversion":
		a.kind = kindConversion
	}
	if h := it.GetHit(); h != nil {
		a.platform, a.link, a.campaign = h.GetPlatform(), h.GetLink(), h.GetCampaign()
		if a.session == "" {
			a.session = h.GetSession()
		}
	}
	if e := it.GetEvent(); e != nil {
		a.platform, a.event = e.GetPlatform(), e.GetName()
		if a.session == "" {
			a.session = e.GetSession()
		}
	}
	if c := it.GetConversion(); c != nil {
		a.hitSession, a.appSession, a.link, a.campaign = c.GetHitSession(), c.GetAppSession(), c.GetLink(), c.GetCampaign()
		if a.session == "" {
			a.session = c.GetAppSession()
		}
	}
	return a
}

// size is roughly the memory a's strings take.
func (a *itemAttrs) size() int {
	return len(a.session) + len(a.hitSession) + len(a.appSession) + len(a.convertedWith) + len(a.event) + len(a.link) + len(a.campaign)
}

// filter is a subscription's compiled filters; the zero value matches
// every item (and leaves the stream sampled). It is compared field by
// field, without allocating.
type filter struct {
	session, event, link, campaign string
	kinds                          uint8 // 0: any kind
	platform                       livetabv1.Platform
}

func (f *filter) empty() bool { return *f == filter{} }

// match reports whether every filter given matches a. pairs knows the
// sessions that conversions paired.
func (f *filter) match(a *itemAttrs, p *pairs) bool {
	switch {
	case f.kinds != 0 && f.kinds&a.kind == 0,
		f.event != "" && (a.kind != kindEvent || a.event != f.event),
		f.link != "" && a.link != f.link,
		f.campaign != "" && a.campaign != f.campaign,
		f.platform != livetabv1.Platform_PLATFORM_UNSPECIFIED && a.platform != f.platform:
		return false
	}
	return f.session == "" || matchSession(f.session, a, p)
}

// matchSession: the item's own session, either session of a conversion,
// the hit session an event converted with, or a session paired with s.
func matchSession(s string, a *itemAttrs, p *pairs) bool {
	if a.session == s || a.hitSession == s || a.appSession == s || a.convertedWith == s {
		return true
	}
	return p.paired(a.session, s)
}

// filtersJSON is the wire form of filters: the filters object of a
// subscribe message, and their echo in snapshot and resume frames.
type filtersJSON struct {
	Session  string   `json:"session,omitempty"`
	Kind     kindList `json:"kind,omitempty"`
	Event    string   `json:"event,omitempty"`
	Link     string   `json:"link,omitempty"`
	Campaign string   `json:"campaign,omitempty"`
	Platform string   `json:"platform,omitempty"`
}

// kindList is a list of kinds, given as a JSON array or as one
// comma-separated string.
type kindList []string

func (k *kindList) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*k = splitList(s)
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("kind must be a list of strings")
	}
	*k = l
	return nil
}

func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// compile checks fj and returns its compiled filter and its normalized
// echo (kinds in a fixed order, once each).
func compile(fj filtersJSON) (filter, filtersJSON, error) {
	var f filter
	for _, v := range []struct {
		name string
		val  string
		dst  *string
	}{{"session", fj.Session, &f.session}, {"event", fj.Event, &f.event}, {"link", fj.Link, &f.link}, {"campaign", fj.Campaign, &f.campaign}} {
		if len(v.val) > maxFilterLen {
			return filter{}, filtersJSON{}, fmt.Errorf("%w: %s longer than %d bytes", errBadFilter, v.name, maxFilterLen)
		}
		*v.dst = v.val
	}
	for _, k := range fj.Kind {
		bit := uint8(0)
		for _, kn := range kindNames {
			if strings.TrimSpace(k) == kn.name {
				bit = kn.bit
			}
		}
		if bit == 0 {
			return filter{}, filtersJSON{}, fmt.Errorf("%w: unknown kind %.40q (want hit, event or conversion)", errBadFilter, k)
		}
		f.kinds |= bit
	}
	switch fj.Platform {
	case "":
	case "ios":
		f.platform = livetabv1.Platform_PLATFORM_IOS
	case "android":
		f.platform = livetabv1.Platform_PLATFORM_ANDROID
	case "web":
		f.platform = livetabv1.Platform_PLATFORM_WEB
	case "other":
		f.platform = livetabv1.Platform_PLATFORM_OTHER
	default:
		return filter{}, filtersJSON{}, fmt.Errorf("%w: unknown platform %.40q (want ios, android, web or other)", errBadFilter, fj.Platform)
	}
	echo := fj
	echo.Kind = nil
	for _, kn := range kindNames {
		if f.kinds&kn.bit != 0 {
			echo.Kind = append(echo.Kind, kn.name)
		}
	}
	return f, echo, nil
}

// selection is what a client subscribes to: filters, and where to start.
type selection struct {
	filter filter
	echo   filtersJSON
	// resume asks for every item after cursor instead of a snapshot.
	resume bool
	cursor uint64
}

// selectionFromQuery reads the initial subscription of GET /v1/live:
// cursor and the filters session, kind (comma-separated), event, link,
// campaign and platform.
func selectionFromQuery(q url.Values) (selection, error) {
	fj := filtersJSON{
		Session: q.Get("session"), Kind: splitList(q.Get("kind")), Event: q.Get("event"),
		Link: q.Get("link"), Campaign: q.Get("campaign"), Platform: q.Get("platform"),
	}
	f, echo, err := compile(fj)
	if err != nil {
		return selection{}, err
	}
	sel := selection{filter: f, echo: echo}
	if c := q.Get("cursor"); c != "" {
		n, err := strconv.ParseUint(c, 10, 64)
		if err != nil {
			return selection{}, fmt.Errorf("cursor %.40q is not a non-negative integer", c)
		}
		sel.resume, sel.cursor = true, n
	}
	return sel, nil
}

// filtersFromJSON decodes a subscribe message's filters object; an
// unknown filter is an error, so that a client never believes a filter
// applies that this server does not know.
func filtersFromJSON(raw json.RawMessage) (filtersJSON, error) {
	var fj filtersJSON
	if len(raw) == 0 || string(raw) == "null" {
		return fj, nil
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.DisallowUnknownFields()
	if err := d.Decode(&fj); err != nil {
		return filtersJSON{}, fmt.Errorf("%w: %w", errBadFilter, err)
	}
	return fj, nil
}
