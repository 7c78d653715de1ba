// Package attribution is the goka processor group that pairs hits with the
// app sessions they produced and writes the pairs to topics.Conversions,
// keyed by app session (value livetabv1.Conversion, id "cv-"+app session).
//
// # Matching
//
// Only install-like events (InstallLike: "install", "first_open") convert,
// and an app session converts at most once, ever. The cascade, strongest
// first (see Qualifies for the exact rules and Config for the windows):
//
//  1. click id: the install carries the click id the hit issued;
//  2. device id: the hit carried one of the install's hashed device ids;
//  3. fingerprint: same account, IP and normalised user agent (Fingerprint).
//
// Within a method the most recent hit wins (last click), ties by the
// smaller hit id. A click-id match decides at once. Otherwise the app
// session is decided when its grace period ends (its earliest install's
// received time plus Config.Grace), by the strongest method that has a
// qualifying hit then; with none the session is organic. After the
// decision nothing changes for the session.
//
// # Keys
//
// One group table (topics.AttributionGroup, value
// livetabv1.AttributionState) holds several key namespaces:
//
//   - match keys "c:<click id>", "d:<account>:<device id>" and
//     "f:<account>:<fingerprint>" (MatchState): hits and install-like
//     events are looped to each of their match keys, which keep the recent
//     hits and the installs that asked (bounded: see MaxHits) and send the
//     best qualifying hit of the key to the install's app session whenever
//     it may have changed (Candidate).
//   - app-session keys "a:<app session>" (AppSessionState): the install,
//     the best candidate per method, and the decision.
//   - timer keys "t:..." of package processors/internal/timers: the grace
//     deadlines of app sessions, driven by the ticks of topics.Clock.
//
// Key components are escaped so that none contains '/', ':' or '|'.
//
// # Order, redelivery, replay
//
// Every state transition is idempotent (hits and events are deduplicated
// by id) and, within the limits below, commutative: the set of
// conversions does not depend on arrival order, redelivery or how the
// partitions are spread over instances. Redelivered records re-send what
// they derived (candidates, timer schedules), never a second conversion.
// The limits:
//
//   - the records of an app session must reach the group before its
//     deadline passes on the clock (see the caveat below);
//   - per match key, records out of order by more than the method's
//     window plus the grace period, or beyond the bounds (MaxHits), may
//     have been pruned;
//   - an app session with several install-like events that find hits
//     (say an install and a first_open carrying different click ids)
//     converts once, with whichever is decided first in processing order.
//
// The caveat: the grace period is judged on the clock topic's ticks, that
// is on the wall clock of the processes that tick, not on the records'
// times. Live, a late hit within the grace period of its install counts
// whatever the order. A replay of old data (or a consumer lagging more
// than the grace period) finds every deadline already past: each install
// is decided at the first tick after it was registered, so a replay gives
// the same answer only for installs whose hits are processed before that
// tick (click-id matches are not affected: they decide on arrival; match
// keys are kept from the processing time on, so a replay does not lose
// them). What would remove the caveat is event time: a watermark (the
// least received time that every input partition has processed up to),
// carried to the app-session keys, deciding an install when the watermark
// rather than the wall clock passes its deadline.
//
// # State
//
// A match key keeps at most MaxHits hits and MaxInstalls installs. It is
// deleted (a tombstone on the table topic) by the first clean-up sweep
// (CleanupVisitor) after its method's window plus the grace period passed
// since its newest record, or since the record was processed when that is
// later (ExtendCleanup). A sweep rather than a timer per key: most hits
// create a key or two (a click id, a fingerprint), and a timer would cost
// each of them two more Kafka records when it is set (the schedule and its
// bucket's write) and one when it fires (the expire), where a sweep reads
// each key of the table once per processors.Options.SweepInterval. An
// app-session key keeps its decision, the conversion if any (a few hundred
// bytes), for good: that is what makes "one conversion per app session, ever" hold for
// any redelivery. Timer keys are transient: a bucket deletes itself when
// it fires.
package attribution

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/codec"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/procutil"
	"github.com/livetab/livetab/processors/internal/timers"
	"github.com/livetab/livetab/topics"
)

