package codecs_test

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
)

func TestEventRecords(t *testing.T) {
	evs := []*livetabv1.Event{
		{Id: "e1", Account: "acme", Session: "app-1", Name: "open"},
		{Id: "e2", Account: "acme", Session: "app-1", Name: "purchase", Params: map[string]string{"sku": "x"}},
		{},
	}
	var batch []byte
	var raws [][]byte
	for _, ev := range evs {
		raw, err := proto.Marshal(ev)
		if err != nil {
			t.Fatal(err)
		}
		raws = append(raws, raw)
		before := len(batch)
		batch = codecs.AppendSessionEvent(batch, raw)
		if got, want := len(batch)-before, codecs.SessionEventSize(len(raw)); got != want {
			t.Errorf("AppendSessionEvent added %d bytes, SessionEventSize says %d", got, want)
		}
	}
	// What AppendSessionEvent builds is a SessionEvents, as protobuf sees it.
	var decoded livetabv1.SessionEvents
	if err := proto.Unmarshal(batch, &decoded); err != nil || len(decoded.GetEvents()) != len(evs) {
		t.Fatalf("batch decodes to %v, %v", &decoded, err)
	}
	for i, ev := range evs {
		if !proto.Equal(decoded.GetEvents()[i], ev) {
			t.Errorf("event %d decodes to %v, want %v", i, decoded.GetEvents()[i], ev)
		}
	}
	if of := codecs.SessionEventsOf(raws...); !bytes.Equal(of, batch) || cap(of) != len(of) {
		t.Errorf("SessionEventsOf = %x (capacity %d), want %x", of, cap(of), batch)
	}
	if !codecs.IsSessionEvents(batch) {
		t.Error("a SessionEvents is not recognised")
	}
	got, err := codecs.EventRecords(batch)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(raws) {
		t.Fatalf("%d events, want %d", len(got), len(raws))
	}
	for i := range raws {
		if !bytes.Equal(got[i], raws[i]) {
			t.Errorf("event %d is %x, want %x", i, got[i], raws[i])
		}
	}

	// An Event on its own, any field first, is itself.
	for _, raw := range raws[:2] {
		if codecs.IsSessionEvents(raw) {
			t.Errorf("event %x taken for a SessionEvents", raw)
		}
		got, err := codecs.EventRecords(raw)
		if err != nil || len(got) != 1 || !bytes.Equal(got[0], raw) {
			t.Errorf("single event read as %x, %v", got, err)
		}
	}
	if got, err := codecs.EventRecords(nil); err != nil || len(got) != 1 || len(got[0]) != 0 {
		t.Errorf("empty record read as %x, %v; want itself, an empty Event", got, err)
	}

	for name, bad := range map[string][]byte{
		"truncated":         batch[:len(batch)-1],
		"another field":     protowire.AppendString(append(bytes.Clone(batch), 0x0a), "x")[0:],
		"events as varint":  protowire.AppendVarint(protowire.AppendTag(bytes.Clone(batch), codecs.SessionEventsEvents, protowire.VarintType), 1),
		"length past end":   append(protowire.AppendTag(nil, codecs.SessionEventsEvents, protowire.BytesType), 0x05, 'a'),
		"field number zero": append(bytes.Clone(batch), 0x02, 0x00),
	} {
		if _, err := codecs.EventRecords(bad); !errors.Is(err, codecs.ErrDecode) {
			t.Errorf("%s: error %v, want one wrapping codecs.ErrDecode", name, err)
		}
	}
}
