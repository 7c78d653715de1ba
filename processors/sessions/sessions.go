// Package sessions is the goka processor group that keeps every session's
// timeline: the hits and events of a session id (hit session or app
// session) in time order, and the session it was paired with once
// attribution converted it. Read assembles a session's timeline from the
// group table topics.SessionsGroup, which holds livetabv1.Timeline values
// under two kinds of keys:
//
//   - the session id: the session's value, with its account, pairing and
//     conversion, and its newest entries, the open chunk (at most
//     ChunkSize), which every hit, event or batch of events rewrites;
//   - ChunkKey(session, i): sealed chunk i, ChunkSize older entries in time
//     order (session, account and stored entries only), written once. The
//     session's value counts the chunks it sealed (Timeline.chunks); a
//     session keeps the newest MaxChunks.
//
// So the cost of a hit or event is bounded by ChunkSize, whatever the
// session's length; the events of a SessionEvents are added together, with
// one read and one write of the session's value. When the open chunk is
// full, the processor loops it to its chunk key (a livetabv1.SessionsInput
// chunk), whose callback stores it, and a drop to the oldest chunk's key
// when more than MaxChunks would be left. Entries may arrive out of time
// order, so Read merges the chunks by time; a redelivered entry is
// recognised within the open chunk when it arrives, and by id when read.
//
// Entries are stored encoded (Timeline.stored), each with the id and time
// that dedupe and order it beside it: the processor reads a hit's or
// event's record with protowire (ReadHit, ReadEvent) and stores its bytes
// as they came, so that decoding and encoding a value copies its entries
// without parsing them. Read decodes the entries it answers with.
//
// Inputs, read as raw bytes so that a bad record is skipped with a warning:
//
//   - topics.Hits, keyed by account: each hit is looped to its session as
//     it came (SessionsInput hit);
//   - topics.Events, keyed by account, whose record is one Event, looped as
//     a hit is (SessionsInput event), or a livetabv1.SessionEvents, the
//     events of one app session that came in one request
//     (codecs.EventRecords): looped to the session in one record
//     (SessionsInput events), as it came when every event in it is good,
//     else rebuilt from the good ones; a record mixing sessions is split
//     into one per session. The loop callback adds a batch's events
//     together;
//   - topics.Conversions, keyed by app session, whose conversions are
//     looped back to the hit session so that both sides of a pair know
//     each other.
//
// A record keyed by its session (as older collectors wrote hits and
// events) is added where it is read, without the loop.
//
// Retention: the open chunk drops entries older than Retention whenever it
// is written. Everything else is swept by the visitor ExpireVisitor, which
// the owner of the processor runs periodically with goka's
// Processor.VisitAll(ctx, ExpireVisitor, now) (processors.Processors does,
// every SweepInterval): it trims every value, chunks included, as of now
// and deletes those left with nothing (a tombstone on the table topic). A
// session's value stays while one of its chunks has an entry to keep
// (Timeline.sealed_until_us) or its conversion is recent.
package sessions