// Group is the goka group of this processor; its table is
// goka.GroupTable(Group).
const Group = topics.AttributionGroup

// CleanupVisitor is the name of the group's clean-up visitor, which
// deletes the match keys whose clean-up time (ExtendCleanup) has come. Its
// meta argument is the time.Time to judge them at. The owner of the
// processor runs it periodically with goka's Processor.VisitAll
// (processors.Processors does, every SweepInterval).
const CleanupVisitor = "cleanup"

// StateCodec is the codec of the group table.
type StateCodec = codecs.Proto[livetabv1.AttributionState, *livetabv1.AttributionState]

// Options configure the processor.
type Options struct {
	// Kafka supplies the brokers and every goka option.
	Kafka topics.Kafka
	// Storage stores the group table; nil keeps it in memory.
	Storage storage.Builder
	// Logger receives the records that are skipped. Default: discard.
	Logger *slog.Logger
	// Config sets the windows and the grace period; zero fields take the
	// defaults.
	Config Config
	// Partitions of the group's topics, which places the timer keys
	// (timers.New). NewProcessor asks the brokers when it is 0; NewGraph
	// takes 1 (goka's tester has one partition).
	Partitions int32
}

// Graph is the group graph with the default configuration and a
// discarding logger, for goka's tester.
func Graph() *goka.GroupGraph { return NewGraph(Options{}) }

// NewGraph is the group graph, logging skipped records to opts.Logger.
func NewGraph(opts Options) *goka.GroupGraph {
	h := handler{
		log:    procutil.OrDiscard(opts.Logger),
		cfg:    opts.Config.WithDefaults(),
		timers: timers.New(opts.Partitions),
	}
	return goka.DefineGroup(Group,
		// Raw bytes everywhere a record is read, decoded by the callbacks,
		// so that a record that does not decode is skipped, not fatal.
		goka.Input(topics.Hits, new(codec.Bytes), h.hit),
		goka.Input(topics.Events, new(codec.Bytes), h.event),
		goka.Input(topics.Clock, new(codec.Bytes), h.tick),
		goka.Loop(new(codec.Bytes), h.loop),
		goka.Visitor(CleanupVisitor, h.cleanup),
		goka.Output(topics.Conversions, new(codec.Bytes)),
		goka.Persist(StateCodec{}),
	)
}

// TickKeys are the keys a ticker writes topics.Clock records to, one per
// partition, for a group with the given partition count.
func TickKeys(partitions int32) []string { return timers.New(partitions).PartitionKeys() }

// NewProcessor builds the processor with opts.Kafka's options.
func NewProcessor(opts Options) (*goka.Processor, error) {
	if opts.Partitions == 0 {
		n, err := procutil.Partitions(opts.Kafka, string(topics.Clock))
		if err != nil {
			return nil, fmt.Errorf("attribution: %w", err)
		}
		opts.Partitions = n
	}
	return procutil.NewProcessor("attribution", opts.Kafka, opts.Storage, NewGraph(opts))
}

// Run builds the processor and runs it until ctx is cancelled (nil) or it
// fails. Something must write ticks to topics.Clock (see TickKeys) for
// installs without a click-id match to be decided.
func Run(ctx context.Context, opts Options) error {
	p, err := NewProcessor(opts)
	if err != nil {
		return err
	}
	return procutil.Run(ctx, "attribution", p)
}

type handler struct {
	log    *slog.Logger
	cfg    Config
	timers *timers.Timers
}

// hit loops a hit to each of its match keys.
func (h handler) hit(ctx goka.Context, msg any) {
	hit, ok := procutil.Decode[livetabv1.Hit](ctx, h.log, msg)
	if !ok {
		return
	}
	if hit.GetId() == "" || hit.GetAccount() == "" || hit.GetSession() == "" {
		procutil.Skip(ctx, h.log, "hit without id, account or session", "hit", hit.GetId())
		return
	}
	// The record is the hit's bytes behind a prefix, shared by every key:
	// the hit is not encoded again for each.
	raw, _ := msg.([]byte)
	rec := hitInput(raw)
	for _, k := range HitKeys(hit) {
		ctx.Loopback(k, rec)
	}
}

