package attribution

import (
	"bytes"
	"cmp"
	"slices"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// keptHit is a hit of a match key read in place from its entry in the
// key's MatchState.hit_entries: its fields alias the entry's bytes.
type keptHit struct {
	// entry is the whole entry (tag, length, MatchHit), copied as it is
	// when the key writes its hits.
	entry      []byte
	id         []byte
	receivedUs int64
	account    []byte
	match      []byte
	hit        []byte
}

// appendHitEntry appends h, encoded as MatchState's field hits would be,
// to entries.
func appendHitEntry(entries []byte, h *livetabv1.MatchHit) []byte {
	n := 0
	if h.GetId() != "" {
		n += protowire.SizeTag(codecs.MatchHitID) + protowire.SizeBytes(len(h.GetId()))
	}
	if h.GetReceivedUs() != 0 {
		n += protowire.SizeTag(codecs.MatchHitReceivedUs) + protowire.SizeVarint(uint64(h.GetReceivedUs()))
	}
	if h.GetAccount() != "" {
		n += protowire.SizeTag(codecs.MatchHitAccount) + protowire.SizeBytes(len(h.GetAccount()))
	}
	if h.GetMatch() != "" {
		n += protowire.SizeTag(codecs.MatchHitMatch) + protowire.SizeBytes(len(h.GetMatch()))
	}
	if len(h.GetHit()) != 0 {
		n += protowire.SizeTag(codecs.MatchHitHit) + protowire.SizeBytes(len(h.GetHit()))
	}
	entries = slices.Grow(entries, protowire.SizeTag(codecs.MatchStateHits)+protowire.SizeBytes(n))
	entries = protowire.AppendTag(entries, codecs.MatchStateHits, protowire.BytesType)
	entries = protowire.AppendVarint(entries, uint64(n))
	if h.GetId() != "" {
		entries = protowire.AppendTag(entries, codecs.MatchHitID, protowire.BytesType)
		entries = protowire.AppendString(entries, h.GetId())
	}
	if h.GetReceivedUs() != 0 {
		entries = protowire.AppendTag(entries, codecs.MatchHitReceivedUs, protowire.VarintType)
		entries = protowire.AppendVarint(entries, uint64(h.GetReceivedUs()))
	}
	if h.GetAccount() != "" {
		entries = protowire.AppendTag(entries, codecs.MatchHitAccount, protowire.BytesType)
		entries = protowire.AppendString(entries, h.GetAccount())
	}
	if h.GetMatch() != "" {
		entries = protowire.AppendTag(entries, codecs.MatchHitMatch, protowire.BytesType)
		entries = protowire.AppendString(entries, h.GetMatch())
	}
	if len(h.GetHit()) != 0 {
		entries = protowire.AppendTag(entries, codecs.MatchHitHit, protowire.BytesType)
		entries = protowire.AppendBytes(entries, h.GetHit())
	}
	return entries
}

// keptOf is h as a key keeps it.
func keptOf(h *livetabv1.MatchHit) keptHit {
	k, _ := nextKeptHit(appendHitEntry(nil, h))
	return k
}

// nextKeptHit reads the first entry of entries and returns it and its
// length; a length < 0 when it does not parse. Fields are read as protobuf
// decodes them: the last occurrence wins, unknown fields are skipped.
func nextKeptHit(entries []byte) (keptHit, int) {
	num, typ, n := protowire.ConsumeTag(entries)
	if n < 0 || num != codecs.MatchStateHits || typ != protowire.BytesType {
		return keptHit{}, -1
	}
	msg, m := protowire.ConsumeBytes(entries[n:])
	if m < 0 {
		return keptHit{}, -1
	}
	k := keptHit{entry: entries[:n+m]}
	for len(msg) > 0 {
		num, typ, n := protowire.ConsumeTag(msg)
		if n < 0 {
			return keptHit{}, -1
		}
		msg = msg[n:]
		switch {
		case num == codecs.MatchHitReceivedUs && typ == protowire.VarintType:
			v, l := protowire.ConsumeVarint(msg)
			if l < 0 {
				return keptHit{}, -1
			}
			k.receivedUs, msg = int64(v), msg[l:]
			continue
		case typ == protowire.BytesType && num >= codecs.MatchHitID && num <= codecs.MatchHitHit:
			v, l := protowire.ConsumeBytes(msg)
			if l < 0 {
				return keptHit{}, -1
			}
			switch num {
			case codecs.MatchHitID:
				k.id = v
			case codecs.MatchHitAccount:
				k.account = v
			case codecs.MatchHitMatch:
				k.match = v
			case codecs.MatchHitHit:
				k.hit = v
			}
			msg = msg[l:]
			continue
		}
		l := protowire.ConsumeFieldValue(num, typ, msg)
		if l < 0 {
			return keptHit{}, -1
		}
		msg = msg[l:]
	}
	return k, n + m
}

// keptHits are the hits of st, newest first, read in place. A key written
// before hit_entries existed keeps them as messages: they are encoded
// once here, and written as entries when the key changes. Entries that do
// not parse end the list: only this package writes them.
func keptHits(st *livetabv1.MatchState) []keptHit {
	entries := st.GetHitEntries()
	if len(entries) == 0 && len(st.GetHits()) > 0 {
		for _, h := range st.GetHits() {
			entries = appendHitEntry(entries, h)
		}
	}
	if len(entries) == 0 {
		return nil
	}
	// One more than there are, for the hit a key may be adding.
	hits := make([]keptHit, 0, countEntries(entries)+1)
	for len(entries) > 0 {
		k, n := nextKeptHit(entries)
		if n < 0 {
			break
		}
		hits = append(hits, k)
		entries = entries[n:]
	}
	return hits
}

// countEntries is how many entries entries holds, reading their lengths
// only.
func countEntries(entries []byte) int {
	c := 0
	for len(entries) > 0 {
		_, _, n := protowire.ConsumeField(entries)
		if n < 0 {
			break
		}
		c++
		entries = entries[n:]
	}
	return c
}

// setKeptHits writes hits as st's hits: their entries, back to back, in
// one new buffer (hits may alias st's old one).
func setKeptHits(st *livetabv1.MatchState, hits []keptHit) {
	n := 0
	for _, h := range hits {
		n += len(h.entry)
	}
	var entries []byte
	switch {
	case len(hits) == 1:
		// Its entry is a buffer of its own or a part of st's old one,
		// which nothing else holds: no need to copy it.
		entries = hits[0].entry[:n:n]
	case n > 0:
		entries = make([]byte, 0, n)
		for _, h := range hits {
			entries = append(entries, h.entry...)
		}
	}
	st.HitEntries = entries
	st.Hits = nil
}

// firstHitUs is the received time of st's newest hit; 0 when it has none.
func firstHitUs(st *livetabv1.MatchState) int64 {
	if len(st.GetHitEntries()) == 0 {
		if len(st.GetHits()) > 0 {
			return st.GetHits()[0].GetReceivedUs()
		}
		return 0
	}
	k, _ := nextKeptHit(st.GetHitEntries())
	return k.receivedUs
}

// compareKeptHits is CompareHits of kept hits.
func compareKeptHits(a, b keptHit) int {
	if c := cmp.Compare(b.receivedUs, a.receivedUs); c != 0 {
		return c
	}
	return bytes.Compare(a.id, b.id)
}

// matchHits are st's hits as MatchHit messages, newest first: for tests
// and diagnostics, not the hot path.
func matchHits(st *livetabv1.MatchState) []*livetabv1.MatchHit {
	var out []*livetabv1.MatchHit
	for _, k := range keptHits(st) {
		// The entry is field hits of MatchState: it decodes as one.
		wrap := &livetabv1.MatchState{}
		if err := proto.Unmarshal(k.entry, wrap); err == nil && len(wrap.GetHits()) == 1 {
			out = append(out, wrap.GetHits()[0])
		}
	}
	return out
}
