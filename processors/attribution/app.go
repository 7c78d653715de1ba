package attribution

import (
	"cmp"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// ConversionIDPrefix prefixes the app session in a conversion's id.
const ConversionIDPrefix = "cv-"

// earlier reports whether a was received before b, ties by id.
func earlier(a, b *livetabv1.Event) bool {
	if c := cmp.Compare(a.GetReceivedUs(), b.GetReceivedUs()); c != 0 {
		return c < 0
	}
	return a.GetId() < b.GetId()
}

// OnRegister registers install-like event e with st, its app session's
// state. The session's deadline is its earliest install's received time
// plus the grace period. It returns whether st changed and the due time of
// a timer to schedule (0: none): the new deadline, or the current one again
// when e is a redelivery, since the first schedule may have been lost.
func OnRegister(cfg Config, st *livetabv1.AppSessionState, e *livetabv1.Event) (bool, int64) {
	switch {
	case st.Decided:
		return false, 0
	case st.Install == nil || earlier(e, st.Install):
		st.Install = e
		st.DeadlineUs = e.GetReceivedUs() + cfg.Grace.Microseconds()
		return true, st.DeadlineUs
	case st.Install.GetId() == e.GetId():
		return false, st.DeadlineUs
	}
	return false, 0
}

// OnCandidate applies a candidate sent by a match key to st. A click-id
// candidate decides at once (a click id names one click); other methods
// are kept, the best per method, until the deadline. It returns whether st
// changed and the conversion to emit, if any.
func OnCandidate(st *livetabv1.AppSessionState, c *livetabv1.Candidate) (bool, *livetabv1.Conversion) {
	if st.Decided {
		return false, nil
	}
	if c.GetMethod() == livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID {
		return true, decide(st, c)
	}
	i := slices.IndexFunc(st.Candidates, func(x *livetabv1.Candidate) bool { return x.GetMethod() == c.GetMethod() })
	if i < 0 {
		st.Candidates = append(st.Candidates, c)
		return true, nil
	}
	merged := merge(st.Candidates[i], c)
	if proto.Equal(merged, st.Candidates[i]) {
		return false, nil
	}
	st.Candidates[i] = merged
	return true, nil
}

// merge combines two candidates of one method: the better hit (for the
// earlier install when both are for the same hit) with the larger count,
// so that the outcome does not depend on which arrived first.
func merge(old, c *livetabv1.Candidate) *livetabv1.Candidate {
	best := old
	switch d := CompareHits(c.GetHit(), old.GetHit()); {
	case d < 0, d == 0 && earlier(c.GetEvent(), old.GetEvent()):
		best = c
	}
	if best == old && c.GetCandidates() <= old.GetCandidates() {
		return old
	}
	m := proto.CloneOf(best)
	m.Candidates = max(old.GetCandidates(), c.GetCandidates())
	return m
}

// OnExpire applies the session's timer, fired at nowUs: at or after the
// deadline the session is decided by the best candidate it has (none:
// organic). It returns whether st changed, the conversion to emit if any,
// and a due time to schedule again when the timer fired before the
// deadline (an earlier install moved it; 0: none).
func OnExpire(st *livetabv1.AppSessionState, nowUs int64) (bool, *livetabv1.Conversion, int64) {
	switch {
	case st.Decided || st.Install == nil:
		return false, nil, 0
	case nowUs < st.DeadlineUs:
		return false, nil, st.DeadlineUs
	}
	var best *livetabv1.Candidate
	for _, c := range st.Candidates {
		// The cascade: a stronger method (a smaller enum value) wins.
		if best == nil || c.GetMethod() < best.GetMethod() {
			best = c
		}
	}
	return true, decide(st, best), 0
}

// decide closes st with candidate c (nil: organic) and returns its
// conversion. A decided state keeps only the decision.
func decide(st *livetabv1.AppSessionState, c *livetabv1.Candidate) *livetabv1.Conversion {
	st.Decided = true
	st.Install, st.DeadlineUs, st.Candidates = nil, 0, nil
	if c == nil {
		return nil
	}
	st.Conversion = Convert(c)
	return st.Conversion
}

// Convert is the conversion a candidate makes.
func Convert(c *livetabv1.Candidate) *livetabv1.Conversion {
	h, e := c.GetHit(), c.GetEvent()
	hr, er := h.GetReceivedUs(), e.GetReceivedUs()
	return &livetabv1.Conversion{
		Id:             ConversionIDPrefix + e.GetSession(),
		Account:        e.GetAccount(),
		HitSession:     h.GetSession(),
		AppSession:     e.GetSession(),
		HitId:          h.GetId(),
		EventId:        e.GetId(),
		ClickId:        h.GetClickId(),
		TimeUs:         max(hr, er),
		Method:         c.GetMethod(),
		HitTimeUs:      hr,
		EventTimeUs:    e.GetTimeUs(),
		WindowUs:       c.GetWindowUs(),
		Candidates:     c.GetCandidates(),
		Link:           h.GetLink(),
		Campaign:       h.GetCampaign(),
		DeepLink:       h.GetDeepLink(),
		ReceivedUs:     er,
		HitToInstallUs: er - hr,
	}
}
