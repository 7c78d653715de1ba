// Package procutil holds what livetab's three goka processors share: the
// decoding of raw input records, the logging of records they skip, and the
// defaults of their options.
package procutil

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/lovoo/goka"
	"github.com/lovoo/goka/storage"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/topics"
)

// Discard is a logger that drops everything, the default of every processor.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// OrDiscard returns log, or a discarding logger when log is nil.
func OrDiscard(log *slog.Logger) *slog.Logger {
	if log == nil {
		return Discard()
	}
	return log
}

// Decode decodes the raw bytes goka hands a callback whose edge uses
// codec.Bytes. A record that is not a T is logged and reported as not ok, so
// that the caller skips it: one bad record must never stop a processor.
func Decode[T any, P codecs.Message[T]](ctx goka.Context, log *slog.Logger, msg any) (P, bool) {
	data, _ := msg.([]byte)
	m, err := codecs.Typed[T, P](data)
	if err != nil {
		Skip(ctx, log, "record does not decode", "error", err)
		return nil, false
	}
	return m, true
}

// Skip logs, at Warn, an input record that the processor ignores, with
// where it came from so that an operator can find it.
func Skip(ctx goka.Context, log *slog.Logger, reason string, args ...any) {
	log.Warn("skipping record: "+reason, append([]any{
		"group", string(ctx.Group()),
		"topic", string(ctx.Topic()),
		"partition", ctx.Partition(),
		"offset", ctx.Offset(),
		"key", ctx.Key(),
	}, args...)...)
}

// VisitTime is the time a visitor (goka.Visitor, run by
// Processor.VisitAll) was given as its meta argument. Visits without one
// are logged with Skip, naming the visitor, and reported false.
func VisitTime(ctx goka.Context, log *slog.Logger, visitor string, meta any) (time.Time, bool) {
	now, ok := meta.(time.Time)
	if !ok {
		Skip(ctx, log, visitor+" visit without a time", "meta", fmt.Sprintf("%T", meta))
	}
	return now, ok
}

// Loopback sends m to key on the group's loop stream. The loop is declared
// with codec.Bytes, like the inputs, so that its records are decoded (and,
// when corrupt, skipped) by the callback rather than by goka.
func Loopback(ctx goka.Context, key string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		// Only a message that is not valid protobuf (invalid UTF-8 in a
		// string) fails here; it came from an input that decoded, so this
		// is a bug, not bad data.
		ctx.Fail(fmt.Errorf("procutil: encode loopback %T: %w", m, err))
	}
	ctx.Loopback(key, data)
}

// Emit sends m to key on topic, an output declared with codec.Bytes. Outputs
// that other groups of livetab consume are declared that way because those
// groups read them as raw bytes, and goka's tester insists that every group
// of a test declares a topic with the same codec.
func Emit(ctx goka.Context, topic goka.Stream, key string, m proto.Message) {
	data, err := proto.Marshal(m)
	if err != nil {
		ctx.Fail(fmt.Errorf("procutil: encode %T for %s: %w", m, topic, err))
	}
	ctx.Emit(topic, key, data)
}

// NewProcessor builds the goka processor of graph with k's options, its
// table stored by sb (in memory when nil). part names it in client ids and
// errors.
func NewProcessor(part string, k topics.Kafka, sb storage.Builder, graph *goka.GroupGraph) (*goka.Processor, error) {
	if sb == nil {
		sb = storage.MemoryBuilder()
	}
	p, err := goka.NewProcessor(k.Brokers, graph, k.ProcessorOptions(part, sb)...)
	if err != nil {
		return nil, fmt.Errorf("%s: new processor: %w", part, err)
	}
	return p, nil
}

// Run runs p until ctx is cancelled (nil) or it fails.
func Run(ctx context.Context, part string, p *goka.Processor) error {
	if err := p.Run(ctx); err != nil {
		return fmt.Errorf("%s: %w", part, err)
	}
	return nil
}
