package attribution_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/topics"
)

var (
	table = goka.GroupTable(attribution.Group)
	loop  = topics.GroupLoop(attribution.Group)
)

func conversions(t *testing.T, qt *tester.QueueTracker) map[string]*livetabv1.Conversion {
	t.Helper()
	out := map[string]*livetabv1.Conversion{}
	for _, m := range gokatest.Drain(qt) {
		c := gokatest.Decode(t, m, &livetabv1.Conversion{})
		if m.Key != c.GetAppSession() {
			t.Errorf("conversion %s keyed %q, want its app session", c.GetId(), m.Key)
		}
		if _, dup := out[m.Key]; dup {
			t.Errorf("second conversion for app session %s", m.Key)
		}
		out[m.Key] = c
	}
	return out
}

func consumeHit(t *testing.T, tt *tester.Tester, h *livetabv1.Hit) {
	t.Helper()
	gokatest.Consume(t, tt, topics.Hits, h.GetSession(), h)
}

func consumeEvent(t *testing.T, tt *tester.Tester, e *livetabv1.Event) {
	t.Helper()
	gokatest.Consume(t, tt, topics.Events, e.GetSession(), e)
}

func TestConvertsInEitherOrder(t *testing.T) {
	h, e := hit("h1", 0), event("e1", "app", time.Hour)
	orders := map[string]func(t *testing.T, tt *tester.Tester){
		"hit first":   func(t *testing.T, tt *tester.Tester) { consumeHit(t, tt, h); consumeEvent(t, tt, e) },
		"event first": func(t *testing.T, tt *tester.Tester) { consumeEvent(t, tt, e); consumeHit(t, tt, h) },
	}
	for name, run := range orders {
		t.Run(name, func(t *testing.T) {
			tt := gokatest.Start(t, attribution.Graph())
			out := tt.NewQueueTracker(string(topics.Conversions))
			run(t, tt)
			got := conversions(t, out)
			if len(got) != 1 || !proto.Equal(got["app"], want(e, h)) {
				t.Fatalf("conversions %v, want one: %v", got, want(e, h))
			}
			st := tt.TableValue(table, "click1").(*livetabv1.ClickState)
			if !proto.Equal(st, &livetabv1.ClickState{Hit: h, ConvertedSessions: []string{"app"}}) {
				t.Errorf("click state %v", st)
			}

			// Redelivery of either never converts again.
			consumeEvent(t, tt, e)
			consumeHit(t, tt, h)
			consumeEvent(t, tt, e)
			if again := conversions(t, out); len(again) != 0 {
				t.Errorf("redelivery converted again: %v", again)
			}
		})
	}
}

func TestIgnoresWhatCannotConvert(t *testing.T) {
	tt := gokatest.Start(t, attribution.Graph())
	out := tt.NewQueueTracker(string(topics.Conversions))
	loops := tt.NewQueueTracker(string(loop))

	noClick := hit("h0", 0)
	noClick.ClickId = ""
	consumeHit(t, tt, noClick)
	purchase := event("e0", "app0", time.Hour)
	purchase.Name = "purchase"
	consumeEvent(t, tt, purchase)
	eventNoClick := event("e9", "app9", time.Hour)
	eventNoClick.ClickId = ""
	consumeEvent(t, tt, eventNoClick)
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("looped %d records without click id or install-like name", len(l))
	}

	consumeHit(t, tt, hit("h1", 0))
	consumeEvent(t, tt, event("late", "app-late", 8*day))
	other := event("e2", "app-other", time.Hour)
	other.Account = "other"
	consumeEvent(t, tt, other)
	if got := conversions(t, out); len(got) != 0 {
		t.Errorf("converted %v: late and foreign events must not", got)
	}
	if l := gokatest.Drain(loops); len(l) != 3 {
		t.Errorf("%d loopbacks, want 3 (hit and both events keyed by click id)", len(l))
	} else {
		for _, m := range l {
			if m.Key != "click1" {
				t.Errorf("loopback keyed %q, want the click id", m.Key)
			}
		}
	}
}

func TestOpenConvertsAndSessionsConvertOnce(t *testing.T) {
	tt := gokatest.Start(t, attribution.Graph())
	out := tt.NewQueueTracker(string(topics.Conversions))
	h := hit("h1", 0)
	open := event("o1", "app1", time.Hour)
	open.Name = "open"
	install2 := event("i2", "app2", 2*time.Hour)
	consumeEvent(t, tt, open)
	consumeHit(t, tt, h)
	consumeEvent(t, tt, install2)
	// A later open of an app session that already converted.
	consumeEvent(t, tt, event("o3", "app1", 3*time.Hour))
	got := conversions(t, out)
	if len(got) != 2 || !proto.Equal(got["app1"], want(open, h)) || !proto.Equal(got["app2"], want(install2, h)) {
		t.Errorf("conversions %v, want app1 by open and app2 by install", got)
	}
}

func TestBadRecordsAreSkipped(t *testing.T) {
	var logs gokatest.Logs
	tt := gokatest.Start(t, attribution.NewGraph(attribution.Options{Logger: logs.Logger()}))
	out := tt.NewQueueTracker(string(topics.Conversions))
	garbage := []byte{0xff, 0xff}
	for _, topic := range []goka.Stream{topics.Hits, topics.Events, loop} {
		tt.Consume(string(topic), "k", garbage)
		if _, ok := logs.Find("level=WARN", "does not decode", "topic="+string(topic), "offset="); !ok {
			t.Errorf("no warning for garbage on %s; logs %v", topic, logs.Lines())
		}
	}
	noAccount := hit("h0", 0)
	noAccount.Account = ""
	consumeHit(t, tt, noAccount)
	noSession := event("e0", "", time.Hour)
	gokatest.Consume(t, tt, topics.Events, "k", noSession)
	if _, ok := logs.Find("level=WARN", "hit without id, account or session"); !ok {
		t.Errorf("no warning for a hit without account; logs %v", logs.Lines())
	}
	if _, ok := logs.Find("level=WARN", "event without id, account or session"); !ok {
		t.Errorf("no warning for an event without session; logs %v", logs.Lines())
	}
	gokatest.Consume(t, tt, loop, "click1", &livetabv1.AttributionInput{})
	if _, ok := logs.Find("level=WARN", "neither hit nor event"); !ok {
		t.Errorf("no warning for an empty loop input; logs %v", logs.Lines())
	}

	// Still running, and the skipped records left no state behind.
	h, e := hit("h1", 0), event("e1", "app", time.Hour)
	consumeHit(t, tt, h)
	consumeEvent(t, tt, e)
	if got := conversions(t, out); len(got) != 1 || !proto.Equal(got["app"], want(e, h)) {
		t.Errorf("conversions after bad records %v", got)
	}
}
