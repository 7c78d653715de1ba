package attribution

import (
	"slices"
	"time"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// Window is the click-id rule's lookback: a hit and an event convert only
// when they entered the collector at most Window apart.
const Window = 7 * 24 * time.Hour

// MaxPending bounds the install-like events a click id keeps while its hit
// has not arrived; the oldest go first.
const MaxPending = 16

// ConversionIDPrefix prefixes the app session in a conversion's id.
const ConversionIDPrefix = "cv-"

// InstallLike reports whether an event with this name can convert: the
// app's first open after an install, or an open through a link.
func InstallLike(name string) bool { return name == "install" || name == "open" }

// Convert pairs hit and ev by their click id. It reports false when they
// cannot pair: different accounts (a click id is only trusted within the
// account that minted it), or received more than Window apart.
func Convert(hit *livetabv1.Hit, ev *livetabv1.Event) (*livetabv1.Conversion, bool) {
	if hit.GetAccount() != ev.GetAccount() {
		return nil, false
	}
	hr, er := hit.GetReceivedUs(), ev.GetReceivedUs()
	if d := er - hr; d > Window.Microseconds() || -d > Window.Microseconds() {
		return nil, false
	}
	return &livetabv1.Conversion{
		Id:          ConversionIDPrefix + ev.GetSession(),
		Account:     hit.GetAccount(),
		HitSession:  hit.GetSession(),
		AppSession:  ev.GetSession(),
		HitId:       hit.GetId(),
		EventId:     ev.GetId(),
		ClickId:     hit.GetClickId(),
		TimeUs:      max(hr, er),
		Method:      livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID,
		HitTimeUs:   hr,
		EventTimeUs: ev.GetTimeUs(),
		WindowUs:    Window.Microseconds(),
		Link:        hit.GetLink(),
		Campaign:    hit.GetCampaign(),
		DeepLink:    hit.GetDeepLink(),
		ReceivedUs:  er,
	}, true
}

// OnHit applies a hit of the click id to its state. The first hit is kept
// (a click id names one click; a redelivery or a reused id changes
// nothing); it converts the events that were waiting for it. It reports
// whether st changed and the conversions to emit.
func OnHit(st *livetabv1.ClickState, hit *livetabv1.Hit) (bool, []*livetabv1.Conversion) {
	if st.Hit != nil {
		return false, nil
	}
	st.Hit = hit
	var out []*livetabv1.Conversion
	for _, ev := range st.Pending {
		if c, ok := convertOnce(st, ev); ok {
			out = append(out, c)
		}
	}
	// With the hit stored, an event that did not convert now never will.
	st.Pending = nil
	return true, out
}

// OnEvent applies an install-like event carrying the click id to its
// state: it converts with the stored hit, or waits for the hit. An app
// session converts at most once per click id. It reports whether st
// changed and the conversion to emit, if any.
func OnEvent(st *livetabv1.ClickState, ev *livetabv1.Event) (bool, *livetabv1.Conversion) {
	if slices.Contains(st.ConvertedSessions, ev.GetSession()) {
		return false, nil
	}
	if st.Hit != nil {
		c, ok := convertOnce(st, ev)
		return ok, c
	}
	if slices.ContainsFunc(st.Pending, func(p *livetabv1.Event) bool { return p.GetId() == ev.GetId() }) {
		return false, nil
	}
	st.Pending = append(st.Pending, ev)
	if extra := len(st.Pending) - MaxPending; extra > 0 {
		st.Pending = slices.Clone(st.Pending[extra:])
	}
	return true, nil
}

func convertOnce(st *livetabv1.ClickState, ev *livetabv1.Event) (*livetabv1.Conversion, bool) {
	if slices.Contains(st.ConvertedSessions, ev.GetSession()) {
		return nil, false
	}
	c, ok := Convert(st.Hit, ev)
	if !ok {
		return nil, false
	}
	st.ConvertedSessions = append(st.ConvertedSessions, ev.GetSession())
	return c, true
}
