package collector_test

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/topics"
)

type eventsAnswer struct {
	Error   string `json:"error"`
	Results []struct {
		ID      string `json:"id"`
		Status  string `json:"status"`
		Code    string `json:"code"`
		Reason  string `json:"reason"`
		Warning string `json:"warning"`
	} `json:"results"`
}

// statuses renders the results as "id:status" in order, with the code of
// rejected ones: "id:rejected:code".
func (a eventsAnswer) statuses() []string {
	var s []string
	for _, r := range a.Results {
		st := r.ID + ":" + r.Status
		if r.Code != "" {
			st += ":" + r.Code
		}
		s = append(s, st)
	}
	return s
}

func event(id, session, name string) map[string]any {
	return map[string]any{"id": id, "account": "acme", "session": session, "name": name}
}

// known registers a link for each account, which makes the collector take
// their events.
func (e *env) known(accounts ...string) {
	e.t.Helper()
	for _, a := range accounts {
		e.putLink(a, "home", map[string]any{"destination": "https://example.com/" + a})
	}
}

// postEvents posts body and decodes the answer, which must have results.
func (e *env) postEvents(r request) (*http.Response, eventsAnswer) {
	e.t.Helper()
	r.method, r.path = "POST", "/v1/events"
	resp, body := e.do(r)
	var ans eventsAnswer
	if err := json.Unmarshal(body, &ans); err != nil || ans.Results == nil {
		e.t.Fatalf("answer %d %q: want {\"results\":[…]}", resp.StatusCode, body)
	}
	return resp, ans
}

// eventRecord is a record of livetab.events, read as the processors read
// it: one Event, or a SessionEvents of an app session's events.
type eventRecord struct {
	partition int32
	offset    int64
	key       string
	batch     bool // a SessionEvents
	size      int  // of the value
	events    []*livetabv1.Event
}

// ids renders r as "key:id,id" ("key:[id,id]" for a SessionEvents).
func (r eventRecord) ids() string {
	ids := make([]string, len(r.events))
	for i, ev := range r.events {
		ids[i] = ev.Id
	}
	s := strings.Join(ids, ",")
	if r.batch {
		s = "[" + s + "]"
	}
	return r.key + ":" + s
}

// readEventRecord decodes m, a record of livetab.events, failing the test
// unless it decodes and each of its events belongs to the account it is
// keyed by.
func readEventRecord(t *testing.T, m *sarama.ConsumerMessage) eventRecord {
	t.Helper()
	raws, err := codecs.EventRecords(m.Value)
	if err != nil {
		t.Fatalf("event record at %d/%d: %v", m.Partition, m.Offset, err)
	}
	r := eventRecord{partition: m.Partition, offset: m.Offset, key: string(m.Key), batch: codecs.IsSessionEvents(m.Value), size: len(m.Value)}
	for _, raw := range raws {
		ev, err := codecs.Typed[livetabv1.Event](raw)
		if err != nil {
			t.Fatalf("event record at %d/%d: %v", m.Partition, m.Offset, err)
		}
		if r.key != ev.Account {
			t.Errorf("event %s keyed %q, want its account %q", ev.Id, r.key, ev.Account)
		}
		r.events = append(r.events, ev)
	}
	return r
}

// eventRecords reads the records of livetab.events written since before,
// in partition and offset order.
func (e *env) eventRecords(before offsets) []eventRecord {
	e.t.Helper()
	var recs []eventRecord
	for _, m := range e.since(string(topics.Events), before) {
		recs = append(recs, readEventRecord(e.t, m))
	}
	slices.SortFunc(recs, func(a, b eventRecord) int {
		return cmp.Or(cmp.Compare(a.partition, b.partition), cmp.Compare(a.offset, b.offset))
	})
	return recs
}

// producedEvents decodes the events written since before, checking each is
// keyed by its account.
func (e *env) producedEvents(before offsets) map[string]*livetabv1.Event {
	e.t.Helper()
	evs := map[string]*livetabv1.Event{}
	for _, r := range e.eventRecords(before) {
		for _, ev := range r.events {
			if evs[ev.Id] != nil {
				e.t.Errorf("event %s written twice", ev.Id)
			}
			evs[ev.Id] = ev
		}
	}
	return evs
}

