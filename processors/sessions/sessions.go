// Package sessions is the goka processor group that keeps every session's
// timeline: the group table topics.SessionsGroup maps a session id (hit
// session or app session) to a livetabv1.Timeline of its hits and events in
// time order, and to the session it was paired with once attribution
// converted it.
//
// Inputs: topics.Hits and topics.Events (keyed by session), and
// topics.Conversions (keyed by app session), whose conversions are looped
// back to the hit session so that both sides of a pair know each other.
//
// Retention: a timeline drops entries older than Retention whenever it is
// written. Sessions that receive nothing more are swept by the visitor
// ExpireVisitor, which the owner of the processor runs periodically with
// goka's Processor.VisitAll(ctx, ExpireVisitor, now) (processors.Processors
// does, every SweepInterval): it trims every timeline as of now and deletes
// the sessions left with nothing (a tombstone on the table topic).
package sessions

import (
	"context"
	"fmt"
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
// goka.GroupTable(Group).
const Group = topics.SessionsGroup

// ExpireVisitor is the name of the group's retention visitor. Its meta
// argument is the time.Time to apply the retention at.
const ExpireVisitor = "expire"

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
		// Inputs are raw bytes, decoded by the callbacks, so that a record
		// that does not decode is skipped instead of stopping the group.
		goka.Input(topics.Hits, new(codec.Bytes), h.hit),
		goka.Input(topics.Events, new(codec.Bytes), h.event),
		goka.Input(topics.Conversions, new(codec.Bytes), h.conversion),
		goka.Loop(new(codec.Bytes), h.loop),
		goka.Visitor(ExpireVisitor, h.expire),
		goka.Persist(codecs.TimelineCodec{}),
	)
}

// NewProcessor builds the processor with opts.Kafka's options.
func NewProcessor(opts Options) (*goka.Processor, error) {
	return procutil.NewProcessor("sessions", opts.Kafka, opts.Storage, NewGraph(opts))
}

// Run builds the processor and runs it until ctx is cancelled (nil) or it
// fails.
func Run(ctx context.Context, opts Options) error {
	p, err := NewProcessor(opts)
	if err != nil {
		return err
	}
	return procutil.Run(ctx, "sessions", p)
}

type handler struct {
	log *slog.Logger
}

func timeline(ctx goka.Context) *livetabv1.Timeline {
	if v, ok := ctx.Value().(*livetabv1.Timeline); ok && v != nil {
		return v
	}
	return &livetabv1.Timeline{}
}

func (h handler) hit(ctx goka.Context, msg any) {
	hit, ok := procutil.Decode[livetabv1.Hit](ctx, h.log, msg)
	if !ok {
		return
	}
	if hit.GetId() == "" || hit.GetAccount() == "" || ctx.Key() == "" {
		procutil.Skip(ctx, h.log, "hit without id, account or session key", "hit", hit.GetId())
		return
	}
	h.add(ctx, hit.GetAccount(), &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Hit{Hit: hit}})
}

func (h handler) event(ctx goka.Context, msg any) {
	ev, ok := procutil.Decode[livetabv1.Event](ctx, h.log, msg)
	if !ok {
		return
	}
	if ev.GetId() == "" || ev.GetAccount() == "" || ctx.Key() == "" {
		procutil.Skip(ctx, h.log, "event without id, account or session key", "event", ev.GetId())
		return
	}
	h.add(ctx, ev.GetAccount(), &livetabv1.TimelineEntry{Item: &livetabv1.TimelineEntry_Event{Event: ev}})
}

func (h handler) add(ctx goka.Context, account string, e *livetabv1.TimelineEntry) {
	tl := timeline(ctx)
	// The record's Kafka timestamp, not the wall clock, is "now", so that
	// a replay rebuilds the same table.
	if !Insert(tl, e, ctx.Timestamp()) {
		return
	}
	tl.Session = ctx.Key()
	if tl.Account == "" {
		tl.Account = account
	}
	ctx.SetValue(tl)
}

// conversion pairs the app session (the key) and loops the conversion to
// the hit session.
func (h handler) conversion(ctx goka.Context, msg any) {
	c, ok := h.decodeConversion(ctx, msg)
	if !ok {
		return
	}
	if c.GetAppSession() != ctx.Key() {
		procutil.Skip(ctx, h.log, "conversion not keyed by its app session", "conversion", c.GetId())
		return
	}
	tl := timeline(ctx)
	if !PairApp(tl, c) {
		return
	}
	Trim(tl, ctx.Timestamp())
	ctx.SetValue(tl)
	procutil.Loopback(ctx, c.GetHitSession(), c)
}

// loop pairs the hit session (the key) with the conversion's app session.
func (h handler) loop(ctx goka.Context, msg any) {
	c, ok := h.decodeConversion(ctx, msg)
	if !ok {
		return
	}
	if c.GetHitSession() != ctx.Key() {
		procutil.Skip(ctx, h.log, "looped conversion not keyed by its hit session", "conversion", c.GetId())
		return
	}
	tl := timeline(ctx)
	if !PairHit(tl, c) {
		return
	}
	Trim(tl, ctx.Timestamp())
	ctx.SetValue(tl)
}

// expire applies the retention as of the visit's meta time to the visited
// timeline, deleting it when nothing is left.
func (h handler) expire(ctx goka.Context, meta any) {
	now, ok := meta.(time.Time)
	if !ok {
		procutil.Skip(ctx, h.log, "expire visit without a time", "meta", fmt.Sprintf("%T", meta))
		return
	}
	tl, _ := ctx.Value().(*livetabv1.Timeline)
	if tl == nil {
		return
	}
	switch changed, gone := Expire(tl, now); {
	case gone:
		ctx.Delete()
	case changed:
		ctx.SetValue(tl)
	}
}

func (h handler) decodeConversion(ctx goka.Context, msg any) (*livetabv1.Conversion, bool) {
	c, ok := procutil.Decode[livetabv1.Conversion](ctx, h.log, msg)
	if !ok {
		return nil, false
	}
	if c.GetAccount() == "" || c.GetHitSession() == "" || c.GetAppSession() == "" || ctx.Key() == "" {
		procutil.Skip(ctx, h.log, "conversion without account, hit session or app session", "conversion", c.GetId())
		return nil, false
	}
	return c, true
}
