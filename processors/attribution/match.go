package attribution

import (
	"cmp"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// Bounds of a match key's state. A key keeps the hits and installs received
// within its method's window plus the grace period of the newest one it
// saw, and of those at most the newest MaxHits hits and MaxInstalls
// installs. Past these bounds (a busy shared IP, a device id sent by every
// install of a broken SDK) the oldest go first: the most recent hit, which
// is the one that wins, is always kept, but the candidate count of a
// fingerprint match stops at MaxHits.
const (
	MaxHits     = 64
	MaxInstalls = 32
)

// Qualifies reports whether hit h qualifies for install-like event e by
// method m: always within one account; by click id when both carry the
// same click id and were received at most the click window apart, either
// way; by device id when the install carries the hit's device id; by
// fingerprint when both have the same fingerprint. Device id and
// fingerprint hits must be received before the install, by at most their
// window (a click reaches the collector before the app it leads to can
// send its install).
func Qualifies(cfg Config, m livetabv1.MatchMethod, h *livetabv1.Hit, e *livetabv1.Event) bool {
	if h.GetAccount() == "" || h.GetAccount() != e.GetAccount() {
		return false
	}
	d := e.GetReceivedUs() - h.GetReceivedUs()
	w := cfg.Window(m).Microseconds()
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return h.GetClickId() != "" && h.GetClickId() == e.GetClickId() && d <= w && -d <= w
	case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
		return h.GetDeviceId() != "" && slices.Contains(e.GetDeviceIds(), h.GetDeviceId()) && d >= 0 && d <= w
	case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
		hf, ok := Fingerprint(h.GetRequest())
		if !ok {
			return false
		}
		ef, ok := Fingerprint(e.GetRequest())
		return ok && hf == ef && d >= 0 && d <= w
	}
	return false
}

// CompareHits orders hits by preference, the winner first: the most recent
// (last click), ties broken by the smaller id so that the choice never
// depends on arrival order.
func CompareHits(a, b *livetabv1.Hit) int {
	if c := cmp.Compare(b.GetReceivedUs(), a.GetReceivedUs()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetId(), b.GetId())
}

// compareNewestEvents orders events newest first, ties by id.
func compareNewestEvents(a, b *livetabv1.Event) int {
	if c := cmp.Compare(b.GetReceivedUs(), a.GetReceivedUs()); c != 0 {
		return c
	}
	return cmp.Compare(a.GetId(), b.GetId())
}

// OnMatchHit adds hit h to st, the state of a match key of method m, and
// returns whether st changed and, for every install of st that h
// qualifies for, that install's best candidate of the key. A redelivered
// hit changes nothing but its candidates are sent again: the process that
// first sent them may have stopped before they were written.
func OnMatchHit(cfg Config, m livetabv1.MatchMethod, st *livetabv1.MatchState, h *livetabv1.Hit) (bool, []*livetabv1.Candidate) {
	raw, err := proto.Marshal(h)
	if err != nil {
		// Only a hit with a string that is not UTF-8 fails, which no
		// decoded hit has.
		return false, nil
	}
	return onMatchHit(cfg, m, st, newMatchHit(m, h, raw))
}

// newMatchHit is hit h, encoded as raw, as a key of method m keeps it.
func newMatchHit(m livetabv1.MatchMethod, h *livetabv1.Hit, raw []byte) *livetabv1.MatchHit {
	return &livetabv1.MatchHit{Id: h.GetId(), ReceivedUs: h.GetReceivedUs(), Account: h.GetAccount(), Match: hitMatch(m, h), Hit: raw}
}

// hitMatch is what method m compares of hit h (see Qualifies): its click
// id, its device id or its fingerprint; empty when it has none.
func hitMatch(m livetabv1.MatchMethod, h *livetabv1.Hit) string {
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return h.GetClickId()
	case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
		return h.GetDeviceId()
	case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
		// A fingerprint is never empty: it holds separators.
		fp, _ := Fingerprint(h.GetRequest())
		return fp
	}
	return ""
}

// onMatchHit is OnMatchHit of a hit as kept.
func onMatchHit(cfg Config, m livetabv1.MatchMethod, st *livetabv1.MatchState, h *livetabv1.MatchHit) (bool, []*livetabv1.Candidate) {
	changed := false
	hits := keptHits(st)
	k := keptOf(h)
	hasID := func(x keptHit) bool { return string(x.id) == h.GetId() }
	if !slices.ContainsFunc(hits, hasID) {
		i, _ := slices.BinarySearchFunc(hits, k, compareKeptHits)
		hits = slices.Insert(hits, i, k)
		n := len(hits) + len(st.Installs)
		hits = prune(cfg, m, st, hits)
		kept := i < len(hits)
		// Pruning drops the oldest, so a new hit that went at once
		// changed something only if it took others with it.
		changed = kept || n-(len(hits)+len(st.Installs)) > 1
		if changed {
			setKeptHits(st, hits)
		}
	}
	if !slices.ContainsFunc(hits, hasID) {
		return changed, nil
	}
	var out []*livetabv1.Candidate
	for _, e := range st.Installs {
		if qualifies(cfg, m, k, e, eventMatch(m, e)) {
			if c := best(cfg, m, hits, e); c != nil {
				out = append(out, c)
			}
		}
	}
	return changed, out
}

// eventMatch is what method m compares of install e with a hit's
// hitMatch; device ids are compared one by one, so none for them.
func eventMatch(m livetabv1.MatchMethod, e *livetabv1.Event) string {
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return e.GetClickId()
	case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
		fp, _ := Fingerprint(e.GetRequest())
		return fp
	}
	return ""
}

