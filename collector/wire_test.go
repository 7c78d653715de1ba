package collector

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"strconv"
	"testing"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// TestWireFields fails when Request, Hit or Event gain, lose or change a
// field: the hand-written encoders (wire.go) must follow.
func TestWireFields(t *testing.T) {
	for _, tt := range []struct {
		msg  proto.Message
		want []string
	}{
		{&livetabv1.Request{}, []string{"1 ip string", "2 user_agent string", "3 referrer string", "4 accept_language string",
			"5 params map", "6 os string", "7 os_version string", "8 device string", "9 browser string"}},
		{&livetabv1.Hit{}, []string{"1 id string", "2 account string", "3 link string", "4 campaign string", "5 click_id string",
			"6 session string", "7 received_us int64", "8 request message", "9 destination string", "10 platform enum",
			"11 device_id string", "12 deep_link string"}},
		{&livetabv1.Event{}, []string{"1 id string", "2 account string", "3 session string", "4 name string", "5 time_us int64",
			"6 received_us int64", "7 platform enum", "8 app_version string", "9 device_ids repeated string", "10 click_id string",
			"11 params map", "12 request message"}},
	} {
		fields := tt.msg.ProtoReflect().Descriptor().Fields()
		var got []string
		for i := range fields.Len() {
			fd := fields.Get(i)
			kind := fd.Kind().String()
			switch {
			case fd.IsMap():
				if fd.MapKey().Kind() != protoreflect.StringKind || fd.MapValue().Kind() != protoreflect.StringKind {
					kind = "map of " + fd.MapKey().Kind().String() + " to " + fd.MapValue().Kind().String()
				} else {
					kind = "map"
				}
			case fd.IsList():
				kind = "repeated " + kind
			case fd.HasPresence() && fd.Kind() != protoreflect.MessageKind:
				kind = "optional " + kind
			}
			got = append(got, strconv.Itoa(int(fd.Number()))+" "+string(fd.Name())+" "+kind)
		}
		if !slices.Equal(got, tt.want) {
			t.Errorf("%s has fields\n %q\nthe encoders in wire.go know\n %q\nupdate them and this test", tt.msg.ProtoReflect().Descriptor().FullName(), got, tt.want)
		}
	}
}

// randomString is a string of up to n runes, some of them not ASCII.
func randomString(rng *rand.Rand, n int) string {
	runes := []rune{'a', 'z', '0', '-', ' ', 'é', '🌱', '\x00', '"', 0x7f, 0x80, 0x10ffff}
	var b []rune
	for range rng.IntN(n + 1) {
		b = append(b, runes[rng.IntN(len(runes))])
	}
	return string(b)
}

func randomInt64(rng *rand.Rand) int64 {
	switch rng.IntN(4) {
	case 0:
		return 0
	case 1:
		return -rng.Int64()
	case 2:
		return rng.Int64N(1 << 20)
	}
	return rng.Int64()
}

func randomMap(rng *rand.Rand, max int) map[string]string {
	if rng.IntN(3) == 0 {
		return nil
	}
	m := map[string]string{}
	for range rng.IntN(max + 1) {
		m[randomString(rng, 5)] = randomString(rng, 8)
	}
	return m
}

func randomRequest(rng *rand.Rand, max int) *livetabv1.Request {
	return &livetabv1.Request{Ip: randomString(rng, 5), UserAgent: randomString(rng, 20), Referrer: randomString(rng, 5),
		AcceptLanguage: randomString(rng, 5), Params: randomMap(rng, max), Os: randomString(rng, 3), OsVersion: randomString(rng, 3),
		Device: randomString(rng, 3), Browser: randomString(rng, 3)}
}

// checkEncoding checks got, msg's encoding by one of wire.go's encoders,
// against proto.Marshal: byte for byte when exact (the maps have at most
// one entry, as proto.Marshal writes entries in random order), and in any
// case by decoding it.
func checkEncoding(t *testing.T, msg proto.Message, got []byte, err error, exact bool) {
	t.Helper()
	if err != nil {
		t.Fatalf("encode %v: %v", msg, err)
	}
	want, err := proto.Marshal(msg)
	if err != nil {
		t.Fatal(err)
	}
	if exact && !bytes.Equal(got, want) {
		t.Fatalf("encoding of %v\n got %x\nwant %x", msg, got, want)
	}
	back := msg.ProtoReflect().New().Interface()
	if err := proto.Unmarshal(got, back); err != nil {
		t.Fatalf("encoding of %v does not decode: %v", msg, err)
	}
	if !proto.Equal(back, msg) {
		t.Fatalf("encoding of %v decodes to %v", msg, back)
	}
}