func protoBatch(t *testing.T, evs ...*livetabv1.Event) []byte {
	t.Helper()
	b, err := proto.Marshal(&livetabv1.EventBatch{Events: evs})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEvents(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.known("acme", "other")
	pe := func(id, account string) *livetabv1.Event {
		return &livetabv1.Event{Id: id, Account: account, Session: "app-" + id, Name: "open"}
	}
	badUTF8 := pe("pb2", "acme")
	badUTF8Data, err := proto.Marshal(badUTF8)
	if err != nil {
		t.Fatal(err)
	}
	badUTF8Data = protowire.AppendString(protowire.AppendTag(badUTF8Data, 4, protowire.BytesType), "op\xffen")
	mixedProto := protowire.AppendBytes(protowire.AppendTag(protoBatch(t, pe("pb1", "acme")), 1, protowire.BytesType), badUTF8Data)
	mixedProto = append(mixedProto, protoBatch(t, pe("pb3", "nobody"), pe("pb4", "other"))...)

	tests := []struct {
		name         string
		body         any
		contentType  string
		wantStatus   int
		wantError    string
		wantResults  []string
		wantProduced []string // event ids on the topic
		wantReason   string   // of the first rejected event
	}{
		{name: "single object", body: event("s1", "app-1", "install"), wantStatus: 200,
			wantResults: []string{"s1:accepted"}, wantProduced: []string{"s1"}},
		{name: "array", body: []any{event("a1", "app-1", "open"), event("a2", "app-2", "purchase")}, wantStatus: 200,
			wantResults: []string{"a1:accepted", "a2:accepted"}, wantProduced: []string{"a1", "a2"}},
		{name: "wrapped", body: map[string]any{"events": []any{event("w1", "app-1", "open"), event("w2", "app-3", "level_up")}}, wantStatus: 200,
			wantResults: []string{"w1:accepted", "w2:accepted"}, wantProduced: []string{"w1", "w2"}},
		{name: "partly bad batch keeps the good ones", body: []any{
			event("p1", "app-1", "open"),
			map[string]any{"id": "p2", "account": "acme", "name": "open"},
			map[string]any{"id": "p3", "account": "acme", "session": "app-1", "name": "open", "colour": "red"},
			event("p4", "app-2", "open"),
			map[string]any{"id": "p5", "account": "nobody", "session": "app-5", "name": "open"},
			map[string]any{"id": "p6", "account": "other", "session": "app-6", "name": "open"},
		}, wantStatus: 200,
			wantResults:  []string{"p1:accepted", "p2:rejected:missing_field", "p3:rejected:malformed", "p4:accepted", "p5:rejected:unknown_account", "p6:accepted"},
			wantProduced: []string{"p1", "p4", "p6"}, wantReason: "missing session"},
		{name: "all bad", body: []any{map[string]any{"id": "b1", "account": "acme", "session": "s"}, 7}, wantStatus: 400, wantError: "no valid event",
			wantResults: []string{"b1:rejected:missing_field", ":rejected:malformed"}, wantReason: "missing name"},
		{name: "unknown field in a single event", body: `{"id":"u1","account":"acme","session":"s","name":"open","extra":1}`, wantStatus: 400, wantError: "no valid event",
			wantResults: []string{"u1:rejected:malformed"}, wantReason: `unknown field "extra"`},
		{name: "invalid UTF-8 in a single event", body: "{\"id\":\"i1\",\"account\":\"acme\",\"session\":\"s\",\"name\":\"op\xffen\"}", wantStatus: 400, wantError: "no valid event",
			wantResults: []string{"i1:rejected:invalid_utf8"}, wantReason: "name: not valid UTF-8"},
		{name: "too many params", body: map[string]any{"id": "m1", "account": "acme", "session": "s", "name": "open", "params": manyParams(collector.MaxEventParams + 1)},
			wantStatus: 400, wantError: "no valid event", wantResults: []string{"m1:rejected:too_many_params"}, wantReason: "params: 51 entries, at most 50"},
		{name: "unknown account", body: map[string]any{"id": "n1", "account": "nobody", "session": "s", "name": "open"}, wantStatus: 404, wantError: "unknown account",
			wantResults: []string{"n1:rejected:unknown_account"}, wantReason: `account: unknown account "nobody"`},
		{name: "only unknown accounts", body: []any{map[string]any{"id": "n2", "account": "nobody", "session": "s", "name": "open"},
			map[string]any{"id": "n3", "account": "nobody-else", "session": "s", "name": "open"}}, wantStatus: 404, wantError: "unknown account",
			wantResults: []string{"n2:rejected:unknown_account", "n3:rejected:unknown_account"}},
		{name: "unknown account and a bad event", body: []any{map[string]any{"id": "n4", "account": "nobody", "session": "s", "name": "open"},
			map[string]any{"id": "n5", "account": "acme", "name": "open"}}, wantStatus: 400, wantError: "no valid event",
			wantResults: []string{"n4:rejected:unknown_account", "n5:rejected:missing_field"}},

		{name: "protobuf batch", contentType: "application/x-protobuf", body: protoBatch(t, pe("pa1", "acme"), pe("pa2", "other")), wantStatus: 200,
			wantResults: []string{"pa1:accepted", "pa2:accepted"}, wantProduced: []string{"pa1", "pa2"}},
		{name: "protobuf, application/protobuf", contentType: "application/protobuf", body: protoBatch(t, pe("pc1", "acme")), wantStatus: 200,
			wantResults: []string{"pc1:accepted"}, wantProduced: []string{"pc1"}},
		{name: "protobuf batch partly bad", contentType: "application/x-protobuf", body: mixedProto, wantStatus: 200,
			wantResults:  []string{"pb1:accepted", "pb2:rejected:invalid_utf8", "pb3:rejected:unknown_account", "pb4:accepted"},
			wantProduced: []string{"pb1", "pb4"}, wantReason: "name: not valid UTF-8"},
		{name: "protobuf batch all bad", contentType: "application/x-protobuf", body: protoBatch(t, &livetabv1.Event{Id: "pd1", Account: "acme", Name: "open"}),
			wantStatus: 400, wantError: "no valid event", wantResults: []string{"pd1:rejected:missing_field"}, wantReason: "missing session"},
		{name: "protobuf unknown account", contentType: "application/x-protobuf", body: protoBatch(t, pe("pe1", "nobody")),
			wantStatus: 404, wantError: "unknown account", wantResults: []string{"pe1:rejected:unknown_account"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.endOffsets(string(topics.Events))
			resp, ans := e.postEvents(request{body: tt.body, contentType: tt.contentType})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %v, want %d", resp.StatusCode, ans, tt.wantStatus)
			}
			if !slices.Equal(ans.statuses(), tt.wantResults) {
				t.Errorf("results %v, want %v", ans.statuses(), tt.wantResults)
			}
			if !strings.Contains(ans.Error, tt.wantError) || (tt.wantError == "") != (ans.Error == "") {
				t.Errorf("error %q, want %q: a 200 carries none", ans.Error, tt.wantError)
			}
			for _, r := range ans.Results {
				if r.Status == collector.StatusRejected && r.Reason == "" {
					t.Errorf("result %+v: a rejection must say why", r)
				}
			}
			if tt.wantReason != "" {
				for _, r := range ans.Results {
					if r.Status == collector.StatusRejected {
						if !strings.Contains(r.Reason, tt.wantReason) {
							t.Errorf("reason %q, want %q", r.Reason, tt.wantReason)
						}
						break
					}
				}
			}
			produced := slices.Sorted(maps.Keys(e.producedEvents(before)))
			if !slices.Equal(produced, tt.wantProduced) {
				t.Errorf("produced %v, want %v", produced, tt.wantProduced)
			}
		})
	}
}