import (
	"context"
	"log/slog"
	"slices"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

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

// timeline is the value of the session ctx is called for, with its session
// and account set.
func timeline(ctx goka.Context, account string) *livetabv1.Timeline {
	tl, _ := ctx.Value().(*livetabv1.Timeline)
	if tl == nil {
		tl = &livetabv1.Timeline{}
	}
	tl.Session = ctx.Key()
	if tl.Account == "" {
		tl.Account = account
	}
	return tl
}

func (h handler) hit(ctx goka.Context, msg any) {
	h.input(ctx, raw(msg), codecs.SessionsInputHit)
}

// event reads a record of topics.Events: one Event, added to its session
// as input adds a hit, or a SessionEvents, whose events are added to their
// session (sessionEvents).
func (h handler) event(ctx goka.Context, msg any) {
	data := raw(msg)
	if !codecs.IsSessionEvents(data) {
		h.input(ctx, data, codecs.SessionsInputEvent)
		return
	}
	h.sessionEvents(ctx, data)
}

// input adds a hit or an event (data; field says which, as a
// SessionsInput's field) to its session: here when the record is keyed by
// its session, else (keyed by account, as the collector writes them) by
// looping it to the session, as it came.
func (h handler) input(ctx goka.Context, data []byte, field protowire.Number) {
	rec, ok := h.read(ctx, data, field)
	if !ok {
		return
	}
	if rec.Session == ctx.Key() {
		h.add(ctx, rec)
		return
	}
	in := make([]byte, 0, protowire.SizeTag(field)+protowire.SizeBytes(len(data)))
	in = protowire.AppendTag(in, field, protowire.BytesType)
	ctx.Loopback(rec.Session, protowire.AppendBytes(in, data))
}

// read reads a hit or an event (data; field says which, as a
// SessionsInput's field), skipping it when it does not decode or lacks
// its id, account or session. args name it in the warning when it is one
// of a SessionEvents.
func (h handler) read(ctx goka.Context, data []byte, field protowire.Number, args ...any) (Record, bool) {
	what, read := "hit", ReadHit
	if field == codecs.SessionsInputEvent {
		what, read = "event", ReadEvent
	}
	rec, err := read(data)
	if err != nil {
		procutil.Skip(ctx, h.log, "record does not decode", append(args, "error", err)...)
		return Record{}, false
	}
	if rec.ID == "" || rec.Account == "" || rec.Session == "" {
		procutil.Skip(ctx, h.log, what+" without id, account or session", append(args, what, rec.ID)...)
		return Record{}, false
	}
	return rec, true
}

// sessionEvents adds the events of a SessionEvents (data, a record of
// topics.Events) to their session: here when it is the key, else by
// looping them to it in one SessionsInput events, as they came when they
// all are good events of that session. An event that does not decode or
// lacks its id, account or session is skipped, the others still apply. A
// SessionEvents is one session's, but a record that mixes sessions is
// split: one loop record (or the adding here) per session, in the order of
// their first event.
func (h handler) sessionEvents(ctx goka.Context, data []byte) {
	events, err := codecs.EventRecords(data)
	if err != nil {
		procutil.Skip(ctx, h.log, "record does not decode", "error", err)
		return
	}
	recs, raws := h.readEvents(ctx, events)
	if len(recs) == 0 {
		return
	}
	session := recs[0].Session
	mixed := slices.ContainsFunc(recs, func(r Record) bool { return r.Session != session })
	if !mixed {
		asCame := data
		if len(recs) < len(events) {
			asCame = nil
		}
		h.toSession(ctx, session, recs, raws, asCame)
		return
	}
	// Rare: another producer's record. Quadratic in its sessions, which
	// are few.
	done := make([]bool, len(recs))
	var own []Record
	var ownRaws [][]byte
	for i := range recs {
		if done[i] {
			continue
		}
		session := recs[i].Session
		own, ownRaws = own[:0], ownRaws[:0]
		for j := i; j < len(recs); j++ {
			if !done[j] && recs[j].Session == session {
				done[j] = true
				own, ownRaws = append(own, recs[j]), append(ownRaws, raws[j])
			}
		}
		h.toSession(ctx, session, own, ownRaws, nil)
	}
}

// readEvents reads the events of a SessionEvents (read), skipping the bad
// ones: the good ones' records, and their bytes.
func (h handler) readEvents(ctx goka.Context, events [][]byte) ([]Record, [][]byte) {
	recs := make([]Record, 0, len(events))
	raws := make([][]byte, 0, len(events))
	for i, ev := range events {
		rec, ok := h.read(ctx, ev, codecs.SessionsInputEvent, "index", i)
		if !ok {
			continue
		}
		recs, raws = append(recs, rec), append(raws, ev)
	}
	return recs, raws
}

// toSession adds the events of session (recs, read from raws) here when
// it is the key, else loops them to it as one SessionsInput events: a
// SessionEvents of raws, or asCame, the record they all came in, when not
// nil.
func (h handler) toSession(ctx goka.Context, session string, recs []Record, raws [][]byte, asCame []byte) {
	if session == ctx.Key() {
		h.add(ctx, recs...)
		return
	}
	size := len(asCame)
	if asCame == nil {
		for _, ev := range raws {
			size += codecs.SessionEventSize(len(ev))
		}
	}
	in := make([]byte, 0, protowire.SizeTag(codecs.SessionsInputEvents)+protowire.SizeBytes(size))
	in = protowire.AppendTag(in, codecs.SessionsInputEvents, protowire.BytesType)
	in = protowire.AppendVarint(in, uint64(size))
	if asCame != nil {
		in = append(in, asCame...)
	} else {
		for _, ev := range raws {
			in = codecs.AppendSessionEvent(in, ev)
		}
	}
	ctx.Loopback(session, in)
}

// raw is the record goka hands a callback whose edge uses codec.Bytes.
func raw(msg any) []byte {
	b, _ := msg.([]byte)
	return b
}

// add adds the entries of recs, records of the key's session, to its
// value, in their order: one read of the value, one write when it changed,
// and a loop record for every chunk sealed on the way (and a drop for the
// chunk that fell out of the window), in order. The value, chunks and loop
// records are those the records added one by one, each a record of its
// own with the same timestamp, would give.
func (h handler) add(ctx goka.Context, recs ...Record) {
	if len(recs) == 0 {
		return
	}
	if !isSessionKey(ctx.Key()) {
		// Not valid UTF-8: not a session id, and possibly a chunk key.
		procutil.Skip(ctx, h.log, "key is not a session id")
		return
	}
	tl := timeline(ctx, "")
	// The record's Kafka timestamp, not the wall clock, is "now", so that
	// a replay rebuilds the same table.
	now := ctx.Timestamp()
	var sealed []*livetabv1.Timeline
	changed := false
	for _, rec := range recs {
		// A record alone sets the account of a value without one only when
		// it changes the value, which is then written.
		account := tl.Account
		if account == "" {
			tl.Account = rec.Account
		}
		s, ok := Add(tl, rec.Entry, now)
		if !ok {
			tl.Account = account
			continue
		}
		changed = true
		if s != nil {
			sealed = append(sealed, s)
		}
	}
	if !changed {
		return
	}
	ctx.SetValue(tl)
	first := tl.Chunks - uint32(len(sealed))
	for i, c := range sealed {
		chunk := first + uint32(i)
		procutil.Loopback(ctx, ChunkKey(tl.Session, chunk),
			&livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Chunk{Chunk: c}})
		if oldest := oldestChunk(chunk + 1); oldest > 0 {
			// One seal, one drop: the chunk that just fell out of the window.
			procutil.Loopback(ctx, ChunkKey(tl.Session, oldest-1),
				&livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Drop{Drop: true}})
		}
	}
}

