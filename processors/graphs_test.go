package processors_test

import (
	"testing"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/tester"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/processors/liveview"
	"github.com/livetab/livetab/processors/sessions"
	"github.com/livetab/livetab/topics"
)

// TestGraphsTogether runs the three graphs on one goka tester: the topics
// they share (the inputs and the conversions) must be declared alike, and a
// hit and an install carrying its click id must flow through all three,
// once, whatever is redelivered.
func TestGraphsTogether(t *testing.T) {
	for _, order := range []string{"hit first", "install first"} {
		t.Run(order, func(t *testing.T) {
			tt := tester.New(t)
			gokatest.Run(t, tt, sessions.Graph())
			gokatest.Run(t, tt, attribution.Graph())
			gokatest.Run(t, tt, liveview.Graph())
			conversions := tt.NewQueueTracker(string(topics.Conversions))
			view := tt.NewQueueTracker(string(topics.View))

			now := time.Now().UnixMicro()
			hit := &livetabv1.Hit{Id: "h1", Account: "acme", Session: "web1", ClickId: "click1", ReceivedUs: now}
			install := &livetabv1.Event{Id: "e1", Account: "acme", Session: "app1", Name: "install", ClickId: "click1", ReceivedUs: now + 1}
			steps := []func(){
				func() { gokatest.Consume(t, tt, topics.Hits, hit.Account, hit) },
				func() { gokatest.Consume(t, tt, topics.Events, install.Account, install) },
			}
			if order == "install first" {
				steps[0], steps[1] = steps[1], steps[0]
			}
			for _, s := range steps {
				s()
			}

			if n := len(gokatest.Drain(conversions)); n != 1 {
				t.Errorf("%d conversions, want 1", n)
			}
			for session, paired := range map[string]string{"web1": "app1", "app1": "web1"} {
				tl, _ := tt.TableValue(goka.GroupTable(topics.SessionsGroup), session).(*livetabv1.Timeline)
				if tl.GetPairedSession() != paired || len(tl.GetStored()) != 1 {
					t.Errorf("session %s: paired %q with %d entries, want %s with 1", session, tl.GetPairedSession(), len(tl.GetStored()), paired)
				}
			}
			st, _ := tt.TableValue(goka.GroupTable(topics.LiveviewGroup), "acme").(*livetabv1.AccountState)
			if st.GetSeq() != 3 || st.GetCounters().GetConversions() != 1 {
				t.Errorf("account seq %d counters %v, want 3 items with a conversion", st.GetSeq(), st.GetCounters())
			}
			if it := markedInstall(view); it.GetConvertedWith().GetSession() != "web1" {
				t.Errorf("install item not marked converted: %v", it)
			}

			// Redelivered, and with time past the grace period, nothing
			// is added anywhere.
			for _, s := range steps {
				s()
			}
			gokatest.Consume(t, tt, topics.Clock, attribution.TickKeys(1)[0], &livetabv1.Tick{TimeUs: now + time.Minute.Microseconds()})
			if n := len(gokatest.Drain(conversions)); n != 0 {
				t.Errorf("%d conversions after redelivery, want none", n)
			}
			for _, session := range []string{"web1", "app1"} {
				tl, _ := tt.TableValue(goka.GroupTable(topics.SessionsGroup), session).(*livetabv1.Timeline)
				if len(tl.GetStored()) != 1 {
					t.Errorf("session %s has %d entries after redelivery, want 1", session, len(tl.GetStored()))
				}
			}
			if st, _ := tt.TableValue(goka.GroupTable(topics.LiveviewGroup), "acme").(*livetabv1.AccountState); st.GetSeq() != 3 {
				t.Errorf("account seq %d after redelivery, want 3", st.GetSeq())
			}
		})
	}
}

// TestDeviceConversionThroughAllGraphs: a conversion decided by a tick
// pairs both sessions and marks the install, like a click-id one.
func TestDeviceConversionThroughAllGraphs(t *testing.T) {
	tt := tester.New(t)
	gokatest.Run(t, tt, sessions.Graph())
	gokatest.Run(t, tt, attribution.Graph())
	gokatest.Run(t, tt, liveview.Graph())
	conversions := tt.NewQueueTracker(string(topics.Conversions))
	view := tt.NewQueueTracker(string(topics.View))

	now := time.Now().Truncate(time.Second).UnixMicro()
	hit := &livetabv1.Hit{Id: "h1", Account: "acme", Session: "web1", DeviceId: "adid-1", ReceivedUs: now}
	install := &livetabv1.Event{Id: "e1", Account: "acme", Session: "app1", Name: "first_open", DeviceIds: []string{"adid-1"}, ReceivedUs: now + 1}
	gokatest.Consume(t, tt, topics.Events, install.Account, install)
	gokatest.Consume(t, tt, topics.Hits, hit.Account, hit)
	if n := len(gokatest.Drain(conversions)); n != 0 {
		t.Fatalf("%d conversions before the grace period ended, want none", n)
	}
	gokatest.Consume(t, tt, topics.Clock, attribution.TickKeys(1)[0], &livetabv1.Tick{TimeUs: now + (attribution.DefaultGrace + time.Second).Microseconds()})
	if n := len(gokatest.Drain(conversions)); n != 1 {
		t.Fatalf("%d conversions after the grace period, want 1", n)
	}
	for session, paired := range map[string]string{"web1": "app1", "app1": "web1"} {
		tl, _ := tt.TableValue(goka.GroupTable(topics.SessionsGroup), session).(*livetabv1.Timeline)
		if tl.GetPairedSession() != paired || tl.GetConversion().GetMethod() != livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID {
			t.Errorf("session %s: paired %q by %v, want %s by device id", session, tl.GetPairedSession(), tl.GetConversion().GetMethod(), paired)
		}
	}
	if it := markedInstall(view); it.GetConvertedWith().GetMethod() != livetabv1.MatchMethod_MATCH_METHOD_DEVICE_ID {
		t.Errorf("install item not marked converted by device id: %v", it)
	}
}

// markedInstall is the last version of install e1 on the view topic: the
// liveview state keeps no marked item, the view topic does.
func markedInstall(view *tester.QueueTracker) *livetabv1.ViewItem {
	var last *livetabv1.ViewItem
	for {
		_, v, ok := view.Next()
		if !ok {
			return last
		}
		if it := v.(*livetabv1.ViewItem); it.GetEvent().GetId() == "e1" {
			last = it
		}
	}
}