func manyParams(n int) map[string]string {
	p := map[string]string{}
	for i := range n {
		p[fmt.Sprintf("p%d", i)] = "v"
	}
	return p
}

func TestEventFields(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.known("acme")
	before := e.endOffsets(string(topics.Events))
	resp, ans := e.postEvents(request{path: "/v1/events", contentType: "application/json; charset=utf-8",
		header: http.Header{"User-Agent": {uaIPhone}, "Referer": {"https://example.com/app"}, "Accept-Language": {"fr"}},
		body: []any{
			map[string]any{"id": "f1", "account": "acme", "session": "app-9", "name": "install", "time": "2026-11-22T09:59:58.25Z",
				"platform": "ios", "app_version": "3.2.1", "device_ids": []string{"idfv-hash"}, "click_id": "click-1", "params": map[string]string{"store": "appstore"}},
			event("f2", "app-9", "open"),
			map[string]any{"id": "f3", "account": "acme", "session": "app-9", "name": "open", "time": "2027-01-01T00:00:00Z"},
		}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %v", resp.StatusCode, ans)
	}
	if w := ans.Results[2].Warning; !strings.Contains(w, "ahead of the collector's clock") || ans.Results[2].Status != collector.StatusAccepted {
		t.Errorf("f3 from a device clock a month ahead: %+v, want accepted with a warning", ans.Results[2])
	}
	if ans.Results[0].Warning != "" {
		t.Errorf("f1 warning %q", ans.Results[0].Warning)
	}
	byID := e.producedEvents(before)
	f1, f2, f3 := byID["f1"], byID["f2"], byID["f3"]
	if len(byID) != 3 || f1 == nil || f2 == nil || f3 == nil {
		t.Fatalf("events %v", byID)
	}
	wantTime := time.Date(2026, 11, 22, 9, 59, 58, 250e6, time.UTC).UnixMicro()
	if f1.Account != "acme" || f1.Session != "app-9" || f1.Name != "install" || f1.TimeUs != wantTime || f1.ReceivedUs != e.now.UnixMicro() ||
		f1.Platform != livetabv1.Platform_PLATFORM_IOS || f1.AppVersion != "3.2.1" || !slices.Equal(f1.DeviceIds, []string{"idfv-hash"}) ||
		f1.ClickId != "click-1" || f1.Params["store"] != "appstore" {
		t.Errorf("f1 = %v", f1)
	}
	if f2.TimeUs != e.now.UnixMicro() {
		t.Errorf("f2 without time: time_us %d, want received %d", f2.TimeUs, e.now.UnixMicro())
	}
	if f3.TimeUs != e.now.UnixMicro() {
		t.Errorf("f3 from the future: time_us %d, want clamped to received %d", f3.TimeUs, e.now.UnixMicro())
	}
	for _, ev := range []*livetabv1.Event{f1, f2} {
		r := ev.GetRequest()
		if r.GetIp() != "127.0.0.1" || r.GetUserAgent() != uaIPhone || r.GetReferrer() != "https://example.com/app" || r.GetAcceptLanguage() != "fr" ||
			r.GetOs() != "iOS" || r.GetDevice() != "iPhone" {
			t.Errorf("%s request = %v", ev.Id, r)
		}
	}
}

// TestEventsProtobufFields checks that an event sent as protobuf is
// written with the same fields as sent, plus what the collector adds.
func TestEventsProtobufFields(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.known("acme")
	sent := &livetabv1.Event{Id: "pf1", Account: "acme", Session: "app-1", Name: "purchase", TimeUs: e.now.Add(-time.Hour).UnixMicro(),
		Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: "9.1", DeviceIds: []string{"gaid-hash", "other-hash"}, ClickId: "click-9",
		Params: map[string]string{"sku": "seed-pack", "amount": "2.99"}}
	before := e.endOffsets(string(topics.Events))
	resp, ans := e.postEvents(request{contentType: "application/x-protobuf", body: protoBatch(t, sent), header: http.Header{"User-Agent": {"okhttp/4.12.0"}}})
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("%d (%s) %v", resp.StatusCode, resp.Header.Get("Content-Type"), ans)
	}
	got := e.producedEvents(before)["pf1"]
	if got == nil {
		t.Fatal("pf1 not produced")
	}
	if got.ReceivedUs != e.now.UnixMicro() || got.GetRequest().GetIp() != "127.0.0.1" || got.GetRequest().GetUserAgent() != "okhttp/4.12.0" {
		t.Errorf("collector's fields: received %d, request %v", got.ReceivedUs, got.GetRequest())
	}
	got.ReceivedUs, got.Request = 0, nil
	if !proto.Equal(got, sent) {
		t.Errorf("produced\n %v\nwant\n %v", got, sent)
	}
}

