package collector_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/collector"
	"github.com/livetab/livetab/topics"
)

type eventsAnswer struct {
	Error   string `json:"error"`
	Results []struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Reason string `json:"reason"`
	} `json:"results"`
}

// statuses renders the results as "id:status" in order.
func (a eventsAnswer) statuses() []string {
	var s []string
	for _, r := range a.Results {
		s = append(s, r.ID+":"+r.Status)
	}
	return s
}

func event(id, session, name string) map[string]any {
	return map[string]any{"id": id, "account": "acme", "session": session, "name": name}
}

func TestEvents(t *testing.T) {
	e := startEnv(t, envOptions{})
	tests := []struct {
		name         string
		body         any
		wantStatus   int
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
		}, wantStatus: 200,
			wantResults:  []string{"p1:accepted", "p2:rejected", "p3:rejected", "p4:accepted"},
			wantProduced: []string{"p1", "p4"}, wantReason: "missing session"},
		{name: "all bad", body: []any{map[string]any{"id": "b1", "account": "acme", "session": "s"}, 7}, wantStatus: 400,
			wantResults: []string{"b1:rejected", ":rejected"}, wantReason: "missing name"},
		{name: "unknown field in a single event", body: `{"id":"u1","account":"acme","session":"s","name":"open","extra":1}`, wantStatus: 400,
			wantResults: []string{"u1:rejected"}, wantReason: `unknown field "extra"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.endOffsets(string(topics.Events))
			resp, body := e.do(request{method: "POST", path: "/v1/events", body: tt.body})
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("status %d %s, want %d", resp.StatusCode, body, tt.wantStatus)
			}
			var ans eventsAnswer
			if err := json.Unmarshal(body, &ans); err != nil {
				t.Fatalf("answer %q: %v", body, err)
			}
			if !slices.Equal(ans.statuses(), tt.wantResults) {
				t.Errorf("results %v, want %v", ans.statuses(), tt.wantResults)
			}
			if (tt.wantStatus == 400) != (ans.Error != "") {
				t.Errorf("error %q with status %d: a 400 carries an error, a 200 none", ans.Error, resp.StatusCode)
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
			var produced []string
			for _, m := range e.since(string(topics.Events), before) {
				ev, err := codecs.Typed[livetabv1.Event](m.Value)
				if err != nil {
					t.Fatal(err)
				}
				if string(m.Key) != ev.Session {
					t.Errorf("event %s keyed %q, want its session %q", ev.Id, m.Key, ev.Session)
				}
				produced = append(produced, ev.Id)
			}
			slices.Sort(produced)
			if !slices.Equal(produced, tt.wantProduced) {
				t.Errorf("produced %v, want %v", produced, tt.wantProduced)
			}
		})
	}
}

func TestEventFields(t *testing.T) {
	e := startEnv(t, envOptions{})
	before := e.endOffsets(string(topics.Events))
	resp, body := e.do(request{method: "POST", path: "/v1/events?sdk=ios-1.4&sdk=ignored", contentType: "application/json; charset=utf-8",
		header: http.Header{"User-Agent": {uaIPhone}, "Referer": {"https://example.com/app"}, "Accept-Language": {"fr"}},
		body: []any{
			map[string]any{"id": "f1", "account": "acme", "session": "app-9", "name": "install", "time": "2026-11-22T09:59:58.25Z",
				"platform": "ios", "app_version": "3.2.1", "device_ids": []string{"idfv-hash"}, "click_id": "click-1", "params": map[string]string{"store": "appstore"}},
			event("f2", "app-9", "open"),
		}})
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	msgs := e.since(string(topics.Events), before)
	if len(msgs) != 2 {
		t.Fatalf("%d events produced, want 2", len(msgs))
	}
	byID := map[string]*livetabv1.Event{}
	for _, m := range msgs {
		ev, err := codecs.Typed[livetabv1.Event](m.Value)
		if err != nil {
			t.Fatal(err)
		}
		byID[ev.Id] = ev
	}
	f1, f2 := byID["f1"], byID["f2"]
	if f1 == nil || f2 == nil {
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
	for _, ev := range []*livetabv1.Event{f1, f2} {
		r := ev.GetRequest()
		if r.GetIp() != "127.0.0.1" || r.GetUserAgent() != uaIPhone || r.GetReferrer() != "https://example.com/app" || r.GetAcceptLanguage() != "fr" ||
			len(r.GetParams()) != 1 || r.GetParams()["sdk"] != "ios-1.4" {
			t.Errorf("%s request = %v", ev.Id, r)
		}
	}
}

func TestEventsRejected(t *testing.T) {
	e := startEnv(t, envOptions{})
	many := make([]any, collector.MaxEventsPerRequest+1)
	for i := range many {
		many[i] = event(fmt.Sprintf("m%d", i), "s", "open")
	}
	huge := `[{"id":"h1","account":"acme","session":"s","name":"open","params":{"pad":"` + strings.Repeat("x", collector.MaxEventsBody) + `"}}]`
	tests := []struct {
		name       string
		r          request
		wantStatus int
		wantReason string
	}{
		{name: "malformed JSON", r: request{body: "[{\"id\":\"e1\",\n\"account\" \"acme\"}]"}, wantStatus: 400, wantReason: "malformed JSON at line 2, column 11"},
		{name: "truncated JSON", r: request{body: `{"id":"e1"`}, wantStatus: 400, wantReason: "malformed JSON"},
		{name: "empty body", r: request{body: "", contentType: "application/json"}, wantStatus: 400, wantReason: "empty body"},
		{name: "no events", r: request{body: `{"events":[]}`}, wantStatus: 400, wantReason: "no events"},
		{name: "too many events", r: request{body: many}, wantStatus: 400, wantReason: "too many events: 101, at most 100"},
		{name: "body too large", r: request{body: huge}, wantStatus: 413, wantReason: "larger than"},
		{name: "wrong content type", r: request{body: `{"id":"e1"}`, contentType: "text/plain"}, wantStatus: 415, wantReason: "application/json"},
		{name: "form post", r: request{body: "id=e1", contentType: "application/x-www-form-urlencoded"}, wantStatus: 415, wantReason: "application/json"},
		{name: "wrong method", r: request{method: "GET"}, wantStatus: 405, wantReason: "use POST"},
		{name: "wrapper with more fields", r: request{body: `{"events":[{"id":"e1"}],"batch":1}`}, wantStatus: 400, wantReason: "wrapper"},
		{name: "unknown field", r: request{body: `{"id":"e1","account":"acme","session":"s","name":"open","colour":"red"}`}, wantStatus: 400, wantReason: "no valid event"},
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