// conversion pairs the app session (the key) and loops the conversion to
// the hit session.
func (h handler) conversion(ctx goka.Context, msg any) {
	c, ok := procutil.Decode[livetabv1.Conversion](ctx, h.log, msg)
	if !ok || !h.validConversion(ctx, c) {
		return
	}
	if c.GetAppSession() != ctx.Key() {
		procutil.Skip(ctx, h.log, "conversion not keyed by its app session", "conversion", c.GetId())
		return
	}
	tl := timeline(ctx, c.GetAccount())
	if !PairApp(tl, c) {
		return
	}
	Trim(tl, ctx.Timestamp())
	ctx.SetValue(tl)
	procutil.Loopback(ctx, c.GetHitSession(), &livetabv1.SessionsInput{Item: &livetabv1.SessionsInput_Conversion{Conversion: c}})
}

// loop handles the group's own messages: a hit, an event or the events of
// a SessionEvents for their session, a conversion for the hit session, and
// the storing and dropping of sealed chunks.
func (h handler) loop(ctx goka.Context, msg any) {
	// The most frequent records, a hit, an event or a SessionEvents as it
	// came, are read in place: decoding them whole would parse their
	// parameters for nothing.
	if field, data, ok := loopedRecord(raw(msg)); ok {
		if field == codecs.SessionsInputEvents {
			h.loopedEvents(ctx, data)
		} else {
			h.looped(ctx, data, field)
		}
		return
	}
	in, ok := procutil.Decode[livetabv1.SessionsInput](ctx, h.log, msg)
	if !ok {
		return
	}
	switch item := in.GetItem().(type) {
	case *livetabv1.SessionsInput_Hit:
		h.loopedMessage(ctx, item.Hit, codecs.SessionsInputHit)
	case *livetabv1.SessionsInput_Event:
		h.loopedMessage(ctx, item.Event, codecs.SessionsInputEvent)
	case *livetabv1.SessionsInput_Events:
		h.loopedMessage(ctx, item.Events, codecs.SessionsInputEvents)
	case *livetabv1.SessionsInput_Conversion:
		h.pairHit(ctx, item.Conversion)
	case *livetabv1.SessionsInput_Chunk:
		h.storeChunk(ctx, item.Chunk)
	case *livetabv1.SessionsInput_Drop:
		h.dropChunk(ctx)
	default:
		procutil.Skip(ctx, h.log, "empty loop message")
	}
}

// looped adds a looped hit or event (data; field says which) to its
// session, the key.
func (h handler) looped(ctx goka.Context, data []byte, field protowire.Number) {
	rec, ok := h.read(ctx, data, field)
	if !ok {
		return
	}
	if rec.Session != ctx.Key() {
		procutil.Skip(ctx, h.log, "looped record not keyed by its session", "id", rec.ID, "session", rec.Session)
		return
	}
	h.add(ctx, rec)
}