func TestEventsRejected(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.known("acme")
	many := make([]any, collector.MaxEventsPerRequest+1)
	manyProto := make([]*livetabv1.Event, collector.MaxEventsPerRequest+1)
	for i := range many {
		many[i] = event(fmt.Sprintf("m%d", i), "s", "open")
		manyProto[i] = &livetabv1.Event{Id: fmt.Sprintf("m%d", i), Account: "acme", Session: "s", Name: "open"}
	}
	huge := `[{"id":"h1","account":"acme","session":"s","name":"open","params":{"pad":"` + strings.Repeat("x", collector.MaxEventsBody) + `"}}]`
	good := protoBatch(t, &livetabv1.Event{Id: "g1", Account: "acme", Session: "s", Name: "open"})
	tests := []struct {
		name       string
		r          request
		wantStatus int
		wantReason string
	}{
		{name: "malformed JSON", r: request{body: "[{\"id\":\"e1\",\n\"account\" \"acme\"}]"}, wantStatus: 400, wantReason: "malformed JSON at line 2, column 11"},
		{name: "truncated JSON", r: request{body: `{"id":"e1"`}, wantStatus: 400, wantReason: "malformed JSON"},
		{name: "JSON with trailing data", r: request{body: `{"id":"e1"} {}`}, wantStatus: 400, wantReason: "malformed JSON"},
		{name: "empty body", r: request{body: "", contentType: "application/json"}, wantStatus: 400, wantReason: "empty body"},
		{name: "scalar body", r: request{body: `"install"`}, wantStatus: 400, wantReason: "body must be an event object"},
		{name: "no events", r: request{body: `{"events":[]}`}, wantStatus: 400, wantReason: "no events"},
		{name: "too many events", r: request{body: many}, wantStatus: 400, wantReason: "too many events: 101, at most 100"},
		{name: "too many protobuf events", r: request{body: protoBatch(t, manyProto...), contentType: "application/x-protobuf"}, wantStatus: 400, wantReason: "too many events: 101, at most 100"},
		{name: "body too large", r: request{body: huge}, wantStatus: 413, wantReason: "larger than"},
		{name: "protobuf body too large", r: request{body: append(good, make([]byte, collector.MaxEventsBody)...), contentType: "application/x-protobuf"}, wantStatus: 413, wantReason: "larger than"},
		{name: "malformed protobuf", r: request{body: good[:len(good)-2], contentType: "application/x-protobuf"}, wantStatus: 400, wantReason: "malformed protobuf EventBatch at byte 0"},
		{name: "JSON sent as protobuf", r: request{body: `{"id":"e1"}`, contentType: "application/x-protobuf"}, wantStatus: 400, wantReason: "protobuf EventBatch"},
		{name: "empty protobuf batch", r: request{body: []byte{}, contentType: "application/x-protobuf"}, wantStatus: 400, wantReason: "no events"},
		{name: "protobuf sent as JSON", r: request{body: good}, wantStatus: 400, wantReason: "malformed JSON"},
		{name: "wrong content type", r: request{body: `{"id":"e1"}`, contentType: "text/plain"}, wantStatus: 415, wantReason: "application/json or application/x-protobuf"},
		{name: "no content type", r: request{body: `{"id":"e1"}`, contentType: " "}, wantStatus: 415, wantReason: "content type must be"},
		{name: "form post", r: request{body: "id=e1", contentType: "application/x-www-form-urlencoded"}, wantStatus: 415, wantReason: "application/json"},
		{name: "gzipped body", r: request{body: "\x1f\x8b\x08", header: http.Header{"Content-Encoding": {"gzip"}}}, wantStatus: 415, wantReason: `content encoding "gzip" is not supported`},
		{name: "JSON in latin-1", r: request{body: `{"id":"e1"}`, contentType: "application/json; charset=iso-8859-1"}, wantStatus: 415, wantReason: "JSON must be UTF-8"},
		{name: "wrong method", r: request{method: "GET"}, wantStatus: 405, wantReason: "use POST"},
		{name: "PUT", r: request{method: "PUT", body: event("x", "s", "open")}, wantStatus: 405, wantReason: "use POST"},
		{name: "wrapper with more fields", r: request{body: `{"events":[{"id":"e1"}],"batch":1}`}, wantStatus: 400, wantReason: "wrapper"},
		{name: "unknown field", r: request{body: `{"id":"e1","account":"acme","session":"s","name":"open","colour":"red"}`}, wantStatus: 400, wantReason: "no valid event"},
		{name: "unknown account", r: request{body: `{"id":"e1","account":"nobody","session":"s","name":"open"}`}, wantStatus: 404, wantReason: "unknown account"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.endOffsets(string(topics.Events))
			r := tt.r
			if r.method == "" {
				r.method = "POST"
			}
			r.path = "/v1/events"
			resp, body := e.do(r)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			if reason := errorReason(t, body); !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason %q, want it to contain %q", reason, tt.wantReason)
			}
			if tt.wantStatus == 405 && resp.Header.Get("Allow") != "POST" {
				t.Errorf("Allow %q, want POST", resp.Header.Get("Allow"))
			}
			e.nothingSince(string(topics.Events), before, tt.name)
		})
	}
}

