// Package liveview is the goka processor group that turns every hit, event
// and conversion into a view item of its account and writes it to the
// compacted topics.View, keyed by topics.ViewKey(account, cursor).
//
// Hits and events come keyed by account (as the collector writes them) and
// are applied where they are read; a record keyed otherwise, such as a
// conversion (keyed by app session) or a hit written by an older collector
// (keyed by session), is looped back keyed by its account, as it came
// (only its id and account are read). A record of topics.Events is one
// Event or a SessionEvents, the events of one app session of a request
// (codecs.EventRecords): its events of the key's account are applied in
// order with one read and one write of the account's state for the whole
// record, which emits the items (and leaves the state) that the same events
// one record each would, but for the emission time, which the record's
// items share; an event of another account is looped to it on its own, and
// one that does not decode is skipped alone. Either way the processor reads
// only what it decides with, and emits each item built around the input's
// bytes; only conversions, which are rare, are decoded. The group table
// (topics.LiveviewGroup, value livetabv1.AccountState) numbers each
// account's items and counts them, and keeps only what its decisions need,
// so that an item costs the same whatever the account's history: the
// fingerprints of the newest Window items, to drop redeliveries, the
// install-like event items among them, to mark one once its conversion
// arrives and emit it again with the same cursor, and the conversions
// whose event has not arrived yet. The items themselves live on the view
// topic, which alone is enough to rebuild an account's newest items with
// their marks; the item with the highest cursor carries the latest
// counters.
package liveview

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
	"unicode/utf8"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/procutil"
	"github.com/livetab/livetab/topics"
)

// Group is the goka group of this processor; its table is
// goka.GroupTable(Group), keyed by account.
const Group = topics.LiveviewGroup

// Options configure the processor.
type Options struct {
	// Kafka supplies the brokers and every goka option.
	Kafka topics.Kafka
	// Storage stores the group table; nil keeps it in memory.
	Storage storage.Builder
	// Logger receives the records that are skipped. Default: discard.
	Logger *slog.Logger
	// Now stamps emitted items (ViewItem.emitted_us). Default time.Now.
	Now func() time.Time
}

// Graph is the group graph with a discarding logger and the wall clock, for
// goka's tester.
func Graph() *goka.GroupGraph { return NewGraph(Options{}) }

// NewGraph is the group graph, logging skipped records to opts.Logger.
func NewGraph(opts Options) *goka.GroupGraph {
	h := handler{log: procutil.OrDiscard(opts.Logger), now: opts.Now}
	if h.now == nil {
		h.now = time.Now
	}
	return goka.DefineGroup(Group,
		// Raw bytes everywhere a record is read, decoded by the callbacks,
		// so that a record that does not decode is skipped, not fatal.
		goka.Input(topics.Hits, new(codec.Bytes), h.hit),
		goka.Input(topics.Events, new(codec.Bytes), h.event),
		goka.Input(topics.Conversions, new(codec.Bytes), h.conversion),
		goka.Loop(new(codec.Bytes), h.loop),
		// The loop emits items encoded already.
		goka.Output(topics.View, encodedItemCodec{}),
		goka.Persist(codecs.AccountStateCodec{}),
	)
}

// NewProcessor builds the processor with opts.Kafka's options.
func NewProcessor(opts Options) (*goka.Processor, error) {
	return procutil.NewProcessor("liveview", opts.Kafka, opts.Storage, NewGraph(opts))
}

// Run builds the processor and runs it until ctx is cancelled (nil) or it
// fails.
func Run(ctx context.Context, opts Options) error {
	p, err := NewProcessor(opts)
	if err != nil {
		return err
	}
	return procutil.Run(ctx, "liveview", p)
}

type handler struct {
	log *slog.Logger
	now func() time.Time
}

// The inputs are looped to their account as they came: a ViewInput whose
// item is a message field is, on the wire, that field's tag and length and
// the message's own bytes, so the loop record is built around the input
// record without decoding and encoding it again, with ViewInput's field
// numbers (codecs.ViewInputHit, ...).

