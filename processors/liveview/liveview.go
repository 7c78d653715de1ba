// Package liveview is the goka processor group that turns every hit, event
// and conversion into a view item of its account and writes it to the
// compacted topics.View, keyed by topics.ViewKey(account, cursor).
//
// Inputs (keyed by session) are looped back keyed by account; the group
// table (topics.LiveviewGroup, value livetabv1.AccountState) numbers each
// account's items, counts them and keeps the newest MaxItems, so that it can
// mark an event item once its conversion arrives and emit it again with the
// same cursor. The view topic alone is enough to rebuild an account's
// newest items with their marks; the item with the highest cursor carries
// the latest counters.
package liveview

import (
	"context"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

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
		goka.Output(topics.View, codecs.ViewItemCodec{}),
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

func (h handler) hit(ctx goka.Context, msg any) {
	if hit, ok := procutil.Decode[livetabv1.Hit](ctx, h.log, msg); ok {
		h.forward(ctx, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Hit{Hit: hit}})
	}
}

func (h handler) event(ctx goka.Context, msg any) {
	if ev, ok := procutil.Decode[livetabv1.Event](ctx, h.log, msg); ok {
		h.forward(ctx, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Event{Event: ev}})
	}
}

func (h handler) conversion(ctx goka.Context, msg any) {
	if c, ok := procutil.Decode[livetabv1.Conversion](ctx, h.log, msg); ok {
		h.forward(ctx, &livetabv1.ViewInput{Item: &livetabv1.ViewInput_Conversion{Conversion: c}})
	}
}

// forward loops in to its account.
func (h handler) forward(ctx goka.Context, in *livetabv1.ViewInput) {
	d := Describe(in)
	if d.Account == "" || d.ID == "" {
		procutil.Skip(ctx, h.log, "record without account or id", "kind", d.Kind.String(), "id", d.ID)
		return
	}
	procutil.Loopback(ctx, d.Account, in)
}

// loop adds an input to its account's state (the key) and emits the
// resulting view items.
func (h handler) loop(ctx goka.Context, msg any) {
	in, ok := procutil.Decode[livetabv1.ViewInput](ctx, h.log, msg)
	if !ok {
		return
	}
	d := Describe(in)
	if d.Kind == livetabv1.Kind_KIND_UNSPECIFIED || d.Account == "" || d.Account != ctx.Key() {
		procutil.Skip(ctx, h.log, "view input without payload or not keyed by its account", "kind", d.Kind.String(), "account", d.Account)
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
		ctx.Emit(topics.View, topics.ViewKey(it.GetAccount(), it.GetCursor()), it)
	}
	ctx.SetValue(st)
}