// TestEventsAccountLifecycle checks that an account's events are taken
// from its first link on, and refused again once its last link is
// deleted.
func TestEventsAccountLifecycle(t *testing.T) {
	e := startEnv(t, envOptions{})
	post := func(id string) int {
		t.Helper()
		resp, _ := e.postEvents(request{body: map[string]any{"id": id, "account": "newco", "session": "s", "name": "open"}})
		return resp.StatusCode
	}
	before := e.endOffsets(string(topics.Events))
	if got := post("l1"); got != http.StatusNotFound {
		t.Errorf("before any link: %d, want 404", got)
	}
	e.putLink("newco", "a", map[string]any{"destination": "https://example.com/a"})
	e.putLink("newco", "b", map[string]any{"destination": "https://example.com/b"})
	if got := post("l2"); got != http.StatusOK {
		t.Errorf("with links: %d, want 200", got)
	}
	for _, slug := range []string{"a", "b"} {
		if resp, body := e.do(request{method: "DELETE", path: "/v1/links/newco/" + slug, token: e.token("newco", true)}); resp.StatusCode != http.StatusNoContent {
			t.Fatalf("DELETE %s: %d %s", slug, resp.StatusCode, body)
		}
		want := http.StatusOK
		if slug == "b" {
			want = http.StatusNotFound
		}
		if got := post("l3-" + slug); got != want {
			t.Errorf("after deleting %s: %d, want %d", slug, got, want)
		}
	}
	if got := slices.Sorted(maps.Keys(e.producedEvents(before))); !slices.Equal(got, []string{"l2", "l3-a"}) {
		t.Errorf("produced %v, want [l2 l3-a]", got)
	}
}

