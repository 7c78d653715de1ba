package collector

import (
	"encoding/binary"
	"errors"
	"unicode/utf8"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// The collector writes a Hit or an Event per message it produces, and the
// events of one request all carry the same Request. proto.Marshal is
// generic: it sizes each message before writing it, reaches every field
// through reflection-built tables, and walks maps through reflection. The
// encoders here write the same wire format directly, the Request of a
// batch once for all its events. They write what proto.Marshal writes:
// fields in number order, proto3 scalars only when they are not zero, map
// entries with both key and value; only the order of map entries differs,
// which proto.Marshal does not fix either. wire_test.go checks them against
// proto.Marshal and fails when the messages gain a field.

// errWireUTF8 is what the encoders return for a string that is not UTF-8,
// as proto.Marshal refuses it. The collector checks or cleans every string
// before, so it means a bug.
var errWireUTF8 = errors.New("string field is not valid UTF-8")

// Field numbers of livetab.v1.Request.
const (
	requestIP             protowire.Number = 1
	requestUserAgent      protowire.Number = 2
	requestReferrer       protowire.Number = 3
	requestAcceptLanguage protowire.Number = 4
	requestParams         protowire.Number = 5
	requestOS             protowire.Number = 6
	requestOSVersion      protowire.Number = 7
	requestDevice         protowire.Number = 8
	requestBrowser        protowire.Number = 9
)

// Field numbers of livetab.v1.Hit.
const (
	hitID          protowire.Number = 1
	hitAccount     protowire.Number = 2
	hitLink        protowire.Number = 3
	hitCampaign    protowire.Number = 4
	hitClickID     protowire.Number = 5
	hitSession     protowire.Number = 6
	hitReceivedUs  protowire.Number = 7
	hitRequest     protowire.Number = 8
	hitDestination protowire.Number = 9
	hitPlatform    protowire.Number = 10
	hitDeviceID    protowire.Number = 11
	hitDeepLink    protowire.Number = 12
)

// Field numbers of livetab.v1.Event.
const (
	eventID         protowire.Number = 1
	eventAccount    protowire.Number = 2
	eventSession    protowire.Number = 3
	eventName       protowire.Number = 4
	eventTimeUs     protowire.Number = 5
	eventReceivedUs protowire.Number = 6
	eventPlatform   protowire.Number = 7
	eventAppVersion protowire.Number = 8
	eventDeviceIDs  protowire.Number = 9
	eventClickID    protowire.Number = 10
	eventParams     protowire.Number = 11
	eventRequest    protowire.Number = 12
)

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
	w.str(requestIP, r.GetIp())
	w.str(requestUserAgent, r.GetUserAgent())
	w.str(requestReferrer, r.GetReferrer())
	w.str(requestAcceptLanguage, r.GetAcceptLanguage())
	w.strMap(requestParams, r.GetParams())
	w.str(requestOS, r.GetOs())
	w.str(requestOSVersion, r.GetOsVersion())
	w.str(requestDevice, r.GetDevice())
	w.str(requestBrowser, r.GetBrowser())
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
	w.str(hitID, h.GetId())
	w.str(hitAccount, h.GetAccount())
	w.str(hitLink, h.GetLink())
	w.str(hitCampaign, h.GetCampaign())
	w.str(hitClickID, h.GetClickId())
	w.str(hitSession, h.GetSession())
	w.varint(hitReceivedUs, h.GetReceivedUs())
	if r := h.GetRequest(); r != nil {
		// The Request's length comes first: write it after, then move it
		// behind its tag and length.
		w.b = protowire.AppendTag(w.b, hitRequest, protowire.BytesType)
		mark := len(w.b)
		w.request(r)
		w.b = insertLength(w.b, mark)
	}
	w.str(hitDestination, h.GetDestination())
	w.varint(hitPlatform, int64(h.GetPlatform()))
	w.str(hitDeviceID, h.GetDeviceId())
	w.str(hitDeepLink, h.GetDeepLink())
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
	w.str(eventID, ev.GetId())
	w.str(eventAccount, ev.GetAccount())
	w.str(eventSession, ev.GetSession())
	w.str(eventName, ev.GetName())
	w.varint(eventTimeUs, ev.GetTimeUs())
	w.varint(eventReceivedUs, ev.GetReceivedUs())
	w.varint(eventPlatform, int64(ev.GetPlatform()))
	w.str(eventAppVersion, ev.GetAppVersion())
	for _, d := range ev.GetDeviceIds() {
		w.strAlways(eventDeviceIDs, d)
	}
	w.str(eventClickID, ev.GetClickId())
	w.strMap(eventParams, ev.GetParams())
	if request != nil {
		w.message(eventRequest, request)
	}
	return w.result()
}