func TestWireEncodersMatchProtoMarshal(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range 3000 {
		maxMap := 1
		if i%2 == 1 {
			maxMap = 6
		}
		exact := maxMap == 1

		req := randomRequest(rng, maxMap)
		if rng.IntN(5) == 0 {
			req = &livetabv1.Request{}
		}
		got, err := appendRequest(nil, req)
		checkEncoding(t, req, got, err, exact)
		if size := requestSize(req); size != len(got) {
			t.Fatalf("requestSize = %d, appendRequest wrote %d bytes", size, len(got))
		}

		hit := &livetabv1.Hit{Id: randomString(rng, 5), Account: randomString(rng, 5), Link: randomString(rng, 5), Campaign: randomString(rng, 5),
			ClickId: randomString(rng, 5), Session: randomString(rng, 5), ReceivedUs: randomInt64(rng), Destination: randomString(rng, 30),
			Platform: livetabv1.Platform(rng.Int32N(6) - 1), DeviceId: randomString(rng, 5), DeepLink: randomString(rng, 5)}
		if rng.IntN(4) != 0 {
			hit.Request = req
		}
		got, err = appendHit([]byte("prefix"), hit)
		if bound := hitSizeBound(hit); bound < len(got)-len("prefix") {
			t.Fatalf("hitSizeBound = %d, appendHit wrote %d bytes", bound, len(got)-len("prefix"))
		}
		if !bytes.HasPrefix(got, []byte("prefix")) {
			t.Fatalf("appendHit overwrote what b held: %q", got)
		}
		checkEncoding(t, hit, got[len("prefix"):], err, exact)

		ev := &livetabv1.Event{Id: randomString(rng, 5), Account: randomString(rng, 5), Session: randomString(rng, 5), Name: randomString(rng, 5),
			TimeUs: randomInt64(rng), ReceivedUs: randomInt64(rng), Platform: livetabv1.Platform(rng.Int32N(6) - 1),
			AppVersion: randomString(rng, 5), ClickId: randomString(rng, 5), Params: randomMap(rng, maxMap)}
		for range rng.IntN(4) {
			ev.DeviceIds = append(ev.DeviceIds, randomString(rng, 4)) // empty ones too
		}
		var reqWire []byte
		if rng.IntN(4) != 0 {
			if reqWire, err = appendRequest(nil, req); err != nil {
				t.Fatal(err)
			}
			// reqWire is empty (not nil) for an empty Request: the field
			// is still written, as proto.Marshal writes a set message.
			reqWire = append([]byte{}, reqWire...)
		}
		got, err = appendEvent(nil, ev, reqWire)

		withReq := proto.Clone(ev).(*livetabv1.Event)
		if reqWire != nil {
			withReq.Request = req
		}
		checkEncoding(t, withReq, got, err, exact)
	}
}

// TestWireLongRequest covers a Request whose length takes more than one
// byte of varint, which appendHit moves behind its tag.
func TestWireLongRequest(t *testing.T) {
	for _, n := range []int{0, 1, 100, 127, 128, 200, 16383, 16384, 20000} {
		ua := string(bytes.Repeat([]byte{'u'}, n))
		hit := &livetabv1.Hit{Id: "h", Request: &livetabv1.Request{UserAgent: ua}, DeepLink: "x"}
		got, err := appendHit(nil, hit)
		checkEncoding(t, hit, got, err, true)
	}
}

func TestWireRefusesInvalidUTF8(t *testing.T) {
	for name, enc := range map[string]func() ([]byte, error){
		"request": func() ([]byte, error) { return appendRequest(nil, &livetabv1.Request{Os: "\xff"}) },
		"map key": func() ([]byte, error) {
			return appendRequest(nil, &livetabv1.Request{Params: map[string]string{"\xff": ""}})
		},
		"hit": func() ([]byte, error) { return appendHit(nil, &livetabv1.Hit{Destination: "\xc3"}) },
		"device id": func() ([]byte, error) {
			return appendEvent(nil, &livetabv1.Event{DeviceIds: []string{"\xed\xa0\x80"}}, nil)
		},
		"param": func() ([]byte, error) {
			return appendEvent(nil, &livetabv1.Event{Params: map[string]string{"k": "\xff"}}, nil)
		},
	} {
		if _, err := enc(); err == nil {
			t.Errorf("%s: invalid UTF-8 encoded without an error, proto.Marshal refuses it", name)
		}
	}
}