// event reads a record of topics.Events, one Event or a SessionEvents
// (codecs.EventRecords), and handles each of its events (installEvent).
func (h handler) event(ctx goka.Context, msg any) {
	raw, _ := msg.([]byte)
	if !codecs.IsSessionEvents(raw) {
		h.installEvent(ctx, raw, -1)
		return
	}
	events, err := codecs.EventRecords(raw)
	if err != nil {
		procutil.Skip(ctx, h.log, "record does not decode", "error", err)
		return
	}
	for i, ev := range events {
		h.installEvent(ctx, ev, i)
	}
}

// installEvent loops an install-like event (raw, encoded) to its app
// session, which registers it, and to each of its match keys. index is
// its index in the SessionEvents it came in, for the warnings; -1 when it
// came alone.
func (h handler) installEvent(ctx goka.Context, raw []byte, index int) {
	// Most events are not install-like: reading their name alone spares
	// decoding them (parameters and all) only to drop them.
	if !installLikeRecord(raw) {
		return
	}
	ev, err := codecs.Typed[livetabv1.Event](raw)
	if err != nil {
		h.skipEvent(ctx, "record does not decode", index, "error", err)
		return
	}
	if !InstallLike(ev.GetName()) {
		return
	}
	if ev.GetId() == "" || ev.GetAccount() == "" || ev.GetSession() == "" {
		h.skipEvent(ctx, "event without id, account or session", index, "event", ev.GetId())
		return
	}
	in := &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Event{Event: ev}}
	procutil.Loopback(ctx, AppKey(ev.GetSession()), in)
	for _, k := range InstallKeys(ev) {
		procutil.Loopback(ctx, k, in)
	}
}

// skipEvent logs a skipped event, with its index when it is one of a
// SessionEvents.
func (h handler) skipEvent(ctx goka.Context, reason string, index int, args ...any) {
	if index >= 0 {
		args = append(args, "index", index)
	}
	procutil.Skip(ctx, h.log, reason, args...)
}

// tick applies a clock record to its timer partition key.
func (h handler) tick(ctx goka.Context, msg any) {
	t, ok := procutil.Decode[livetabv1.Tick](ctx, h.log, msg)
	if !ok {
		return
	}
	st, ok := h.timerState(ctx)
	if !ok {
		return
	}
	r, err := timers.Tick(ctx.Key(), st, t.GetTimeUs())
	if err != nil {
		procutil.Skip(ctx, h.log, "tick not keyed by a timer partition key", "error", err)
		return
	}
	h.applyTimers(ctx, r)
}

// loop dispatches a looped record by its key's namespace.
func (h handler) loop(ctx goka.Context, msg any) {
	key := ctx.Key()
	// The most frequent record, a hit to a match key, keeps the hit's
	// bytes as they came: only the hit is decoded, never encoded again.
	if m := keyMethod(key); m != livetabv1.MatchMethod_MATCH_METHOD_UNSPECIFIED {
		if raw, ok := msg.([]byte); ok {
			if hitRaw, ok := inputHit(raw); ok {
				hit, ok := procutil.Decode[livetabv1.Hit](ctx, h.log, hitRaw)
				if ok {
					h.match(ctx, m, nil, newMatchHit(m, hit, hitRaw))
				}
				return
			}
		}
	}
	in, ok := procutil.Decode[livetabv1.AttributionInput](ctx, h.log, msg)
	if !ok {
		return
	}
	switch m := keyMethod(key); {
	case timers.IsKey(key):
		h.timer(ctx, in)
	case strings.HasPrefix(key, appPrefix):
		h.app(ctx, in)
	case m != livetabv1.MatchMethod_MATCH_METHOD_UNSPECIFIED:
		var hit *livetabv1.MatchHit
		if in.GetHit() != nil {
			// An input that inputHit does not read as a hit alone (a
			// hit in several parts), encoded again as one.
			raw, err := proto.Marshal(in.GetHit())
			if err != nil {
				procutil.Skip(ctx, h.log, "looped hit does not encode", "error", err)
				return
			}
			hit = newMatchHit(m, in.GetHit(), raw)
		}
		h.match(ctx, m, in, hit)
	default:
		procutil.Skip(ctx, h.log, "attribution input for a key of no known namespace")
	}
}

