package views

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestSelectionFromQuery(t *testing.T) {
	tests := []struct {
		name    string
		query   string
		want    selection
		wantErr string
	}{
		{"nothing", "account=demo&token=x", selection{}, ""},
		{"cursor", "cursor=42", selection{resume: true, cursor: 42}, ""},
		{"cursor zero resumes from the start", "cursor=0", selection{resume: true}, ""},
		{"every filter", "session=s1&kind=event,hit,event&event=install&link=spring&campaign=c1&platform=ios",
			selection{
				filter: filter{session: "s1", event: "install", link: "spring", campaign: "c1", kinds: kindHit | kindEvent,
					platform: livetabv1.Platform_PLATFORM_IOS},
				echo: filtersJSON{Session: "s1", Kind: kindList{"hit", "event"}, Event: "install", Link: "spring", Campaign: "c1", Platform: "ios"},
			}, ""},
		{"empty kind entries", "kind=,conversion,", selection{filter: filter{kinds: kindConversion}, echo: filtersJSON{Kind: kindList{"conversion"}}}, ""},
		{"bad cursor", "cursor=-1", selection{}, "cursor"},
		{"unknown kind", "kind=hit,click", selection{}, "unknown kind"},
		{"unknown platform", "platform=bsd", selection{}, "unknown platform"},
		{"long filter", "link=" + strings.Repeat("x", maxFilterLen+1), selection{}, "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := selectionFromQuery(q)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want one about %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseClientMessages(t *testing.T) {
	s := &Server{secret: testSecret}
	demo := validToken(t, "demo")
	tests := []struct {
		name     string
		msg      string
		wantCode string
		check    func(t *testing.T, c control)
	}{
		{"subscribe", `{"type":"subscribe","filters":{"session":"s1","kind":["hit"],"platform":"web"},"cursor":7}`, "",
			func(t *testing.T, c control) {
				want := selection{filter: filter{session: "s1", kinds: kindHit, platform: livetabv1.Platform_PLATFORM_WEB},
					echo: filtersJSON{Session: "s1", Kind: kindList{"hit"}, Platform: "web"}, resume: true, cursor: 7}
				if c.sel == nil || !reflect.DeepEqual(*c.sel, want) {
					t.Errorf("selection %+v, want %+v", c.sel, want)
				}
			}},
		{"subscribe to everything", `{"type":"subscribe"}`, "", func(t *testing.T, c control) {
			if c.sel == nil || !c.sel.filter.empty() || c.sel.resume {
				t.Errorf("selection %+v, want no filter and a snapshot", c.sel)
			}
		}},
		{"kind as a string", `{"type":"subscribe","filters":{"kind":"conversion,event"}}`, "", func(t *testing.T, c control) {
			if c.sel == nil || c.sel.filter.kinds != kindEvent|kindConversion {
				t.Errorf("selection %+v", c.sel)
			}
		}},
		{"token", `{"type":"token","token":"` + demo + `"}`, "", func(t *testing.T, c control) {
			if !c.refresh || c.expires.IsZero() {
				t.Errorf("control %+v, want a refresh with an expiry", c)
			}
		}},
		{"not JSON", `subscribe please`, codeBadMessage, nil},
		{"not an object", `[1,2]`, codeBadMessage, nil},
		{"no type", `{"filters":{}}`, codeBadMessage, nil},
		{"unknown type", `{"type":"unsubscribe"}`, codeBadMessage, nil},
		{"negative cursor", `{"type":"subscribe","cursor":-3}`, codeBadMessage, nil},
		{"unknown filter", `{"type":"subscribe","filters":{"country":"fr"}}`, codeBadFilter, nil},
		{"bad kind", `{"type":"subscribe","filters":{"kind":["purchase"]}}`, codeBadFilter, nil},
		{"kind of the wrong type", `{"type":"subscribe","filters":{"kind":3}}`, codeBadFilter, nil},
		{"bad platform", `{"type":"subscribe","filters":{"platform":"IOS"}}`, codeBadFilter, nil},
		{"filters not an object", `{"type":"subscribe","filters":"hit"}`, codeBadFilter, nil},
		{"garbage token", `{"type":"token","token":"nope"}`, codeForbidden, nil},
		{"missing token", `{"type":"token"}`, codeForbidden, nil},
		{"token of another account", `{"type":"token","token":"` + validToken(t, "acme") + `"}`, codeForbidden, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := s.parseClient("demo", 1 /* websocket.MessageText */, []byte(tt.msg))
			if tt.wantCode != "" {
				if c.err == nil || c.err.code != tt.wantCode || c.err.msg == "" {
					t.Fatalf("control %+v, want error code %s", c, tt.wantCode)
				}
				if !errors.Is(c.err, errClient) {
					t.Error("client error does not wrap errClient")
				}
				return
			}
			if c.err != nil {
				t.Fatalf("error %s: %s", c.err.code, c.err.msg)
			}
			tt.check(t, c)
		})
	}
	if c := s.parseClient("demo", 2 /* websocket.MessageBinary */, []byte(`{"type":"subscribe"}`)); c.err == nil || c.err.code != codeBadMessage {
		t.Errorf("binary message: %+v, want bad_message", c)
	}
}

func TestFilterMatch(t *testing.T) {
	hit := attrsOf(mkHit("demo", 1, "web-1", "spring", "c1", livetabv1.Platform_PLATFORM_IOS))
	install := attrsOf(marked(mkEvent("demo", 2, "app-1", "install", livetabv1.Platform_PLATFORM_ANDROID), "web-9"))
	conv := attrsOf(mkConversion("demo", 3, "web-1", "app-1", "spring"))
	other := attrsOf(mkEvent("demo", 4, "app-2", "open", livetabv1.Platform_PLATFORM_ANDROID))
	p := &pairs{max: 10}
	p.add("web-7", "app-2")
	tests := []struct {
		name string
		f    filter
		want [4]bool // hit, install, conversion, other
	}{
		{"none", filter{}, [4]bool{true, true, true, true}},
		{"kind", filter{kinds: kindEvent}, [4]bool{false, true, false, true}},
		{"kinds", filter{kinds: kindHit | kindConversion}, [4]bool{true, false, true, false}},
		{"event", filter{event: "install"}, [4]bool{false, true, false, false}},
		{"link", filter{link: "spring"}, [4]bool{true, false, true, false}},
		{"campaign", filter{campaign: "spring-sale"}, [4]bool{false, false, true, false}},
		{"platform", filter{platform: livetabv1.Platform_PLATFORM_ANDROID}, [4]bool{false, true, false, true}},
		{"own session", filter{session: "web-1"}, [4]bool{true, false, true, false}},
		{"app session", filter{session: "app-1"}, [4]bool{false, true, true, false}},
		{"converted with", filter{session: "web-9"}, [4]bool{false, true, false, false}},
		{"paired", filter{session: "web-7"}, [4]bool{false, false, false, true}},
		{"all must match", filter{session: "app-1", kinds: kindConversion}, [4]bool{false, false, true, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for i, a := range []itemAttrs{hit, install, conv, other} {
				if got := tt.f.match(&a, p); got != tt.want[i] {
					t.Errorf("item %d: match %v, want %v", i, got, tt.want[i])
				}
			}
		})
	}
}

func TestFilterEcho(t *testing.T) {
	_, echo, err := compile(filtersJSON{Kind: kindList{"conversion", "hit", "hit"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(echo)
	if string(b) != `{"kind":["hit","conversion"]}` {
		t.Errorf("echo %s", b)
	}
	b, _ = json.Marshal(filtersJSON{})
	if string(b) != `{}` {
		t.Errorf("empty echo %s", b)
	}
}