func (h handler) hit(ctx goka.Context, msg any) {
	data, _ := msg.([]byte)
	h.forward(ctx, livetabv1.Kind_KIND_HIT, codecs.ViewInputHit, [][]byte{data}, false)
}

// event reads a record of topics.Events, one Event or a SessionEvents
// (codecs.EventRecords).
func (h handler) event(ctx goka.Context, msg any) {
	data, _ := msg.([]byte)
	if !codecs.IsSessionEvents(data) {
		h.forward(ctx, livetabv1.Kind_KIND_EVENT, codecs.ViewInputEvent, [][]byte{data}, false)
		return
	}
	events, err := codecs.EventRecords(data)
	if err != nil {
		procutil.Skip(ctx, h.log, "record does not decode", "kind", livetabv1.Kind_KIND_EVENT.String(), "error", err)
		return
	}
	h.forward(ctx, livetabv1.Kind_KIND_EVENT, codecs.ViewInputEvent, events, true)
}

func (h handler) conversion(ctx goka.Context, msg any) {
	data, _ := msg.([]byte)
	h.forward(ctx, livetabv1.Kind_KIND_CONVERSION, codecs.ViewInputConversion, [][]byte{data}, false)
}

// forward applies input records (raw bytes of Hits, Events or Conversions:
// one record of the input topic, or the events of a SessionEvents, batch)
// to their accounts as ViewInputs whose item is field: those of the
// account the record is keyed by here, together and in order (applyAll),
// the others by looping each to its account. The direct way spares the record a Kafka
// round trip on the way to the live tab, and a batch's events one state
// read and one table write each.
//
// Only the records' ids and accounts are read here; applyAll and the loop
// check the whole record (ReadInput), and skip it then if a part nested
// deeper does not decode. A record skipped here leaves the others of a
// batch to apply; its warning tells its index in the batch.
func (h handler) forward(ctx goka.Context, kind livetabv1.Kind, field protowire.Number, records [][]byte, batch bool) {
	// The ViewInputs applied here share one buffer, sized for all the
	// records: it is not grown, so the slices of it stay put.
	size := 0
	for _, data := range records {
		size += protowire.SizeTag(field) + protowire.SizeBytes(len(data))
	}
	var (
		buf   []byte
		one   [1]input // a single record's, kept off the heap
		local = one[:0]
	)
	for i, data := range records {
		id, account, err := idAndAccount(data)
		if err != nil {
			h.skipRecord(ctx, "record does not decode", batch, i, "kind", kind.String(), "error", err)
			continue
		}
		if len(account) == 0 || len(id) == 0 {
			h.skipRecord(ctx, "record without account or id", batch, i, "kind", kind.String(), "id", string(id))
			continue
		}
		if string(account) != ctx.Key() {
			in := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeBytes(len(data)))
			ctx.Loopback(string(account), appendViewInput(in, field, data))
			continue
		}
		if buf == nil {
			buf = make([]byte, 0, size)
			if len(records) > 1 {
				local = make([]input, 0, len(records))
			}
		}
		start := len(buf)
		buf = appendViewInput(buf, field, data)
		in := input{data: buf[start:len(buf):len(buf)], index: -1}
		if batch {
			in.index = i
		}
		local = append(local, in)
	}
	if len(local) > 0 {
		h.applyAll(ctx, local)
	}
}

// appendViewInput appends to b the ViewInput whose item, field, is data.
func appendViewInput(b []byte, field protowire.Number, data []byte) []byte {
	b = protowire.AppendTag(b, field, protowire.BytesType)
	return protowire.AppendBytes(b, data)
}

// skipRecord logs a skipped record, with its index when it is one of a
// batch.
func (h handler) skipRecord(ctx goka.Context, reason string, batch bool, index int, args ...any) {
	if batch {
		args = append(args, "index", index)
	}
	procutil.Skip(ctx, h.log, reason, args...)
}