// match applies a hit (hit, in is then ignored), an install or a clean-up
// timer (in) to a match key.
func (h handler) match(ctx goka.Context, m livetabv1.MatchMethod, in *livetabv1.AttributionInput, hit *livetabv1.MatchHit) {
	v := state(ctx)
	if v.GetState() != nil && v.GetMatch() == nil {
		procutil.Skip(ctx, h.log, "match key holds another state")
		return
	}
	st := v.GetMatch()
	if st == nil {
		st = &livetabv1.MatchState{}
	}
	var (
		changed bool
		out     []*livetabv1.Candidate
	)
	switch {
	case hit != nil:
		changed, out = onMatchHit(h.cfg, m, st, hit)
	case in.GetEvent() != nil:
		var c *livetabv1.Candidate
		changed, c = OnMatchInstall(h.cfg, m, st, in.GetEvent())
		if c != nil {
			out = append(out, c)
		}
	case isExpire(in):
		// A clean-up timer scheduled before match keys were swept
		// (CleanupVisitor). One that comes early is not scheduled again:
		// the sweep deletes the key in time.
		if v.GetMatch() != nil && Expired(st, in.GetTimer().GetExpireUs()) {
			ctx.Delete()
		}
		return
	default:
		procutil.Skip(ctx, h.log, "match key input with neither hit, event nor expire")
		return
	}
	for _, c := range out {
		procutil.Loopback(ctx, AppKey(c.GetEvent().GetSession()), &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Candidate{Candidate: c}})
	}
	if !changed {
		return
	}
	var recordUs int64
	if ts := ctx.Timestamp(); !ts.IsZero() {
		recordUs = ts.UnixMicro()
	}
	ExtendCleanup(h.cfg, m, st, recordUs)
	ctx.SetValue(&livetabv1.AttributionState{State: &livetabv1.AttributionState_Match{Match: st}})
}

// app applies an install, a candidate or the deadline to an app session.
func (h handler) app(ctx goka.Context, in *livetabv1.AttributionInput) {
	v := state(ctx)
	if v.GetState() != nil && v.GetApp() == nil {
		procutil.Skip(ctx, h.log, "app session key holds another state")
		return
	}
	st := v.GetApp()
	if st == nil {
		st = &livetabv1.AppSessionState{}
	}
	var (
		changed bool
		conv    *livetabv1.Conversion
		due     int64
	)
	switch {
	case in.GetEvent() != nil:
		if AppKey(in.GetEvent().GetSession()) != ctx.Key() {
			procutil.Skip(ctx, h.log, "install not keyed by its app session", "event", in.GetEvent().GetId())
			return
		}
		changed, due = OnRegister(h.cfg, st, in.GetEvent())
	case in.GetCandidate() != nil:
		c := in.GetCandidate()
		if c.GetHit() == nil || AppKey(c.GetEvent().GetSession()) != ctx.Key() {
			procutil.Skip(ctx, h.log, "candidate without hit or not keyed by its app session", "event", c.GetEvent().GetId())
			return
		}
		changed, conv = OnCandidate(st, c)
	case isExpire(in):
		changed, conv, due = OnExpire(st, in.GetTimer().GetExpireUs())
	default:
		procutil.Skip(ctx, h.log, "app session input with neither event, candidate nor expire")
		return
	}
	if due != 0 {
		h.schedule(ctx, due)
	}
	if conv != nil {
		procutil.Emit(ctx, topics.Conversions, conv.GetAppSession(), conv)
	}
	if changed {
		ctx.SetValue(&livetabv1.AttributionState{State: &livetabv1.AttributionState_App{App: st}})
	}
}

// cleanup is CleanupVisitor: it deletes the visited key when it is a match
// key whose clean-up time has come by meta, a time.Time.
func (h handler) cleanup(ctx goka.Context, meta any) {
	now, ok := procutil.VisitTime(ctx, h.log, "clean-up", meta)
	if !ok {
		return
	}
	v, _ := ctx.Value().(*livetabv1.AttributionState)
	if st := v.GetMatch(); st != nil && Expired(st, now.UnixMicro()) {
		ctx.Delete()
	}
}

