package views

import (
	"cmp"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/sessions"
)

// handleTimeline is GET /v1/timeline?account=A&session=S: the session's
// timeline merged with its paired session's, newest entry first. A session
// that is unknown or belongs to another account is a 404, so that nothing
// tells another account's sessions apart from missing ones. Each timeline is
// assembled from the session's value and its sealed chunks (sessions.Read).
func (s *Server) handleTimeline(w http.ResponseWriter, r *http.Request) {
	account, ok := s.authorize(w, r)
	if !ok {
		return
	}
	session := r.URL.Query().Get("session")
	if session == "" {
		writeError(w, http.StatusBadRequest, "missing session parameter")
		return
	}
	tl, err := s.timeline(session)
	switch {
	case errors.Is(err, errNotReady):
		writeNotReady(w)
		return
	case err != nil:
		s.log.Error("timeline: read sessions table", "session", session, "error", err)
		writeError(w, http.StatusInternalServerError, "cannot read the session")
		return
	case tl == nil || tl.GetAccount() != account:
		writeError(w, http.StatusNotFound, "session not found")
		return
	}
	var paired *livetabv1.Timeline
	if p := tl.GetPairedSession(); p != "" && p != session {
		paired, err = s.timeline(p)
		if err != nil {
			// The session alone is still a useful answer.
			s.log.Warn("timeline: read paired session", "session", session, "paired", p, "error", err)
			paired = nil
		}
	}
	writeJSON(w, http.StatusOK, mergeTimelines(account, session, tl, paired))
}

// timeline returns session's whole timeline, nil if none: the fields of
// its value in the sessions table and the entries of all its chunks.
func (s *Server) timeline(session string) (*livetabv1.Timeline, error) {
	return sessions.Read(s.sessionValue, session)
}

// sessionHeader returns session's own value in the sessions table, nil if
// none: its account, pairing and conversion, but only its newest entries
// (timeline has them all). It is what the deep-link API reads.
func (s *Server) sessionHeader(session string) (*livetabv1.Timeline, error) {
	if _, _, chunk := sessions.ParseChunkKey(session); chunk {
		// A chunk's value is not a session, whoever asks.
		return nil, nil
	}
	return s.sessionValue(session)
}

// sessionValue returns the sessions table's value for key (a session's or
// a chunk's), nil if none.
func (s *Server) sessionValue(key string) (*livetabv1.Timeline, error) {
	v, err := s.get(s.sessions, key)
	if err != nil {
		return nil, err
	}
	tl, ok := v.(*livetabv1.Timeline)
	if !ok && v != nil {
		return nil, fmt.Errorf("sessions table holds a %T", v)
	}
	return tl, nil
}

// mergeTimelines answers for tl, the timeline of session, merged with
// paired when paired belongs to the same account. Entries are newest
// first; each is marked with its session.
func mergeTimelines(account, session string, tl, paired *livetabv1.Timeline) timelineJSON {
	out := timelineJSON{
		Account:       account,
		Session:       session,
		PairedSession: tl.GetPairedSession(),
		Conversion:    encodeConversion(tl.GetConversion()),
		Entries:       []entryJSON{},
	}
	type timed struct {
		us    int64
		order int
		entry entryJSON
	}
	var all []timed
	// Entries are marked with the key their timeline is stored under,
	// which a value's own session field merely repeats.
	add := func(session string, t *livetabv1.Timeline) {
		for _, e := range t.GetEntries() {
			us, entry, ok := encodeEntry(session, e)
			if ok {
				all = append(all, timed{us, len(all), entry})
			}
		}
	}
	add(session, tl)
	if paired != nil {
		if paired.GetAccount() == account {
			add(tl.GetPairedSession(), paired)
			if out.Conversion == nil {
				out.Conversion = encodeConversion(paired.GetConversion())
			}
		} else {
			// Never name another account's session.
			out.PairedSession = ""
		}
	}
	// Newest first; entries with the same time keep their reverse stored
	// order.
	slices.SortStableFunc(all, func(a, b timed) int {
		return cmp.Or(cmp.Compare(b.us, a.us), cmp.Compare(b.order, a.order))
	})
	for _, t := range all {
		out.Entries = append(out.Entries, t.entry)
	}
	return out
}

// encodeEntry encodes one timeline entry and the time it happened: a
// hit's arrival, an event's device time (its arrival when the device sent
// none).
func encodeEntry(session string, e *livetabv1.TimelineEntry) (int64, entryJSON, bool) {
	if h := e.GetHit(); h != nil {
		return h.GetReceivedUs(), entryJSON{Session: session, Kind: "hit", Time: timeJSON(h.GetReceivedUs()), Hit: encodeHit(h)}, true
	}
	if ev := e.GetEvent(); ev != nil {
		us := cmp.Or(ev.GetTimeUs(), ev.GetReceivedUs())
		return us, entryJSON{Session: session, Kind: "event", Time: timeJSON(us), Event: encodeEvent(ev)}, true
	}
	return 0, entryJSON{}, false
}
