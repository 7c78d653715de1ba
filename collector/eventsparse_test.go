package collector

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
)

// parseJSONEvent decodes and checks one JSON event, as the handler does
// before looking at accounts.
func parseJSONEvent(raw string, received time.Time) (*livetabv1.Event, string, *eventError) {
	ev, err := decodeJSONEvent([]byte(raw))
	if err != nil {
		return nil, "", err
	}
	warning, err := checkEvent(ev, received)
	if err != nil {
		return nil, "", err
	}
	return ev, warning, nil
}

func TestParseJSONEvent(t *testing.T) {
	received := time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)
	valid := `"id":"e1","account":"acme","session":"s1","name":"install"`
	long := func(n int) string { return strings.Repeat("x", n) }
	params := func(n int) string {
		var kv []string
		for i := range n {
			kv = append(kv, `"k`+strings.Repeat("x", i)+`":"v"`)
		}
		return `{` + strings.Join(kv, ",") + `}`
	}
	ids := func(n int) string { return `["` + strings.TrimSuffix(strings.Repeat(`d","`, n), `","`) + `"]` }
	tests := []struct {
		name        string
		raw         string
		wantCode    string
		wantReason  string
		wantWarning string
		check       func(t *testing.T, ev *livetabv1.Event)
	}{
		{name: "minimal: time defaults to received", raw: `{` + valid + `}`, check: func(t *testing.T, ev *livetabv1.Event) {
			if ev.TimeUs != received.UnixMicro() || ev.ReceivedUs != received.UnixMicro() {
				t.Errorf("time %d received %d", ev.TimeUs, ev.ReceivedUs)
			}
			if ev.Platform != livetabv1.Platform_PLATFORM_UNSPECIFIED {
				t.Errorf("platform %v", ev.Platform)
			}
		}},
		{name: "full", raw: `{` + valid + `,"time":"2026-11-22T10:00:00.5+01:00","platform":"Android","app_version":"2.1.0","device_ids":["d1","d2"],"click_id":"c1","params":{"k":"v"}}`,
			check: func(t *testing.T, ev *livetabv1.Event) {
				want := time.Date(2026, 11, 22, 9, 0, 0, 500e6, time.UTC).UnixMicro()
				if ev.TimeUs != want || ev.Platform != livetabv1.Platform_PLATFORM_ANDROID || ev.AppVersion != "2.1.0" ||
					len(ev.DeviceIds) != 2 || ev.ClickId != "c1" || ev.Params["k"] != "v" || ev.Name != "install" || ev.Session != "s1" || ev.Account != "acme" || ev.Id != "e1" {
					t.Errorf("event %v", ev)
				}
			}},
		{name: "at every limit", raw: `{"id":"` + long(MaxEventIDLen) + `","account":"` + long(MaxNameLen) + `","session":"` + long(MaxEventIDLen) +
			`","name":"` + long(MaxEventNameLen) + `","click_id":"` + long(MaxEventIDLen) + `","app_version":"` + long(MaxAppVersionLen) +
			`","device_ids":` + ids(MaxDeviceIDs) + `,"params":{"` + long(MaxParamKeyLen) + `":"` + long(MaxParamValueLen) + `"}}`},
		{name: "escaped unicode is fine", raw: `{` + valid + `,"params":{"emoji":"\ud83c\udf31","é":"caf\u00e9"}}`, check: func(t *testing.T, ev *livetabv1.Event) {
			if ev.Params["emoji"] != "🌱" || ev.Params["é"] != "café" {
				t.Errorf("params %q", ev.Params)
			}
		}},
		{name: "null fields are absent", raw: `{` + valid + `,"params":null,"device_ids":null,"time":null}`},
		{name: "50 params", raw: `{` + valid + `,"params":` + params(MaxEventParams) + `}`},

		{name: "missing id", raw: `{"account":"acme","session":"s1","name":"open"}`, wantCode: RejectMissingField, wantReason: "missing id"},
		{name: "empty account", raw: `{"id":"e1","account":"","session":"s1","name":"open"}`, wantCode: RejectMissingField, wantReason: "missing account"},
		{name: "missing session", raw: `{"id":"e1","account":"acme","name":"open"}`, wantCode: RejectMissingField, wantReason: "missing session"},
		{name: "null name", raw: `{"id":"e1","account":"acme","session":"s1","name":null}`, wantCode: RejectMissingField, wantReason: "missing name"},

		{name: "long id", raw: `{"id":"` + long(MaxEventIDLen+1) + `","account":"acme","session":"s1","name":"open"}`, wantCode: RejectTooLong, wantReason: "id: 129 bytes, at most 128"},
		{name: "long session", raw: `{"id":"e1","account":"acme","session":"` + long(MaxEventIDLen+1) + `","name":"open"}`, wantCode: RejectTooLong, wantReason: "session: 129 bytes"},
		{name: "long name", raw: `{"id":"e1","account":"acme","session":"s","name":"` + long(MaxEventNameLen+1) + `"}`, wantCode: RejectTooLong, wantReason: "name: 129 bytes"},
		{name: "long account", raw: `{"id":"e1","account":"` + long(MaxNameLen+1) + `","session":"s","name":"n"}`, wantCode: RejectTooLong, wantReason: "account: 65 bytes, at most 64"},
		{name: "long click_id", raw: `{` + valid + `,"click_id":"` + long(MaxEventIDLen+1) + `"}`, wantCode: RejectTooLong, wantReason: "click_id: 129 bytes"},
		{name: "long app_version", raw: `{` + valid + `,"app_version":"` + long(MaxAppVersionLen+1) + `"}`, wantCode: RejectTooLong, wantReason: "app_version: 65 bytes, at most 64"},
		{name: "long device id", raw: `{` + valid + `,"device_ids":["d","` + long(MaxDeviceIDLen+1) + `"]}`, wantCode: RejectTooLong, wantReason: "device_ids[1]: 129 bytes"},
		{name: "long param name", raw: `{` + valid + `,"params":{"` + long(MaxParamKeyLen+1) + `":"v"}}`, wantCode: RejectTooLong, wantReason: "params: name \"xxx"},
		{name: "long param value", raw: `{` + valid + `,"params":{"utm":"` + long(MaxParamValueLen+1) + `"}}`, wantCode: RejectTooLong, wantReason: `params["utm"]: 1025 bytes, at most 1024`},
		{name: "too many params", raw: `{` + valid + `,"params":` + params(MaxEventParams+1) + `}`, wantCode: RejectTooManyParams, wantReason: "params: 51 entries, at most 50"},
		{name: "too many device ids", raw: `{` + valid + `,"device_ids":` + ids(MaxDeviceIDs+1) + `}`, wantCode: RejectTooManyDeviceIDs, wantReason: "device_ids: 11 ids, at most 10"},

		{name: "invalid UTF-8 in name", raw: "{\"id\":\"e1\",\"account\":\"acme\",\"session\":\"s1\",\"name\":\"op\xffen\"}", wantCode: RejectInvalidUTF8, wantReason: "name: not valid UTF-8"},
		{name: "invalid UTF-8 in a param value", raw: "{" + valid + ",\"params\":{\"ok\":\"v\",\"utm\":\"\xc3\x28\"}}", wantCode: RejectInvalidUTF8, wantReason: `params["utm"]: not valid UTF-8`},
		{name: "invalid UTF-8 in a param name", raw: "{" + valid + ",\"params\":{\"\xff\":\"v\"}}", wantCode: RejectInvalidUTF8, wantReason: "params: a name is not valid UTF-8"},
		{name: "invalid UTF-8 in a device id", raw: "{" + valid + ",\"device_ids\":[\"ok\",\"\xed\xa0\x80\"]}", wantCode: RejectInvalidUTF8, wantReason: "device_ids[1]: not valid UTF-8"},
		{name: "lone surrogate escape", raw: `{` + valid + `,"click_id":"\udc00"}`, wantCode: RejectInvalidUTF8, wantReason: "click_id: not valid UTF-8"},
		{name: "high surrogate without low", raw: `{"id":"\ud83c-","account":"acme","session":"s1","name":"x"}`, wantCode: RejectInvalidUTF8, wantReason: "id: not valid UTF-8"},
		{name: "invalid UTF-8 in an unknown field's name", raw: "{" + valid + ",\"\xfe\":1}", wantCode: RejectInvalidUTF8, wantReason: "a field name is not valid UTF-8"},

		{name: "unknown field", raw: `{` + valid + `,"colour":"red"}`, wantCode: RejectMalformed, wantReason: `unknown field "colour"`},
		{name: "received_us is the collector's", raw: `{` + valid + `,"received_us":1}`, wantCode: RejectMalformed, wantReason: `unknown field "received_us"`},
		{name: "wrong type", raw: `{` + valid + `,"params":{"n":5}}`, wantCode: RejectMalformed, wantReason: `field "params`},
		{name: "number id", raw: `{"id":7,"account":"acme","session":"s1","name":"open"}`, wantCode: RejectMalformed, wantReason: `field "id": expected a string, got JSON number`},
		{name: "not an object", raw: `null`, wantCode: RejectMalformed, wantReason: "must be a JSON object"},
		{name: "array", raw: `[]`, wantCode: RejectMalformed, wantReason: "must be a JSON object"},

		{name: "bad time", raw: `{` + valid + `,"time":"yesterday"}`, wantCode: RejectInvalidValue, wantReason: `time: "yesterday" is not RFC 3339`},
		{name: "time without zone", raw: `{` + valid + `,"time":"2026-11-22T10:00:00"}`, wantCode: RejectInvalidValue, wantReason: "time:"},
		{name: "bad platform", raw: `{` + valid + `,"platform":"tv"}`, wantCode: RejectInvalidValue, wantReason: `platform: "tv" is not ios, android, web or other`},
		{name: "bad account", raw: `{"id":"e1","account":"Acme/x","session":"s1","name":"open"}`, wantCode: RejectInvalidValue, wantReason: `account: "Acme/x" does not match`},
		{name: "empty device id", raw: `{` + valid + `,"device_ids":[""]}`, wantCode: RejectInvalidValue, wantReason: "device_ids[0]: empty"},
		{name: "empty param name", raw: `{` + valid + `,"params":{"":"v"}}`, wantCode: RejectInvalidValue, wantReason: "params: empty name"},

		{name: "time a day and more ahead is clamped", raw: `{` + valid + `,"time":"2026-11-23T10:00:06Z"}`,
			wantWarning: "more than 24h ahead", check: func(t *testing.T, ev *livetabv1.Event) {
				if ev.TimeUs != received.UnixMicro() {
					t.Errorf("time %d, want clamped to received %d", ev.TimeUs, received.UnixMicro())
				}
			}},
		{name: "time a day ahead is kept", raw: `{` + valid + `,"time":"2026-11-23T10:00:05Z"}`, check: func(t *testing.T, ev *livetabv1.Event) {
			if want := received.Add(24 * time.Hour).UnixMicro(); ev.TimeUs != want {
				t.Errorf("time %d, want %d", ev.TimeUs, want)
			}
		}},
		{name: "far future is clamped", raw: `{` + valid + `,"time":"9999-12-31T23:59:59Z"}`, wantWarning: "ahead of the collector's clock"},
		{name: "reset clock is clamped", raw: `{` + valid + `,"time":"1970-01-01T00:00:01Z"}`, wantWarning: "before 2000-01-01T00:00:00Z"},
		{name: "last month is kept", raw: `{` + valid + `,"time":"2026-10-22T10:00:00Z"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, warning, err := parseJSONEvent(tt.raw, received)
			if tt.wantCode != "" {
				if err == nil || err.code != tt.wantCode || !strings.Contains(err.reason, tt.wantReason) {
					t.Fatalf("err = %#v, want code %s and a reason containing %q", err, tt.wantCode, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if (tt.wantWarning == "") != (warning == "") || !strings.Contains(warning, tt.wantWarning) {
				t.Errorf("warning %q, want %q", warning, tt.wantWarning)
			}
			if _, err := proto.Marshal(ev); err != nil {
				t.Errorf("an accepted event must encode: %v", err)
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}
}

func TestSplitProtoEvents(t *testing.T) {
	ev := func(id string) []byte {
		b, err := proto.Marshal(&livetabv1.Event{Id: id, Account: "acme", Session: "s", Name: "open"})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	batch, err := proto.Marshal(&livetabv1.EventBatch{Events: []*livetabv1.Event{{Id: "e1"}, {Id: "e2"}, {}}})
	if err != nil {
		t.Fatal(err)
	}
	withEvent := func(b []byte, e []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, 1, protowire.BytesType), e)
	}
	tests := []struct {
		name    string
		body    []byte
		want    int
		wantErr string
	}{
		{name: "batch", body: batch, want: 3},
		{name: "empty body is an empty batch", body: nil, want: 0},
		{name: "events that do not decode are split anyway", body: withEvent(withEvent(nil, ev("a")), []byte{0xff}), want: 2},
		{name: "truncated", body: batch[:len(batch)-1], wantErr: "malformed protobuf EventBatch at byte"},
		{name: "bad tag", body: []byte{0x80}, wantErr: "malformed protobuf EventBatch at byte 0"},
		{name: "unknown field", body: protowire.AppendVarint(protowire.AppendTag(withEvent(nil, ev("a")), 2, protowire.VarintType), 1),
			wantErr: "unknown field 2 at byte"},
		{name: "events as varint", body: protowire.AppendVarint(protowire.AppendTag(nil, 1, protowire.VarintType), 1), wantErr: "field 1 (events) at byte 0 has wire type varint, want bytes"},
		{name: "a single Event is not a batch", body: ev("single"), wantErr: "unknown field"},
		{name: "JSON is not protobuf", body: []byte(`{"id":"e1"}`), wantErr: "protobuf EventBatch"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := splitProtoEvents(tt.body)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != tt.want {
				t.Fatalf("%d events, want %d", len(got), tt.want)
			}
		})
	}
}

func TestDecodeProtoEvent(t *testing.T) {
	received := time.Date(2026, 11, 22, 10, 0, 5, 0, time.UTC)
	valid := &livetabv1.Event{Id: "e1", Account: "acme", Session: "s1", Name: "purchase"}
	encode := func(ev *livetabv1.Event) []byte {
		b, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	with := func(f func(ev *livetabv1.Event)) []byte {
		ev := proto.Clone(valid).(*livetabv1.Event)
		f(ev)
		return encode(ev)
	}
	str := func(b []byte, num protowire.Number, s string) []byte {
		return protowire.AppendString(protowire.AppendTag(b, num, protowire.BytesType), s)
	}
	entry := func(k, v string) []byte { return str(str(nil, 1, k), 2, v) }
	params := func(b []byte, e []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(b, 11, protowire.BytesType), e)
	}
	tests := []struct {
		name       string
		data       []byte
		wantCode   string
		wantReason string
		check      func(t *testing.T, ev *livetabv1.Event)
	}{
		{name: "full", data: with(func(ev *livetabv1.Event) {
			ev.TimeUs, ev.Platform, ev.AppVersion = received.Add(-time.Minute).UnixMicro(), livetabv1.Platform_PLATFORM_IOS, "1.0"
			ev.DeviceIds, ev.ClickId, ev.Params = []string{"d"}, "c", map[string]string{"sku": "x"}
		}), check: func(t *testing.T, ev *livetabv1.Event) {
			if ev.TimeUs != received.Add(-time.Minute).UnixMicro() || ev.ReceivedUs != received.UnixMicro() || ev.Platform != livetabv1.Platform_PLATFORM_IOS ||
				ev.Params["sku"] != "x" || ev.ClickId != "c" || len(ev.DeviceIds) != 1 {
				t.Errorf("event %v", ev)
			}
		}},
		{name: "time 0 is received", data: encode(valid), check: func(t *testing.T, ev *livetabv1.Event) {
			if ev.TimeUs != received.UnixMicro() {
				t.Errorf("time %d", ev.TimeUs)
			}
		}},
		{name: "negative time is clamped", data: with(func(ev *livetabv1.Event) { ev.TimeUs = -5 }), check: func(t *testing.T, ev *livetabv1.Event) {
			if ev.TimeUs != received.UnixMicro() {
				t.Errorf("time %d", ev.TimeUs)
			}
		}},
		{name: "missing name", data: with(func(ev *livetabv1.Event) { ev.Name = "" }), wantCode: RejectMissingField, wantReason: "missing name"},
		{name: "long session", data: with(func(ev *livetabv1.Event) { ev.Session = strings.Repeat("s", MaxEventIDLen+1) }), wantCode: RejectTooLong, wantReason: "session: 129 bytes"},
		{name: "unknown platform number", data: with(func(ev *livetabv1.Event) { ev.Platform = 42 }), wantCode: RejectInvalidValue, wantReason: "platform: unknown value 42"},
		{name: "received_us is the collector's", data: with(func(ev *livetabv1.Event) { ev.ReceivedUs = 1 }), wantCode: RejectMalformed, wantReason: "received_us is set by the collector"},
		{name: "request is the collector's", data: with(func(ev *livetabv1.Event) { ev.Request = &livetabv1.Request{Ip: "1.2.3.4"} }), wantCode: RejectMalformed, wantReason: "request is set by the collector"},
		{name: "invalid UTF-8 in name", data: str(encode(valid), 4, "op\xffen"), wantCode: RejectInvalidUTF8, wantReason: "name: not valid UTF-8"},
		{name: "invalid UTF-8 in a device id", data: str(encode(valid), 9, "\xc3"), wantCode: RejectInvalidUTF8, wantReason: "device_ids: not valid UTF-8"},
		{name: "invalid UTF-8 in a param value", data: params(encode(valid), entry("k", "\xff")), wantCode: RejectInvalidUTF8, wantReason: "params.value: not valid UTF-8"},
		{name: "invalid UTF-8 in a param name", data: params(encode(valid), entry("\xff", "v")), wantCode: RejectInvalidUTF8, wantReason: "params.key: not valid UTF-8"},
		{name: "unknown field", data: protowire.AppendVarint(protowire.AppendTag(encode(valid), 99, protowire.VarintType), 1), wantCode: RejectMalformed, wantReason: "unknown field 99 at byte"},
		{name: "unknown field in a param", data: params(encode(valid), str(entry("k", "v"), 3, "x")), wantCode: RejectMalformed, wantReason: "params: unknown field 3"},
		{name: "wrong wire type", data: protowire.AppendVarint(protowire.AppendTag(encode(valid), 1, protowire.VarintType), 1), wantCode: RejectMalformed, wantReason: "id: wire type varint at byte 24, want bytes"},
		{name: "truncated", data: encode(valid)[:12], wantCode: RejectMalformed, wantReason: "malformed protobuf event at byte"},
		{name: "garbage", data: []byte{0xff, 0xff, 0xff}, wantCode: RejectMalformed, wantReason: "malformed protobuf event at byte 0"},
		{name: "empty event", data: nil, wantCode: RejectMissingField, wantReason: "missing id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := decodeProtoEvent(tt.data)
			if err == nil {
				_, err = checkEvent(ev, received)
			}
			if tt.wantCode != "" {
				if err == nil || err.code != tt.wantCode || !strings.Contains(err.reason, tt.wantReason) {
					t.Fatalf("err = %#v, want code %s and a reason containing %q", err, tt.wantCode, tt.wantReason)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.check != nil {
				tt.check(t, ev)
			}
		})
	}
	if got := probeProtoID(append(with(func(ev *livetabv1.Event) { ev.Id = "probe-me" }), 0xff)); got != "probe-me" {
		t.Errorf("probeProtoID = %q, want the id before the garbage", got)
	}
}

func TestInvalidJSONString(t *testing.T) {
	tests := []struct {
		name, json string
		wantPath   string
		wantKey    bool
		wantFound  bool
	}{
		{name: "all fine", json: `{"a":"b","c":["d",{"e":"f"}],"g":1,"h":null,"i":true}`},
		{name: "escapes are fine", json: `{"a":"\u00e9\ud83c\udf31\\u\n\"\/"}`},
		{name: "escaped backslash before u is fine", json: `{"a":"\\udc00"}`},
		{name: "raw invalid byte", json: "{\"a\":\"\xff\"}", wantPath: "a", wantFound: true},
		{name: "overlong encoding", json: "{\"a\":\"\xc0\xaf\"}", wantPath: "a", wantFound: true},
		{name: "nested", json: "{\"a\":{\"b\":[\"ok\",{\"c\":\"\xff\"}]}}", wantPath: `a["b"][1]["c"]`, wantFound: true},
		{name: "key", json: "{\"a\":{\"\xff\":1}}", wantPath: "a", wantKey: true, wantFound: true},
		{name: "top-level key", json: "{\"\xff\":1}", wantKey: true, wantFound: true},
		{name: "lone low surrogate", json: `{"a":["x","\udc00"]}`, wantPath: "a[1]", wantFound: true},
		{name: "high surrogate then letter", json: `{"a":"\ud800x"}`, wantPath: "a", wantFound: true},
		{name: "two high surrogates", json: `{"a":"\ud800\ud800"}`, wantPath: "a", wantFound: true},
		{name: "high surrogate at the end", json: `{"a":"\ud800"}`, wantPath: "a", wantFound: true},
		{name: "after values of every kind", json: "{\"n\":1,\"o\":{},\"l\":[],\"b\":false,\"z\":\"\xff\"}", wantPath: "z", wantFound: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !json.Valid([]byte(tt.json)) {
				t.Fatalf("test input %q is not JSON", tt.json)
			}
			path, isKey, found := invalidJSONString([]byte(tt.json))
			if path != tt.wantPath || isKey != tt.wantKey || found != tt.wantFound {
				t.Errorf("= %q, %v, %v; want %q, %v, %v", path, isKey, found, tt.wantPath, tt.wantKey, tt.wantFound)
			}
		})
	}
}

func TestEventTime(t *testing.T) {
	received := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC).UnixMicro()
	day := (24 * time.Hour).Microseconds()
	for _, tt := range []struct {
		device, want int64
		warn         bool
	}{
		{0, received, false},
		{received - 1, received - 1, false},
		{received + day, received + day, false},
		{received + day + 1, received, true},
		{MinEventTimeUs, MinEventTimeUs, false},
		{MinEventTimeUs - 1, received, true},
		{-1 << 62, received, true},
		{1<<63 - 1, received, true},
	} {
		got, warning := eventTime(tt.device, received)
		if got != tt.want || (warning != "") != tt.warn {
			t.Errorf("eventTime(%d) = %d, %q; want %d, warning %v", tt.device, got, warning, tt.want, tt.warn)
		}
	}
}