// qualifies is Qualifies of a kept hit, given eventMatch(m, e).
func qualifies(cfg Config, m livetabv1.MatchMethod, h keptHit, e *livetabv1.Event, em string) bool {
	if len(h.account) == 0 || string(h.account) != e.GetAccount() || len(h.match) == 0 {
		return false
	}
	d := e.GetReceivedUs() - h.receivedUs
	w := cfg.Window(m).Microseconds()
	switch m {
	case livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID:
		return string(h.match) == em && d <= w && -d <= w
	case livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID:
		return slices.ContainsFunc(e.GetDeviceIds(), func(id string) bool { return id == string(h.match) }) && d >= 0 && d <= w
	case livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT:
		return string(h.match) == em && d >= 0 && d <= w
	}
	return false
}

// OnMatchInstall adds install-like event e to st, the state of a match key
// of method m, and returns whether st changed and e's best candidate of
// the key, if any. Like a hit, a redelivered install changes nothing but
// gets its candidate again.
func OnMatchInstall(cfg Config, m livetabv1.MatchMethod, st *livetabv1.MatchState, e *livetabv1.Event) (bool, *livetabv1.Candidate) {
	changed := false
	if !slices.ContainsFunc(st.Installs, func(x *livetabv1.Event) bool { return x.GetId() == e.GetId() }) {
		i, _ := slices.BinarySearchFunc(st.Installs, e, compareNewestEvents)
		st.Installs = slices.Insert(st.Installs, i, e)
		hits := keptHits(st)
		n := len(hits) + len(st.Installs)
		pruned := prune(cfg, m, st, hits)
		if len(pruned) < len(hits) {
			setKeptHits(st, pruned)
		}
		changed = slices.Contains(st.Installs, e) || n-(len(pruned)+len(st.Installs)) > 1
	}
	return changed, Best(cfg, m, st, e)
}

// Best is e's candidate among the hits of st, a match key of method m: the
// winning qualifying hit and, for fingerprints, how many qualify. Nil when
// none does.
func Best(cfg Config, m livetabv1.MatchMethod, st *livetabv1.MatchState, e *livetabv1.Event) *livetabv1.Candidate {
	return best(cfg, m, keptHits(st), e)
}

// best is Best among hits, a match key's hits in preference order.
func best(cfg Config, m livetabv1.MatchMethod, hits []keptHit, e *livetabv1.Event) *livetabv1.Candidate {
	var (
		win   keptHit
		found bool
		n     int32
	)
	em := eventMatch(m, e)
	// Hits are kept in preference order: the first that qualifies wins.
	for _, h := range hits {
		if qualifies(cfg, m, h, e, em) {
			if !found {
				win, found = h, true
			}
			n++
		}
	}
	if !found {
		return nil
	}
	// Only the winner is parsed. Its bytes were a hit that decoded when
	// the key kept it; a state corrupted since yields no candidate.
	hit := &livetabv1.Hit{}
	if err := proto.Unmarshal(win.hit, hit); err != nil {
		return nil
	}
	c := &livetabv1.Candidate{Method: m, Hit: hit, Event: e, WindowUs: cfg.Window(m).Microseconds()}
	if m == livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT {
		c.Candidates = n
	}
	return c
}

// newest is the latest received time of st's hits and installs.
func newest(st *livetabv1.MatchState) int64 {
	return newestOf(firstHitUs(st), st)
}

// newestOf is newest of st, given the received time of its newest hit.
func newestOf(hitUs int64, st *livetabv1.MatchState) int64 {
	t := hitUs
	if len(st.Installs) > 0 {
		t = max(t, st.Installs[0].GetReceivedUs())
	}
	return t
}

// prune applies the bounds (see MaxHits). Keeping the window plus the
// grace period, rather than just the window, keeps what a record that
// arrives up to the grace period out of order may still need. It prunes
// st's installs in place and returns the hits to keep of kept, st's hits
// (a prefix of them).
func prune(cfg Config, m livetabv1.MatchMethod, st *livetabv1.MatchState, kept []keptHit) []keptHit {
	var first int64
	if len(kept) > 0 {
		first = kept[0].receivedUs
	}
	cut := newestOf(first, st) - (cfg.Window(m) + cfg.Grace).Microseconds()
	hits := slices.IndexFunc(kept, func(h keptHit) bool { return h.receivedUs < cut })
	if hits < 0 {
		hits = len(kept)
	}
	installs := slices.IndexFunc(st.Installs, func(e *livetabv1.Event) bool { return e.GetReceivedUs() < cut })
	if installs < 0 {
		installs = len(st.Installs)
	}
	hits, installs = min(hits, MaxHits), min(installs, MaxInstalls)
	if installs < len(st.Installs) {
		st.Installs = slices.Clone(st.Installs[:installs])
	}
	return kept[:hits]
}

// ExtendCleanup is called after st changed: a match key may be deleted
// once it cannot serve any install any more, which is its method's window
// plus the grace period after the later of its newest record and
// recordUs, the processing time (the Kafka timestamp of the record being
// processed; 0 when unknown). Counting from the processing time too keeps a
// replay of old records from deleting keys that the replay still needs.
// It moves st.CleanupUs, the time from which the clean-up sweep
// (CleanupVisitor) deletes the key, never back.
func ExtendCleanup(cfg Config, m livetabv1.MatchMethod, st *livetabv1.MatchState, recordUs int64) {
	due := max(newest(st), recordUs) + (cfg.Window(m) + cfg.Grace).Microseconds()
	st.CleanupUs = max(st.CleanupUs, due)
}

// Expired reports whether a match key with state st is to be deleted at
// nowUs: its clean-up time has come. A key without one (CleanupUs 0) is
// kept.
func Expired(st *livetabv1.MatchState, nowUs int64) bool {
	return st.GetCleanupUs() != 0 && nowUs >= st.GetCleanupUs()
}
