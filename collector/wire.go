package collector

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

// The collector writes a Hit, an Event, or a SessionEvents of Events (see
// eventMessages) per message it produces, and the events of one request all
// carry the same Request. proto.Marshal is generic: it sizes each message
// before writing it, reaches every field through reflection-built tables,
// and walks maps through reflection. The encoders here write the same wire
// format directly, the Request of a batch once for all its events. They
// write what proto.Marshal writes:
// fields in number order, proto3 scalars only when they are not zero, map
// entries with both key and value; only the order of map entries differs,
// which proto.Marshal does not fix either. wire_test.go checks them against
// proto.Marshal and fails when the messages gain a field; the field numbers
// are codecs' (codecs/fields.go).

// errWireUTF8 is what the encoders return for a string that is not UTF-8,
// as proto.Marshal refuses it. The collector checks or cleans every string
// before, so it means a bug.
var errWireUTF8 = errors.New("string field is not valid UTF-8")

// wireWriter appends fields to b and remembers whether a string was not
// UTF-8.
type wireWriter struct {
	b   []byte
	bad bool
}

// str writes a proto3 string field unless it is empty.
func (w *wireWriter) str(num protowire.Number, s string) {
	if s == "" {
		return
	}
	w.strAlways(num, s)
}

// strAlways writes a string field even when empty, as repeated elements
// and map entries are.
func (w *wireWriter) strAlways(num protowire.Number, s string) {
	if !utf8.ValidString(s) {
		w.bad = true
	}
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = protowire.AppendString(w.b, s)
}

// varint writes a proto3 int64 or enum field unless it is zero; negative
// values take ten bytes, as proto.Marshal writes them.
func (w *wireWriter) varint(num protowire.Number, v int64) {
	if v == 0 {
		return
	}
	w.b = protowire.AppendTag(w.b, num, protowire.VarintType)
	w.b = protowire.AppendVarint(w.b, uint64(v))
}

// strMap writes a map<string, string> field, one entry per pair.
func (w *wireWriter) strMap(num protowire.Number, m map[string]string) {
	for k, v := range m {
		if !utf8.ValidString(k) || !utf8.ValidString(v) {
			w.bad = true
		}
		// Keys and values are fields 1 and 2 of the entry, one byte of
		// tag each.
		n := 1 + protowire.SizeBytes(len(k)) + 1 + protowire.SizeBytes(len(v))
		w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
		w.b = protowire.AppendVarint(w.b, uint64(n))
		w.b = protowire.AppendTag(w.b, 1, protowire.BytesType)
		w.b = protowire.AppendString(w.b, k)
		w.b = protowire.AppendTag(w.b, 2, protowire.BytesType)
		w.b = protowire.AppendString(w.b, v)
	}
}

// message writes a message field whose encoding is enc (already a
// message: present even when empty).
func (w *wireWriter) message(num protowire.Number, enc []byte) {
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = protowire.AppendBytes(w.b, enc)
}

func (w *wireWriter) result() ([]byte, error) {
	if w.bad {
		return w.b, errWireUTF8
	}
	return w.b, nil
}

// appendRequest appends r's encoding to b.
func appendRequest(b []byte, r *livetabv1.Request) ([]byte, error) {
	w := wireWriter{b: b}
	w.request(r)
	return w.result()
}

func (w *wireWriter) request(r *livetabv1.Request) {
	w.str(codecs.RequestIP, r.GetIp())
	w.str(codecs.RequestUserAgent, r.GetUserAgent())
	w.str(codecs.RequestReferrer, r.GetReferrer())
	w.str(codecs.RequestAcceptLanguage, r.GetAcceptLanguage())
	w.strMap(codecs.RequestParams, r.GetParams())
	w.str(codecs.RequestOS, r.GetOs())
	w.str(codecs.RequestOSVersion, r.GetOsVersion())
	w.str(codecs.RequestDevice, r.GetDevice())
	w.str(codecs.RequestBrowser, r.GetBrowser())
}

// requestSize is the length of r's encoding.
func requestSize(r *livetabv1.Request) int {
	n := sizeStrNonZero(r.GetIp()) + sizeStrNonZero(r.GetUserAgent()) + sizeStrNonZero(r.GetReferrer()) + sizeStrNonZero(r.GetAcceptLanguage()) +
		sizeStrNonZero(r.GetOs()) + sizeStrNonZero(r.GetOsVersion()) + sizeStrNonZero(r.GetDevice()) + sizeStrNonZero(r.GetBrowser())
	for k, v := range r.GetParams() {
		n += 1 + protowire.SizeBytes(sizeStr(k)+sizeStr(v))
	}
	return n
}