// loopedEvents adds the looped events of a SessionEvents (data) to their
// session, the key, all at once (add). An event that does not decode,
// lacks its id, account or session, or is of another session is skipped,
// the others still apply.
func (h handler) loopedEvents(ctx goka.Context, data []byte) {
	if len(data) == 0 {
		procutil.Skip(ctx, h.log, "looped session events without events")
		return
	}
	// Not a single Event, which EventRecords reads any other record as:
	// only a SessionEvents, whose first field is its events, is looped.
	if !codecs.IsSessionEvents(data) {
		procutil.Skip(ctx, h.log, "looped session events do not decode", "error", "its first field is not events (16)")
		return
	}
	events, err := codecs.EventRecords(data)
	if err != nil {
		procutil.Skip(ctx, h.log, "looped session events do not decode", "error", err)
		return
	}
	recs, _ := h.readEvents(ctx, events)
	own := recs[:0]
	for i, rec := range recs {
		if rec.Session != ctx.Key() {
			procutil.Skip(ctx, h.log, "looped event not keyed by its session", "id", rec.ID, "session", rec.Session)
			continue
		}
		own = append(own, recs[i])
	}
	h.add(ctx, own...)
}

// loopedMessage adds a looped hit, event or SessionEvents that
// loopedRecord did not read in place (its record in several parts, as
// protobuf allows), encoded again as one.
func (h handler) loopedMessage(ctx goka.Context, m proto.Message, field protowire.Number) {
	data, err := proto.Marshal(m)
	if err != nil {
		procutil.Skip(ctx, h.log, "looped record does not encode", "error", err)
		return
	}
	if field == codecs.SessionsInputEvents {
		h.loopedEvents(ctx, data)
		return
	}
	h.looped(ctx, data, field)
}

// loopedRecord is the hit, event or SessionEvents a loop record holds
// when it is that alone, one SessionsInput field as the processor loops
// it: the field (codecs.SessionsInputHit, SessionsInputEvent or
// SessionsInputEvents) and the record's bytes, shared with data.
func loopedRecord(data []byte) (protowire.Number, []byte, bool) {
	num, typ, n := protowire.ConsumeTag(data)
	if n < 0 || typ != protowire.BytesType ||
		(num != codecs.SessionsInputHit && num != codecs.SessionsInputEvent && num != codecs.SessionsInputEvents) {
		return 0, nil, false
	}
	v, m := protowire.ConsumeBytes(data[n:])
	if m < 0 || n+m != len(data) {
		return 0, nil, false
	}
	return num, v, true
}

// pairHit pairs the hit session (the key) with the conversion's app session.
func (h handler) pairHit(ctx goka.Context, c *livetabv1.Conversion) {
	if !h.validConversion(ctx, c) {
		return
	}
	if c.GetHitSession() != ctx.Key() {
		procutil.Skip(ctx, h.log, "looped conversion not keyed by its hit session", "conversion", c.GetId())
		return
	}
	tl := timeline(ctx, c.GetAccount())
	if !PairHit(tl, c) {
		return
	}
	Trim(tl, ctx.Timestamp())
	ctx.SetValue(tl)
}

// storeChunk stores a chunk its session sealed under its key. A chunk is
// written once; a redelivery writes the same entries again. Its entries
// were trimmed as of the record that sealed it (Add); the sweep trims them
// from then on, so that the loop record's own timestamp does not matter.
func (h handler) storeChunk(ctx goka.Context, c *livetabv1.Timeline) {
	session, _, ok := ParseChunkKey(ctx.Key())
	if !ok || c.GetSession() != session {
		procutil.Skip(ctx, h.log, "chunk not keyed by a chunk key of its session", "session", c.GetSession())
		return
	}
	if len(c.GetStored()) == 0 && len(c.GetEntries()) == 0 {
		procutil.Skip(ctx, h.log, "empty chunk", "session", session)
		return
	}
	ctx.SetValue(c)
}

// dropChunk deletes a chunk its session no longer keeps.
func (h handler) dropChunk(ctx goka.Context) {
	if _, _, ok := ParseChunkKey(ctx.Key()); !ok {
		procutil.Skip(ctx, h.log, "drop not keyed by a chunk key")
		return
	}
	h.deleteChunk(ctx)
}

func (h handler) deleteChunk(ctx goka.Context) {
	// The sweep may have deleted it already; a second tombstone is noise.
	if ctx.Value() != nil {
		ctx.Delete()
	}
}

// expire applies the retention as of the visit's meta time to the visited
// value, a session's or a chunk's, deleting it when nothing is left.
func (h handler) expire(ctx goka.Context, meta any) {
	now, ok := procutil.VisitTime(ctx, h.log, "expire", meta)
	if !ok {
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

// validConversion reports whether c names its account and both sessions,
// logging it when it does not.
func (h handler) validConversion(ctx goka.Context, c *livetabv1.Conversion) bool {
	if c.GetAccount() == "" || c.GetHitSession() == "" || c.GetAppSession() == "" || ctx.Key() == "" {
		procutil.Skip(ctx, h.log, "conversion without account, hit session or app session", "conversion", c.GetId())
		return false
	}
	return true
}