// input is an encoded ViewInput that applyAll applies, with the index of
// its event in the SessionEvents it came in, for the warnings; -1 when it
// came alone.
type input struct {
	data  []byte
	index int
}

// errNotUTF8 is the error of a string field that is not valid UTF-8, which
// proto3 rejects.
var errNotUTF8 = errors.New("string field is not valid UTF-8")

// idAndAccount reads fields 1 (id) and 2 (account) of a Hit, Event or
// Conversion, which all number them so, the last occurrence winning as in
// proto.Unmarshal. It checks the record's outer framing only. id and
// account share data's memory: most records only compare them.
func idAndAccount(data []byte) (id, account []byte, err error) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return nil, nil, fmt.Errorf("%w: %w", codecs.ErrDecode, protowire.ParseError(n))
		}
		data = data[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return nil, nil, fmt.Errorf("%w: field %d: %w", codecs.ErrDecode, num, protowire.ParseError(n))
			}
			if !utf8.Valid(v) {
				return nil, nil, fmt.Errorf("%w: field %d: %w", codecs.ErrDecode, num, errNotUTF8)
			}
			if num == 1 {
				id = v
			} else {
				account = v
			}
			data = data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return nil, nil, fmt.Errorf("%w: field %d: %w", codecs.ErrDecode, num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	return id, account, nil
}

// loop applies a looped input to its account.
func (h handler) loop(ctx goka.Context, msg any) {
	data, _ := msg.([]byte)
	h.applyAll(ctx, []input{{data: data, index: -1}})
}

// applyAll adds inputs (encoded ViewInputs), in order, to their account's
// state (the key) and emits the resulting view items, in order. The state
// is read once and, when an input changed it, written once, whatever the
// number of inputs; an input that does not decode or is not the key's is
// skipped, the others still apply. Items emitted together share their
// emission time.
func (h handler) applyAll(ctx goka.Context, inputs []input) {
	var (
		st      *livetabv1.AccountState
		nowUs   int64
		changed bool
	)
	for _, x := range inputs {
		in, err := ReadInput(x.data)
		if err != nil {
			h.skipRecord(ctx, "record does not decode", x.index >= 0, x.index, "error", err)
			continue
		}
		if in.Kind == livetabv1.Kind_KIND_UNSPECIFIED || in.Account == "" || in.Account != ctx.Key() {
			h.skipRecord(ctx, "view input without payload or not keyed by its account", x.index >= 0, x.index, "kind", in.Kind.String(), "account", in.Account)
			continue
		}
		if st == nil {
			st, _ = ctx.Value().(*livetabv1.AccountState)
			if st == nil {
				st = &livetabv1.AccountState{}
			}
			nowUs = h.now().UnixMicro()
		}
		items := Apply(st, in, nowUs)
		for _, it := range items {
			ctx.Emit(topics.View, topics.ViewKey(in.Account, it.Cursor), it.Data)
		}
		changed = changed || len(items) > 0
	}
	if changed {
		ctx.SetValue(st)
	}
}

// encodedItemCodec is the view topic's codec in this group: Encode takes
// an item encoded already (Apply's Item.Data, a []byte) as it is, and
// Decode gives a *livetabv1.ViewItem, as every reader of the topic decodes
// it (goka's tester decodes what a test reads back with it). On the wire
// it is codecs.ViewItemCodec's.
type encodedItemCodec struct{}

func (encodedItemCodec) Encode(value any) ([]byte, error) {
	b, ok := value.([]byte)
	if !ok {
		return nil, fmt.Errorf("%w: got %T, want an encoded view item ([]byte)", codecs.ErrType, value)
	}
	return b, nil
}

func (encodedItemCodec) Decode(data []byte) (any, error) {
	return codecs.ViewItemCodec{}.Decode(data)
}