// timer applies a timer message to a timer key.
func (h handler) timer(ctx goka.Context, in *livetabv1.AttributionInput) {
	if in.GetTimer() == nil {
		procutil.Skip(ctx, h.log, "timer key input without timer message")
		return
	}
	st, ok := h.timerState(ctx)
	if !ok {
		return
	}
	r, err := timers.Apply(ctx.Key(), st, in.GetTimer())
	if err != nil {
		procutil.Skip(ctx, h.log, "timer message does not apply", "error", err)
		return
	}
	h.applyTimers(ctx, r)
}

func isExpire(in *livetabv1.AttributionInput) bool {
	_, ok := in.GetTimer().GetOp().(*livetabv1.Timer_ExpireUs)
	return ok
}

// state is the key's stored state; an empty one when there is none.
func state(ctx goka.Context) *livetabv1.AttributionState {
	if v, _ := ctx.Value().(*livetabv1.AttributionState); v != nil {
		return v
	}
	return &livetabv1.AttributionState{}
}

// timerState is the timer state of a timer key (nil when it has none).
func (h handler) timerState(ctx goka.Context) (*livetabv1.TimerState, bool) {
	v := state(ctx)
	if v.GetState() != nil && v.GetTimer() == nil {
		procutil.Skip(ctx, h.log, "timer key holds another state")
		return nil, false
	}
	return v.GetTimer(), true
}

// schedule asks for an expire to the current key at dueUs.
func (h handler) schedule(ctx goka.Context, dueUs int64) {
	l := h.timers.Schedule(ctx.Partition(), ctx.Key(), dueUs)
	loopTimer(ctx, l)
}

func (h handler) applyTimers(ctx goka.Context, r timers.Result) {
	for _, l := range r.Out {
		loopTimer(ctx, l)
	}
	switch {
	case r.Delete:
		ctx.Delete()
	case r.Write:
		ctx.SetValue(&livetabv1.AttributionState{State: &livetabv1.AttributionState_Timer{Timer: r.State}})
	}
}

func loopTimer(ctx goka.Context, l timers.Loop) {
	procutil.Loopback(ctx, l.Key, &livetabv1.AttributionInput{Item: &livetabv1.AttributionInput_Timer{Timer: l.Timer}})
}

// installLikeRecord reports whether an encoded Event may be install-like:
// false only when the record parses and its name (the last occurrence, as
// protobuf decodes it) is not install-like. A record that does not parse
// is left to the full decode, which logs and skips it.
func installLikeRecord(raw []byte) bool {
	var name []byte
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return true
		}
		raw = raw[n:]
		if num == codecs.EventName && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(raw)
			if m < 0 {
				return true
			}
			name, raw = v, raw[m:]
			continue
		}
		if m := protowire.ConsumeFieldValue(num, typ, raw); m < 0 {
			return true
		} else {
			raw = raw[m:]
		}
	}
	return InstallLike(string(name))
}

// hitInput is the encoded AttributionInput holding the encoded Hit raw:
// the tag of its hit field and raw's length followed by raw.
func hitInput(raw []byte) []byte {
	b := make([]byte, 0, protowire.SizeTag(codecs.AttributionInputHit)+protowire.SizeBytes(len(raw)))
	b = protowire.AppendTag(b, codecs.AttributionInputHit, protowire.BytesType)
	return protowire.AppendBytes(b, raw)
}

// inputHit is the encoded Hit of rec when rec is an AttributionInput that
// holds a hit field and nothing else, as hitInput builds it: rec decodes
// then exactly as the hit does. Any other record is not ok, left to the
// full decode.
func inputHit(rec []byte) ([]byte, bool) {
	num, typ, n := protowire.ConsumeTag(rec)
	if n < 0 || num != codecs.AttributionInputHit || typ != protowire.BytesType {
		return nil, false
	}
	v, m := protowire.ConsumeBytes(rec[n:])
	if m < 0 || n+m != len(rec) {
		return nil, false
	}
	return v, true
}