// TestEventsOneRecordPerSession checks what a batch of several app
// sessions, interleaved, is written as: one record per session, keyed by
// its account, in the order the sessions first appear (as far as a
// partition shows it: a key's records are in order); a session of one
// event as that Event, one of several as a SessionEvents of them in
// request order, each event with every field a record of its own has.
func TestEventsOneRecordPerSession(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.known("acme", "other")
	ev := func(id, account, session string) *livetabv1.Event {
		return &livetabv1.Event{Id: id, Account: account, Session: session, Name: "open", Platform: livetabv1.Platform_PLATFORM_IOS}
	}
	evs := []*livetabv1.Event{ev("e1", "acme", "s1"), ev("e2", "acme", "s2"), ev("e3", "other", "s1"), ev("e4", "acme", "s1"),
		ev("e5", "acme", "s3"), ev("e6", "other", "s1"), ev("e7", "acme", "s2"), {Id: "e8", Account: "acme", Session: "s3"}, ev("e9", "acme", "s1")}
	wantResults := []string{"e1:accepted", "e2:accepted", "e3:accepted", "e4:accepted", "e5:accepted", "e6:accepted", "e7:accepted",
		"e8:rejected:missing_field", "e9:accepted"}
	// By key, in offset order; e8 is rejected, which leaves s3 one event.
	wantRecords := map[string][]string{"acme": {"acme:[e1,e4,e9]", "acme:[e2,e7]", "acme:e5"}, "other": {"other:[e3,e6]"}}
	jsonBody := []any{}
	for _, ev := range evs {
		m := map[string]any{"id": ev.Id, "account": ev.Account, "session": ev.Session, "platform": "ios"}
		if ev.Name != "" {
			m["name"] = ev.Name
		}
		jsonBody = append(jsonBody, m)
	}
	for _, tt := range []struct {
		name, contentType string
		body              any
	}{
		{name: "json", body: jsonBody},
		{name: "protobuf", contentType: "application/x-protobuf", body: protoBatch(t, evs...)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := e.endOffsets(string(topics.Events))
			resp, ans := e.postEvents(request{body: tt.body, contentType: tt.contentType, header: http.Header{"User-Agent": {uaIPhone}}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d %v", resp.StatusCode, ans)
			}
			if !slices.Equal(ans.statuses(), wantResults) {
				t.Errorf("results %v, want %v", ans.statuses(), wantResults)
			}
			byKey := map[string][]string{}
			for _, r := range e.eventRecords(before) {
				byKey[r.key] = append(byKey[r.key], r.ids())
				for _, got := range r.events {
					if got.ReceivedUs != e.now.UnixMicro() || got.TimeUs != e.now.UnixMicro() || got.GetRequest().GetUserAgent() != uaIPhone ||
						got.GetRequest().GetIp() != "127.0.0.1" {
						t.Errorf("event %s lacks what the collector adds: %v", got.Id, got)
					}
					sent := proto.Clone(evs[slices.IndexFunc(evs, func(s *livetabv1.Event) bool { return s.Id == got.Id })]).(*livetabv1.Event)
					sent.ReceivedUs, sent.TimeUs, sent.Request = got.ReceivedUs, got.TimeUs, got.Request
					if !proto.Equal(got, sent) {
						t.Errorf("event %s written as\n %v\nwant\n %v", got.Id, got, sent)
					}
				}
			}
			if !maps.EqualFunc(byKey, wantRecords, slices.Equal) {
				t.Errorf("records by key %q, want %q", byKey, wantRecords)
			}
		})
	}
}

