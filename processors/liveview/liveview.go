// Package liveview is the goka processor group that turns every hit, event
// and conversion into a view item of its account and writes it to the
// compacted topics.View, keyed by topics.ViewKey(account, cursor).
//
// Hits and events come keyed by account (as the collector writes them) and
// are applied where they are read; a record keyed otherwise, such as a
// conversion (keyed by app session) or a hit written by an older collector
// (keyed by session), is looped back keyed by its account, as it came
// (only its id and account are read). Either way the processor reads only
// what it decides with, and emits each item built around the input's bytes; only
// conversions, which are rare, are decoded. The group table
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
	h.forward(ctx, livetabv1.Kind_KIND_HIT, codecs.ViewInputHit, msg)
}

func (h handler) event(ctx goka.Context, msg any) {
	h.forward(ctx, livetabv1.Kind_KIND_EVENT, codecs.ViewInputEvent, msg)
}

func (h handler) conversion(ctx goka.Context, msg any) {
	h.forward(ctx, livetabv1.Kind_KIND_CONVERSION, codecs.ViewInputConversion, msg)
}

// forward applies an input record (msg, raw bytes of a Hit, Event or
// Conversion) to its account as a ViewInput whose item is field: here when
// the record is keyed by its account, else by looping it to the account.
// The direct way spares the record a Kafka round trip on the way to the
// live tab.
//
// Only the record's id and account are read here; the loop checks the
// whole record (ReadInput), and skips it then if a part nested deeper does
// not decode.
func (h handler) forward(ctx goka.Context, kind livetabv1.Kind, field protowire.Number, msg any) {
	data, _ := msg.([]byte)
	id, account, err := idAndAccount(data)
	if err != nil {
		procutil.Skip(ctx, h.log, "record does not decode", "kind", kind.String(), "error", err)
		return
	}
	if account == "" || id == "" {
		procutil.Skip(ctx, h.log, "record without account or id", "kind", kind.String(), "id", id)
		return
	}
	in := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeBytes(len(data)))
	in = protowire.AppendTag(in, field, protowire.BytesType)
	in = protowire.AppendBytes(in, data)
	if account == ctx.Key() {
		h.apply(ctx, in)
		return
	}
	ctx.Loopback(account, in)
}

// errNotUTF8 is the error of a string field that is not valid UTF-8, which
// proto3 rejects.
var errNotUTF8 = errors.New("string field is not valid UTF-8")

// idAndAccount reads fields 1 (id) and 2 (account) of a Hit, Event or
// Conversion, which all number them so, the last occurrence winning as in
// proto.Unmarshal. It checks the record's outer framing only.
func idAndAccount(data []byte) (id, account string, err error) {
	for len(data) > 0 {
		num, typ, n := protowire.ConsumeTag(data)
		if n < 0 {
			return "", "", fmt.Errorf("%w: %w", codecs.ErrDecode, protowire.ParseError(n))
		}
		data = data[n:]
		if (num == 1 || num == 2) && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(data)
			if n < 0 {
				return "", "", fmt.Errorf("%w: field %d: %w", codecs.ErrDecode, num, protowire.ParseError(n))
			}
			if !utf8.Valid(v) {
				return "", "", fmt.Errorf("%w: field %d: %w", codecs.ErrDecode, num, errNotUTF8)
			}
			if num == 1 {
				id = string(v)
			} else {
				account = string(v)
			}
			data = data[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, data)
		if n < 0 {
			return "", "", fmt.Errorf("%w: field %d: %w", codecs.ErrDecode, num, protowire.ParseError(n))
		}
		data = data[n:]
	}
	return id, account, nil
}

// loop applies a looped input to its account.
func (h handler) loop(ctx goka.Context, msg any) {
	data, _ := msg.([]byte)
	h.apply(ctx, data)
}

// apply adds an input (an encoded ViewInput) to its account's state (the
// key) and emits the resulting view items.
func (h handler) apply(ctx goka.Context, data []byte) {
	in, err := ReadInput(data)
	if err != nil {
		procutil.Skip(ctx, h.log, "record does not decode", "error", err)
		return
	}
	if in.Kind == livetabv1.Kind_KIND_UNSPECIFIED || in.Account == "" || in.Account != ctx.Key() {
		procutil.Skip(ctx, h.log, "view input without payload or not keyed by its account", "kind", in.Kind.String(), "account", in.Account)
		return
	}
	st, _ := ctx.Value().(*livetabv1.AccountState)
	if st == nil {
		st = &livetabv1.AccountState{}
	}
	items := Apply(st, in, h.now().UnixMicro())
	if len(items) == 0 {
		return
	}
	for _, it := range items {
		ctx.Emit(topics.View, topics.ViewKey(in.Account, it.Cursor), it.Data)
	}
	ctx.SetValue(st)
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
