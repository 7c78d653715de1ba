package views

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/coder/websocket"
	"github.com/lovoo/goka/storage"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

func upd(cursor uint64) *update {
	return &update{cursor: cursor, json: rawJSON(fmt.Sprintf(`{"cursor":%d}`, cursor))}
}

func TestHubDropsOnlyTheFullSubscriber(t *testing.T) {
	h := newHub(slog.New(slog.DiscardHandler))
	full := h.subscribe("demo", 1)
	roomy := h.subscribe("demo", 10)
	other := h.subscribe("acme", 10)

	h.publish("demo", upd(1))
	h.publish("demo", upd(2)) // full's queue holds 1 already

	select {
	case <-full.done:
	default:
		t.Fatal("the full subscriber was not stopped")
	}
	if full.reason.code != websocket.StatusPolicyViolation || full.reason.text != "too slow: outgoing queue full" {
		t.Errorf("reason %+v", full.reason)
	}
	if len(roomy.queue) != 2 {
		t.Errorf("the other subscriber got %d updates, want 2", len(roomy.queue))
	}
	if len(other.queue) != 0 {
		t.Errorf("acme's subscriber got %d of demo's updates", len(other.queue))
	}
	h.publish("demo", upd(3))
	if len(full.queue) != 1 {
		t.Errorf("a dropped subscriber still gets updates")
	}
	if got := h.stats.slow.Load(); got != 1 {
		t.Errorf("slow = %d, want 1", got)
	}

	h.close()
	for _, s := range []*subscriber{roomy, other} {
		select {
		case <-s.done:
			if s.reason != reasonShutdown {
				t.Errorf("reason %+v after close", s.reason)
			}
		default:
			t.Error("close left a subscriber running")
		}
	}
	if late := h.subscribe("demo", 1); !isDone(late) || h.wants("demo") {
		t.Error("a closed hub accepted a subscriber")
	}
}

func isDone(s *subscriber) bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func TestPositionFrames(t *testing.T) {
	tests := []struct {
		name     string
		pos      position
		cursors  []uint64
		want     []string // frame type per cursor, "" for none
		wantLast position
	}{
		{"empty snapshot", position{}, []uint64{1, 2, 1}, []string{"item", "item", "update"}, position{1, 2}},
		{"after snapshot", position{31, 130}, []uint64{130, 131, 31, 30, 132}, []string{"update", "item", "update", "", "item"}, position{31, 132}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := tt.pos
			for i, c := range tt.cursors {
				f := p.frame(upd(c))
				got := ""
				if f != nil {
					var fr frame
					if err := json.Unmarshal(f, &fr); err != nil {
						t.Fatal(err)
					}
					got = fr.Type
				}
				if got != tt.want[i] {
					t.Errorf("cursor %d: frame %q, want %q", c, got, tt.want[i])
				}
			}
			if p != tt.wantLast {
				t.Errorf("position %+v, want %+v", p, tt.wantLast)
			}
		})
	}
}

// TestSnapshotMergesQueued covers the race the snapshot guards against:
// slot 5 was read before item 105 was stored, slot 6 after item 106 was.
// The queue holds both, so the snapshot has no hole.
func TestSnapshotMergesQueued(t *testing.T) {
	stored := map[uint64]*livetabv1.ViewItem{}
	for c := uint64(7); c <= 104; c++ {
		stored[c] = hitItem("demo", c)
	}
	stored[5] = hitItem("demo", 5) // read before 105 replaced it
	stored[106] = hitItem("demo", 106)

	s := &Server{log: slog.New(slog.DiscardHandler), hub: newHub(slog.New(slog.DiscardHandler))}
	sub := s.hub.subscribe("demo", 10)
	for _, c := range []uint64{105, 106} {
		u, err := newUpdate(hitItem("demo", c), "demo")
		if err != nil {
			t.Fatal(err)
		}
		sub.queue <- u
	}
	b, pos, err := s.snapshotFrom("demo", sub, func(slot uint64) (any, error) {
		for c, it := range stored {
			if c%topics.ViewSlots == slot {
				return it, nil
			}
		}
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	want := make([]uint64, 0, 100)
	for c := uint64(7); c <= 106; c++ {
		want = append(want, c)
	}
	if got := cursorsOf(f.Items); !slices.Equal(got, want) {
		t.Errorf("snapshot cursors %v, want 7..106", got)
	}
	if pos != (position{7, 106}) {
		t.Errorf("position %+v", pos)
	}
	if f.Counters == nil || *f.Counters != encodeCounters(counters(106)) {
		t.Errorf("counters %+v, want item 106's", f.Counters)
	}
}

func TestMapStorage(t *testing.T) {
	st, err := mapBuilder()("t", 0)
	if err != nil {
		t.Fatal(err)
	}
	if off, _ := st.GetOffset(-3); off != -3 {
		t.Errorf("fresh offset %d, want the default", off)
	}
	st.SetOffset(42)
	if off, _ := st.GetOffset(-3); off != 42 {
		t.Errorf("offset %d, want 42", off)
	}
	for _, k := range []string{"b", "d", "a", "c"} {
		st.Set(k, []byte("v"+k))
	}
	st.Delete("d")
	if v, _ := st.Get("d"); v != nil {
		t.Errorf("deleted key still holds %q", v)
	}
	if ok, _ := st.Has("a"); !ok {
		t.Error("Has(a) = false")
	}
	keys := func(it storage.Iterator) []string {
		var ks []string
		for it.Next() {
			v, _ := it.Value()
			if string(v) != "v"+string(it.Key()) {
				t.Errorf("key %s holds %s", it.Key(), v)
			}
			ks = append(ks, string(it.Key()))
		}
		return ks
	}
	it, _ := st.Iterator()
	if got := keys(it); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Errorf("iterator keys %v", got)
	}
	it, _ = st.IteratorWithRange([]byte("b"), []byte("c"))
	if got := keys(it); !slices.Equal(got, []string{"b"}) {
		t.Errorf("range [b, c) keys %v", got)
	}
	it, _ = st.Iterator()
	if !it.Seek([]byte("bb")) {
		t.Fatal("seek bb found nothing")
	}
	if got := keys(it); !slices.Equal(got, []string{"c"}) {
		t.Errorf("after seek bb: %v", got)
	}
}
