package views

import (
	"encoding/json"
	"testing"

	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestEncodeItem(t *testing.T) {
	const us = int64(1_750_000_000_123_456) // 2025-06-15T15:06:40.123456Z
	const at = "2025-06-15T15:06:40.123456Z"
	tests := []struct {
		name string
		item *livetabv1.ViewItem
		want string
	}{
		{
			name: "hit",
			item: &livetabv1.ViewItem{Cursor: 17, Account: "demo", Kind: livetabv1.Kind_KIND_HIT, Session: "web-1", ReceivedUs: us,
				Counters: &livetabv1.Counters{Hits: 1, Events: 2},
				Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Id: "h1", Account: "demo", Link: "spring", Campaign: "c",
					ClickId: "k", Session: "web-1", Destination: "https://x.test/", DeepLink: "/p", Platform: livetabv1.Platform_PLATFORM_WEB,
					ReceivedUs: us, DeviceId: "not shown",
					Request: &livetabv1.Request{Ip: "192.0.2.1", UserAgent: "ua", Referrer: "r", AcceptLanguage: "fr", Params: map[string]string{"utm": "x"}, Os: "not shown"}}}},
			want: `{"cursor":17,"account":"demo","kind":"hit","session":"web-1","received_at":"` + at + `",` +
				`"counters":{"hits":1,"events":2,"conversions":0},` +
				`"hit":{"id":"h1","link":"spring","campaign":"c","click_id":"k","session":"web-1","destination":"https://x.test/",` +
				`"deep_link":"/p","platform":"web","received_at":"` + at + `","ip":"192.0.2.1","user_agent":"ua","referrer":"r",` +
				`"accept_language":"fr","params":{"utm":"x"}}}`,
		},
		{
			name: "event converted",
			item: &livetabv1.ViewItem{Cursor: 3, Account: "demo", Kind: livetabv1.Kind_KIND_EVENT, Session: "app-1",
				ConvertedWith: &livetabv1.ConvertedWith{Session: "web-1", Method: livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT, HitId: "h1", TimeUs: us},
				Payload: &livetabv1.ViewItem_Event{Event: &livetabv1.Event{Id: "e1", Name: "install", Session: "app-1", TimeUs: us, ReceivedUs: us,
					Platform: livetabv1.Platform_PLATFORM_ANDROID, AppVersion: "1.2", ClickId: "k", DeviceIds: []string{"d1"},
					Params: map[string]string{"a": "b"}, Request: &livetabv1.Request{Ip: "192.0.2.2", UserAgent: "sdk"}}}},
			want: `{"cursor":3,"account":"demo","kind":"event","session":"app-1",` +
				`"event":{"id":"e1","name":"install","session":"app-1","time":"` + at + `","received_at":"` + at + `","platform":"android",` +
				`"app_version":"1.2","click_id":"k","device_ids":["d1"],"params":{"a":"b"},"ip":"192.0.2.2","user_agent":"sdk"},` +
				`"converted_with":{"session":"web-1","method":"fingerprint","hit_id":"h1","at":"` + at + `"}}`,
		},
		{
			name: "conversion, kind from payload",
			item: &livetabv1.ViewItem{Cursor: 4, Account: "demo",
				Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{Id: "c1", HitSession: "web-1", AppSession: "app-1",
					HitId: "h1", EventId: "e1", ClickId: "k", Method: livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID, TimeUs: us, Link: "spring", Campaign: "c"}}},
			want: `{"cursor":4,"account":"demo","kind":"conversion","conversion":{"id":"c1","hit_session":"web-1","app_session":"app-1",` +
				`"hit_id":"h1","event_id":"e1","click_id":"k","method":"device_id","time":"` + at + `","link":"spring","campaign":"c"}}`,
		},
		{
			name: "conversion, every field",
			item: &livetabv1.ViewItem{Cursor: 6, Account: "demo", Kind: livetabv1.Kind_KIND_CONVERSION,
				Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{Id: "c2", Account: "demo", HitSession: "web-1",
					AppSession: "app-1", HitId: "h1", EventId: "e1", Method: livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT, TimeUs: us,
					HitTimeUs: us - 90_500_000, EventTimeUs: us - 1_000_000, ReceivedUs: us - 500_000, WindowUs: 2 * 3600 * 1_000_000,
					Candidates: 7, Link: "spring", Campaign: "c", DeepLink: "app://p/1"}}},
			want: `{"cursor":6,"account":"demo","kind":"conversion","conversion":{"id":"c2","hit_session":"web-1","app_session":"app-1",` +
				`"hit_id":"h1","event_id":"e1","method":"fingerprint","time":"` + at + `","link":"spring","campaign":"c",` +
				`"deep_link":"app://p/1","hit_time":"2025-06-15T15:05:09.623456Z","event_time":"2025-06-15T15:06:39.123456Z",` +
				`"window":"2h0m0s","candidates":7,"hit_to_install":"1m30s"}}`,
		},
		{
			name: "install before its hit",
			item: &livetabv1.ViewItem{Cursor: 7, Account: "demo",
				Payload: &livetabv1.ViewItem_Conversion{Conversion: &livetabv1.Conversion{Id: "c3",
					HitTimeUs: us, ReceivedUs: us - 2_000_000}}},
			want: `{"cursor":7,"account":"demo","kind":"conversion","conversion":{"id":"c3","hit_time":"` + at + `","hit_to_install":"-2s"}}`,
		},
		{
			name: "empty fields omitted",
			item: &livetabv1.ViewItem{Cursor: 5, Account: "demo", Kind: livetabv1.Kind_KIND_HIT,
				Payload: &livetabv1.ViewItem_Hit{Hit: &livetabv1.Hit{Id: "h2", Platform: livetabv1.Platform_PLATFORM_OTHER}}},
			want: `{"cursor":5,"account":"demo","kind":"hit","hit":{"id":"h2","platform":"other"}}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(encodeItem(tt.item))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tt.want {
				t.Errorf("got\n%s\nwant\n%s", b, tt.want)
			}
		})
	}
}

func TestEnumNames(t *testing.T) {
	platforms := map[livetabv1.Platform]string{
		livetabv1.Platform_PLATFORM_UNSPECIFIED: "", livetabv1.Platform_PLATFORM_IOS: "ios",
		livetabv1.Platform_PLATFORM_ANDROID: "android", livetabv1.Platform_PLATFORM_WEB: "web", livetabv1.Platform_PLATFORM_OTHER: "other",
	}
	for p, want := range platforms {
		if got := platformJSON(p); got != want {
			t.Errorf("platform %v: %q, want %q", p, got, want)
		}
	}
	methods := map[livetabv1.MatchMethod]string{
		livetabv1.MatchMethod_MATCH_METHOD_UNSPECIFIED: "", livetabv1.MatchMethod_MATCH_METHOD_CLICK_ID: "click_id",
		livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID: "device_id", livetabv1.MatchMethod_MATCH_METHOD_FINGERPRINT: "fingerprint",
	}
	for m, want := range methods {
		if got := methodJSON(m); got != want {
			t.Errorf("method %v: %q, want %q", m, got, want)
		}
	}
}

func TestWrapItem(t *testing.T) {
	got := string(wrapItem(updatePrefix, rawJSON(`{"cursor":1}`)))
	if want := `{"type":"update","item":{"cursor":1}}`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	var f frame
	if err := json.Unmarshal([]byte(got), &f); err != nil || f.Item == nil || f.Item.Cursor != 1 {
		t.Fatalf("frame does not decode: %v %+v", err, f)
	}
}