// TestEventsLargestRequests sends bodies of about the largest size with
// every event of one session: they are written whole, a session's events
// split across records that Kafka takes (at most MaxEventRecord each),
// every event once.
func TestEventsLargestRequests(t *testing.T) {
	e := startEnv(t, envOptions{})
	e.known("acme")
	long := strings.Repeat("h", 2000) // cut to MaxHeaderLen
	var query []string
	for i := range collector.MaxRequestParams {
		query = append(query, fmt.Sprintf("%0*d=%s", collector.MaxParamKeyLen, i, strings.Repeat("q", collector.MaxParamValueLen)))
	}
	params := map[string]string{}
	for i := range collector.MaxEventParams {
		params[fmt.Sprintf("%0*d", collector.MaxParamKeyLen, i)] = strings.Repeat("v", collector.MaxParamValueLen)
	}
	// body is a JSON array of as many events as fit in MaxEventsBody.
	body := func(prefix string) (data []byte, ids []string) {
		data = []byte{'['}
		for i := 0; ; i++ {
			id := fmt.Sprintf("%s-%d", prefix, i)
			ev, err := json.Marshal(map[string]any{"id": id, "account": "acme", "session": "big-" + prefix, "name": "open", "params": params})
			if err != nil {
				t.Fatal(err)
			}
			if len(data)+len(ev)+2 > collector.MaxEventsBody || len(ids) == collector.MaxEventsPerRequest {
				return append(data, ']'), ids
			}
			if i > 0 {
				data = append(data, ',')
			}
			data, ids = append(data, ev...), append(ids, id)
		}
	}
	for _, tt := range []struct {
		name string
		path string
	}{
		// Each event then takes some 128 kB, about the largest the limits
		// allow: two fit a record.
		{name: "the longest query and headers", path: "/v1/events?" + strings.Join(query, "&")},
		{name: "no query", path: "/v1/events"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, ids := body(strings.ReplaceAll(tt.name, " ", "-"))
			before := e.endOffsets(string(topics.Events))
			resp, raw := e.do(request{method: "POST", path: tt.path, body: data,
				header: http.Header{"User-Agent": {long}, "Referer": {long}, "Accept-Language": {long}}})
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("%d bytes of %d events: %d %.200s", len(data), len(ids), resp.StatusCode, raw)
			}
			recs := e.eventRecords(before)
			var got []string
			batches := 0
			for _, r := range recs {
				if r.batch {
					batches++
					if r.size > collector.MaxEventRecord {
						t.Errorf("a record of %d events takes %d bytes, over %d", len(r.events), r.size, collector.MaxEventRecord)
					}
				}
				for _, ev := range r.events {
					got = append(got, ev.Id)
				}
			}
			if !slices.Equal(got, ids) {
				t.Errorf("events written %v, want %v in order", got, ids)
			}
			if batches == 0 || len(recs) < 2 {
				t.Errorf("%d events in %d records, %d of several events", len(ids), len(recs), batches)
			}
			t.Logf("%d bytes of body, %d events in %d records (%d of several events)", len(data), len(ids), len(recs), batches)
		})
	}
}