// appendHit appends h's encoding, its Request included, to b.
func appendHit(b []byte, h *livetabv1.Hit) ([]byte, error) {
	w := wireWriter{b: b}
	w.str(codecs.HitID, h.GetId())
	w.str(codecs.HitAccount, h.GetAccount())
	w.str(codecs.HitLink, h.GetLink())
	w.str(codecs.HitCampaign, h.GetCampaign())
	w.str(codecs.HitClickID, h.GetClickId())
	w.str(codecs.HitSession, h.GetSession())
	w.varint(codecs.HitReceivedUs, h.GetReceivedUs())
	if r := h.GetRequest(); r != nil {
		// The Request's length comes first: write it after, then move it
		// behind its tag and length.
		w.b = protowire.AppendTag(w.b, codecs.HitRequest, protowire.BytesType)
		mark := len(w.b)
		w.request(r)
		w.b = insertLength(w.b, mark)
	}
	w.str(codecs.HitDestination, h.GetDestination())
	w.varint(codecs.HitPlatform, int64(h.GetPlatform()))
	w.str(codecs.HitDeviceID, h.GetDeviceId())
	w.str(codecs.HitDeepLink, h.GetDeepLink())
	return w.result()
}

// hitSizeBound is at least the length of appendHit's encoding of h, so
// that it is written in one allocation: each field takes a byte of tag, at
// most five of length (a string is shorter than 4 GB) and its value.
func hitSizeBound(h *livetabv1.Hit) int {
	n := 0
	for _, s := range [...]string{h.GetId(), h.GetAccount(), h.GetLink(), h.GetCampaign(), h.GetClickId(), h.GetSession(),
		h.GetDestination(), h.GetDeviceId(), h.GetDeepLink()} {
		n += 1 + binary.MaxVarintLen32 + len(s)
	}
	n += 2 * (1 + binary.MaxVarintLen64) // received_us, platform
	if r := h.GetRequest(); r != nil {
		n += 1 + binary.MaxVarintLen32 + requestSize(r)
	}
	return n
}

// insertLength inserts, at mark, the varint length of what b holds after
// mark.
func insertLength(b []byte, mark int) []byte {
	n := len(b) - mark
	size := protowire.SizeVarint(uint64(n))
	b = append(b, make([]byte, size)...)
	copy(b[mark+size:], b[mark:mark+n])
	protowire.AppendVarint(b[mark:mark], uint64(n))
	return b
}

// sizeStr is the size of a string field as wireWriter.strAlways writes
// it; num is at most 15 (a one-byte tag).
func sizeStr(s string) int { return 1 + protowire.SizeBytes(len(s)) }

// sizeStrNonZero is the size of a proto3 string field (wireWriter.str).
func sizeStrNonZero(s string) int {
	if s == "" {
		return 0
	}
	return sizeStr(s)
}

// appendEvent appends ev's encoding to b, with request (an encoded
// Request, see appendRequest) as its request field when it is not nil;
// ev's own Request is ignored.
func appendEvent(b []byte, ev *livetabv1.Event, request []byte) ([]byte, error) {
	w := wireWriter{b: b}
	w.str(codecs.EventID, ev.GetId())
	w.str(codecs.EventAccount, ev.GetAccount())
	w.str(codecs.EventSession, ev.GetSession())
	w.str(codecs.EventName, ev.GetName())
	w.varint(codecs.EventTimeUs, ev.GetTimeUs())
	w.varint(codecs.EventReceivedUs, ev.GetReceivedUs())
	w.varint(codecs.EventPlatform, int64(ev.GetPlatform()))
	w.str(codecs.EventAppVersion, ev.GetAppVersion())
	for _, d := range ev.GetDeviceIds() {
		w.strAlways(codecs.EventDeviceIDs, d)
	}
	w.str(codecs.EventClickID, ev.GetClickId())
	w.strMap(codecs.EventParams, ev.GetParams())
	if request != nil {
		w.message(codecs.EventRequest, request)
	}
	return w.result()
}
