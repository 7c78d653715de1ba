package attribution_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/attribution"
	"github.com/livetab/livetab/processors/internal/gokatest"
	"github.com/livetab/livetab/topics"
)

func encode(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sessionEvents writes es as one SessionEvents record keyed by account, as
// the collector does.
func (r *run) sessionEvents(es ...*livetabv1.Event) {
	r.t.Helper()
	raws := make([][]byte, len(es))
	for i, e := range es {
		raws[i] = encode(r.t, e)
	}
	r.tt.Consume(string(topics.Events), "acme", codecs.SessionEventsOf(raws...))
}

// TestSessionEventsConvertAsTheInstallAlone: an install among in-app
// events of a SessionEvents loops, and converts, exactly as the install on
// its own does.
func TestSessionEventsConvertAsTheInstallAlone(t *testing.T) {
	cases := []struct {
		name string
		h    *livetabv1.Hit
		e    *livetabv1.Event
		m    livetabv1.MatchMethod
		n    int32 // candidates
	}{
		{"click id", hit("h1", 0, click("c1")), install("e1", "app", time.Hour, withClick("c1")), byClick, 0},
		{"device id", hit("h1", 0, device("d1")), install("e1", "app", time.Hour, withDevices("d1")), byDevice, 0},
		{"fingerprint", hit("h1", 0, from(browserReq)), install("e1", "app", time.Hour, withReq(appReq)), byFingerprint, 1},
	}
	inApp := func(id, name string) *livetabv1.Event {
		return install(id, "app", time.Hour, named(name), withClick("c1"), withDevices("d1"), withReq(appReq))
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			type result struct {
				loops []gokatest.Message
				convs map[string]*livetabv1.Conversion
			}
			play := func(send func(r *run)) result {
				r := start(t, attribution.Options{})
				loops := r.tt.NewQueueTracker(string(loop))
				r.hit(c.h)
				gokatest.Drain(loops)
				send(r)
				res := result{loops: gokatest.Drain(loops)}
				r.tick(graceEnd(time.Hour))
				res.convs = r.conversions()
				return res
			}
			alone := play(func(r *run) { r.event(c.e) })
			batch := play(func(r *run) {
				r.sessionEvents(inApp("o1", "open"), c.e, inApp("p1", "purchase"), inApp("o2", "app_open"))
			})
			w := want(c.m, c.h, c.e, c.n)
			if len(alone.convs) != 1 || !proto.Equal(alone.convs["app"], w) {
				t.Fatalf("the install alone converts to %v, want %v", alone.convs, w)
			}
			if len(batch.convs) != 1 || !proto.Equal(batch.convs["app"], w) {
				t.Errorf("the install among in-app events converts to %v, want %v", batch.convs, w)
			}
			// Before the deadline's records: what the install looped (its
			// app session and match keys), the in-app events nothing.
			if len(batch.loops) != len(alone.loops) || len(alone.loops) == 0 {
				t.Fatalf("loop records: %d from the SessionEvents, %d from the install alone", len(batch.loops), len(alone.loops))
			}
			for i := range alone.loops {
				if a, b := alone.loops[i], batch.loops[i]; a.Key != b.Key || !bytes.Equal(a.Value, b.Value) {
					t.Errorf("loop record %d: %q %x from the SessionEvents, %q %x from the install alone", i, b.Key, b.Value, a.Key, a.Value)
				}
			}
		})
	}
}

// TestSessionEventsBadRecords: a SessionEvents whose framing is broken is
// skipped whole with a warning; a bad event within one is skipped with a
// warning that tells its index, and the others are still handled.
func TestSessionEventsBadRecords(t *testing.T) {
	var logs gokatest.Logs
	r := start(t, attribution.Options{Logger: logs.Logger()})
	loops := r.tt.NewQueueTracker(string(loop))
	h := hit("h1", 0, click("c1"))
	r.hit(h)
	gokatest.Drain(loops)

	// Broken framing: the install before the break is not handled either.
	e := install("e1", "app", time.Hour, withClick("c1"))
	broken := protowire.AppendTag(codecs.SessionEventsOf(encode(t, e)), codecs.SessionEventsEvents, protowire.BytesType)
	broken = append(broken, 0x05, 'x')
	r.tt.Consume(string(topics.Events), "acme", broken)
	line, ok := logs.Find("level=WARN", "does not decode", "topic="+string(topics.Events), "key=acme")
	if !ok || !strings.Contains(line, "session events") {
		t.Errorf("no warning for a broken SessionEvents; logs %v", logs.Lines())
	}
	if l := gokatest.Drain(loops); len(l) != 0 {
		t.Errorf("a broken SessionEvents looped %d records", len(l))
	}
	expectNone(t, r, "after a broken SessionEvents")

	// Bad install-like events among good ones: skipped one by one.
	noSession := encode(t, install("e2", "", time.Hour, withClick("c1")))
	corrupt := append(encode(t, install("e3", "app3", time.Hour, withClick("c1"))),
		protowire.AppendBytes(protowire.AppendTag(nil, codecs.EventRequest, protowire.BytesType), []byte{0xff, 0xff})...)
	inApp := encode(t, install("o1", "app", time.Hour, named("open")))
	r.tt.Consume(string(topics.Events), "acme", codecs.SessionEventsOf(inApp, noSession, corrupt, encode(t, e)))
	for _, w := range []struct{ reason, index string }{
		{"event without id, account or session", "index=1"},
		{"does not decode", "index=2"},
	} {
		if _, ok := logs.Find("level=WARN", w.reason, w.index, "topic="+string(topics.Events)); !ok {
			t.Errorf("no warning %q with %s; logs %v", w.reason, w.index, logs.Lines())
		}
	}
	expectOne(t, r, want(byClick, h, e, 0))
}
