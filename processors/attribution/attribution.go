// Package attribution is the goka processor group that pairs hits with the
// app sessions they produced and writes the pairs to topics.Conversions,
// keyed by app session.
//
// This version matches deterministically by click id only: a hit carrying
// a click id and an install-like event carrying the same click id are both
// looped back keyed by the click id, and the group table
// (topics.AttributionGroup, value livetabv1.ClickState) joins them in
// either order.
package attribution

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/procutil"
	"github.com/livetab/livetab/topics"
)

// Group is the goka group of this processor; its table is
// goka.GroupTable(Group), keyed by click id.
const Group = topics.AttributionGroup

// Options configure the processor.
type Options struct {
	// Kafka supplies the brokers and every goka option.
	Kafka topics.Kafka
	// Storage stores the group table; nil keeps it in memory.
	Storage storage.Builder
	// Logger receives the records that are skipped. Default: discard.
	Logger *slog.Logger
}

// Graph is the group graph with a discarding logger, for goka's tester.
func Graph() *goka.GroupGraph { return NewGraph(Options{}) }

// NewGraph is the group graph, logging skipped records to opts.Logger.
func NewGraph(opts Options) *goka.GroupGraph {
	h := handler{log: procutil.OrDiscard(opts.Logger)}
	return goka.DefineGroup(Group,
		// Raw bytes everywhere a record is read, decoded by the callbacks,
		// so that a record that does not decode is skipped, not fatal.
		goka.Input(topics.Hits, new(codec.Bytes), h.hit),
		goka.Input(topics.Events, new(codec.Bytes), h.event),
		goka.Loop(new(codec.Bytes), h.loop),
		goka.Output(topics.Conversions, new(codec.Bytes)),
		goka.Persist(codecs.ClickStateCodec{}),
	)
}

// NewProcessor builds the processor with opts.Kafka's options.
func NewProcessor(opts Options) (*goka.Processor, error) {
	sb := opts.Storage
	if sb == nil {
		sb = storage.MemoryBuilder()
	}
	p, err := goka.NewProcessor(opts.Kafka.Brokers, NewGraph(opts), opts.Kafka.ProcessorOptions("attribution", sb)...)
	if err != nil {
		return nil, fmt.Errorf("attribution: new processor: %w", err)
	}
	return p, nil
}

// Run builds the processor and runs it until ctx is cancelled (nil) or it
// fails.
func Run(ctx context.Context, opts Options) error {
	p, err := NewProcessor(opts)
	if err != nil {
		return err
	}
	if err := p.Run(ctx); err != nil {
		return fmt.Errorf("attribution: %w", err)
	}
	return nil
}

type handler struct {
	log *slog.Logger
}

// hit loops a hit that carries a click id to its click id.
func (h handler) hit(ctx goka.Context, msg any) {
	hit, ok := procutil.Decode[livetabv1.Hit](ctx, h.log, msg)
	if !ok || hit.GetClickId() == "" {
		return
	}
	if hit.GetId() == "" || hit.GetAccount() == "" || hit.GetSession() == "" {
		procutil.Skip(ctx, h.log, "hit without id, account or session", "hit", hit.GetId())
		return
	}
	procutil.Loopback(ctx, hit.GetClickId(), &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Hit{Hit: hit}})
}

// event loops an install-like event that carries a click id to its click
// id.
func (h handler) event(ctx goka.Context, msg any) {
	ev, ok := procutil.Decode[livetabv1.Event](ctx, h.log, msg)
	if !ok || ev.GetClickId() == "" || !InstallLike(ev.GetName()) {
		return
	}
	if ev.GetId() == "" || ev.GetAccount() == "" || ev.GetSession() == "" {
		procutil.Skip(ctx, h.log, "event without id, account or session", "event", ev.GetId())
		return
	}
	procutil.Loopback(ctx, ev.GetClickId(), &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Event{Event: ev}})
}

// loop joins hits and events of one click id (the key).
func (h handler) loop(ctx goka.Context, msg any) {
	in, ok := procutil.Decode[livetabv1.AttributionInput](ctx, h.log, msg)
	if !ok {
		return
	}
	st, _ := ctx.Value().(*livetabv1.ClickState)
	if st == nil {
		st = &livetabv1.ClickState{}
	}
	var (
		changed bool
		out     []*livetabv1.Conversion
	)
	switch {
	case in.GetHit() != nil:
		changed, out = OnHit(st, in.GetHit())
	case in.GetEvent() != nil:
		var c *livetabv1.Conversion
		changed, c = OnEvent(st, in.GetEvent())
		if c != nil {
			out = append(out, c)
		}
	default:
		procutil.Skip(ctx, h.log, "attribution input with neither hit nor event")
		return
	}
	for _, c := range out {
		procutil.Emit(ctx, topics.Conversions, c.GetAppSession(), c)
	}
	if changed {
		ctx.SetValue(st)
	}
}
