// Package timers lets a goka group act on one of its keys at a point in
// time. Goka has no timers: a processor only runs when a record arrives.
// So time is a stream too: something (processors.Processors.Run) writes a
// livetabv1.Tick to topics.Clock every second or so, one per partition,
// keyed by that partition's "partition key", and the group reads the clock
// topic as an input. Everything else travels on the group's loop stream.
//
// Keys, all in the group's own table:
//
//   - partition key "t:<n>", one per partition p: the smallest n whose key
//     topics.Hasher places on p. Its state (livetabv1.TimerState) is the
//     last tick and the sorted seconds of its non-empty buckets.
//   - bucket key "t:<n>/<unix second>": the keys due in that second. The
//     '/' keeps a bucket on its partition key's partition (topics.Hasher
//     hashes up to the first '/').
//
// Messages (livetabv1.Timer on the loop):
//
//	key X --schedule{X, due}--> bucket of X's partition, second ceil(due)
//	bucket --register{second}--> partition key (when the bucket was empty)
//	tick --> partition key --fire{now}--> every bucket whose second <= now
//	bucket --expire{now}--> each of its keys, then the bucket deletes itself
//
// A key may therefore expire a little late (one tick interval plus the
// loop's latency) but never early: a bucket second is rounded up, and it
// fires only once a tick at or after it arrived. Several processes ticking
// is harmless: a partition key's time only moves forward (the maximum of
// the ticks it saw). A schedule that reaches a bucket after the bucket
// fired re-registers it, and it fires at the next tick. The receiver of an
// expire must check its own state: expires are at-least-once, and a key
// scheduled twice gets two.
//
// Sizes: a bucket holds the keys of one partition due in one second, as
// many as were scheduled for it (no bound: dropping one would lose a
// decision); a partition key holds the seconds of its pending buckets,
// about the longest delay scheduled while ticks flow, and one per second of
// scheduled traffic while they do not.
//
// The package is pure: its functions compute new states and the messages
// to loop back, and the group applies them with its goka.Context.
package timers

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// Prefix starts every timer key. Groups must not use it for their own
// keys.
const Prefix = "t:"

// ErrNotTimerKey is wrapped when a timer message or tick reaches a key that
// cannot take it.
var ErrNotTimerKey = errors.New("timers: not a timer key")

// Timers are the partition keys of a group with a given partition count.
type Timers struct {
	keys []string
}

// New computes the partition keys of a group whose topics have partitions
// partitions (at least 1), placed as topics.Partitioner places keys.
func New(partitions int32) *Timers {
	partitions = max(partitions, 1)
	keys := make([]string, partitions)
	for n, left := 0, int(partitions); left > 0; n++ {
		k := Prefix + strconv.Itoa(n)
		if p := partitionOf(k, partitions); keys[p] == "" {
			keys[p] = k
			left--
		}
	}
	return &Timers{keys: keys}
}

// partitionOf places key as sarama's hash partitioner does with
// topics.Hasher (its default, signed mode), which is how every producer
// of livetab and goka's own hashing place keys.
func partitionOf(key string, partitions int32) int32 {
	h := topics.Hasher()
	h.Write([]byte(key))
	p := int32(h.Sum32()) % partitions
	if p < 0 {
		p = -p
	}
	return p
}

// PartitionKeys are the partition keys, indexed by partition: the keys a
// ticker writes topics.Clock records to.
func (t *Timers) PartitionKeys() []string { return slices.Clone(t.keys) }

// Loop is a message to loop back to Key.
type Loop struct {
	Key   string
	Timer *livetabv1.Timer
}

// IsKey reports whether key belongs to the timer mechanism.
func IsKey(key string) bool { return strings.HasPrefix(key, Prefix) }

// Schedule is the message that schedules key, processed on partition, to
// expire at dueUs (Unix microseconds) or later. A partition beyond the
// count Timers was built for wraps around: the bucket then lives on another
// partition, which costs a hop but still fires.
func (t *Timers) Schedule(partition int32, key string, dueUs int64) Loop {
	pk := t.keys[int(max(partition, 0))%len(t.keys)]
	return Loop{
		Key:   BucketKey(pk, BucketSecond(dueUs)),
		Timer: &livetabv1.Timer{Op: &livetabv1.Timer_Schedule{Schedule: &livetabv1.TimerSchedule{Key: key, DueUs: dueUs}}},
	}
}

// BucketSecond is the Unix second of the bucket that holds a timer due at
// dueUs: rounded up, so that the bucket never fires before the timer is
// due.
func BucketSecond(dueUs int64) int64 {
	s := dueUs / 1e6
	if dueUs%1e6 > 0 {
		s++
	}
	return s
}

// BucketKey is the key of partitionKey's bucket for second.
func BucketKey(partitionKey string, second int64) string {
	return partitionKey + topics.KeySeparator + strconv.FormatInt(second, 10)
}

// ParseKey splits a timer key: a partition key yields itself and bucket
// false; a bucket key yields its partition key, its second and bucket true.
func ParseKey(key string) (partitionKey string, second int64, bucket bool, err error) {
	if !IsKey(key) {
		return "", 0, false, fmt.Errorf("%w: %q", ErrNotTimerKey, key)
	}
	pk, sec, isBucket := strings.Cut(key, topics.KeySeparator)
	if !isBucket {
		return key, 0, false, nil
	}
	s, err := strconv.ParseInt(sec, 10, 64)
	if err != nil {
		return "", 0, false, fmt.Errorf("%w: %q: bad second: %w", ErrNotTimerKey, key, err)
	}
	return pk, s, true, nil
}

// Result is what a timer key does with a tick or a message: write its new
// state, or delete itself, and loop messages back.
type Result struct {
	// State is the key's new state when Write is set.
	State  *livetabv1.TimerState
	Write  bool
	Delete bool
	Out    []Loop
}

// Tick applies a tick at nowUs to partition key key with state st (nil
// when it has none): every bucket whose second has come fires.
func Tick(key string, st *livetabv1.TimerState, nowUs int64) (Result, error) {
	if _, _, bucket, err := ParseKey(key); err != nil || bucket {
		return Result{}, fmt.Errorf("%w: tick for %q", ErrNotTimerKey, key)
	}
	if st == nil || len(st.GetSeconds()) == 0 {
		// Nothing waits: no need to write the time down either.
		return Result{}, nil
	}
	now := max(nowUs, st.GetLastTickUs())
	due, _ := slices.BinarySearch(st.Seconds, now/1e6+1)
	if due == 0 {
		return Result{}, nil
	}
	r := Result{Write: true, State: &livetabv1.TimerState{LastTickUs: now, Seconds: slices.Clone(st.Seconds[due:])}}
	for _, s := range st.Seconds[:due] {
		r.Out = append(r.Out, Loop{Key: BucketKey(key, s), Timer: &livetabv1.Timer{Op: &livetabv1.Timer_FireUs{FireUs: now}}})
	}
	return r, nil
}

// Apply applies a timer message m to timer key key with state st (nil when
// it has none). Expire messages are for the scheduled keys, not for timer
// keys: they are an error here.
func Apply(key string, st *livetabv1.TimerState, m *livetabv1.Timer) (Result, error) {
	pk, second, bucket, err := ParseKey(key)
	if err != nil {
		return Result{}, err
	}
	switch op := m.GetOp().(type) {
	case *livetabv1.Timer_Schedule:
		if !bucket {
			return Result{}, fmt.Errorf("%w: schedule for partition key %q", ErrNotTimerKey, key)
		}
		return schedule(pk, second, st, op.Schedule.GetKey()), nil
	case *livetabv1.Timer_RegisterSecond:
		if bucket {
			return Result{}, fmt.Errorf("%w: register for bucket key %q", ErrNotTimerKey, key)
		}
		return register(st, op.RegisterSecond), nil
	case *livetabv1.Timer_FireUs:
		if !bucket {
			return Result{}, fmt.Errorf("%w: fire for partition key %q", ErrNotTimerKey, key)
		}
		return fire(st, op.FireUs), nil
	case *livetabv1.Timer_ExpireUs:
		return Result{}, fmt.Errorf("%w: expire for timer key %q", ErrNotTimerKey, key)
	}
	return Result{}, fmt.Errorf("timers: message without op for %q", key)
}

func registerLoop(pk string, second int64) Loop {
	return Loop{Key: pk, Timer: &livetabv1.Timer{Op: &livetabv1.Timer_RegisterSecond{RegisterSecond: second}}}
}

// schedule adds key to a bucket. The bucket registers with its partition
// key when it was empty, and again when key was already in it: that is a
// redelivery, and the first registration may have been lost with the
// process that sent it. Adding appends key's entry to the others without
// parsing them: only the search for a redelivered key reads them, as
// bytes.
func schedule(pk string, second int64, st *livetabv1.TimerState, key string) Result {
	if slices.Contains(st.GetKeys(), key) || containsEntry(st.GetEntries(), key) {
		return Result{Out: []Loop{registerLoop(pk, second)}}
	}
	old := st.GetEntries()
	entries := append(make([]byte, 0, len(old)+entrySize(key)), old...)
	entries = AppendEntry(entries, key)
	r := Result{Write: true, State: &livetabv1.TimerState{Keys: slices.Clone(st.GetKeys()), Entries: entries}}
	if len(st.GetKeys()) == 0 && len(old) == 0 {
		r.Out = []Loop{registerLoop(pk, second)}
	}
	return r
}

// AppendEntry appends key to entries, the entries of a bucket's
// TimerState: encoded as its field keys would be.
func AppendEntry(entries []byte, key string) []byte {
	entries = protowire.AppendTag(entries, codecs.TimerStateKeys, protowire.BytesType)
	return protowire.AppendString(entries, key)
}

func entrySize(key string) int {
	return protowire.SizeTag(codecs.TimerStateKeys) + protowire.SizeBytes(len(key))
}

// containsEntry reports whether entries hold key. An entry's bytes found
// anywhere are checked to start at an entry (a key could hold another's
// encoding); not finding them, the common case, needs no parsing at all.
func containsEntry(entries []byte, key string) bool {
	var buf [64]byte
	e := AppendEntry(buf[:0], key)
	if !bytes.Contains(entries, e) {
		return false
	}
	found := false
	eachEntry(entries, func(k []byte) bool {
		found = string(k) == key
		return !found
	})
	return found
}

// eachEntry calls f with the key of each of entries in order, while f
// returns true. It stops at an entry that does not parse: entries are only
// ever written by AppendEntry.
func eachEntry(entries []byte, f func(key []byte) bool) {
	for len(entries) > 0 {
		num, typ, n := protowire.ConsumeTag(entries)
		if n < 0 || num != codecs.TimerStateKeys || typ != protowire.BytesType {
			return
		}
		k, m := protowire.ConsumeBytes(entries[n:])
		if m < 0 || !f(k) {
			return
		}
		entries = entries[n+m:]
	}
}

// Keys are the keys of bucket state st, in the order they were scheduled.
func Keys(st *livetabv1.TimerState) []string {
	keys := slices.Clone(st.GetKeys())
	eachEntry(st.GetEntries(), func(k []byte) bool {
		keys = append(keys, string(k))
		return true
	})
	return keys
}

func register(st *livetabv1.TimerState, second int64) Result {
	i, found := slices.BinarySearch(st.GetSeconds(), second)
	if found {
		return Result{}
	}
	return Result{Write: true, State: &livetabv1.TimerState{
		LastTickUs: st.GetLastTickUs(),
		Seconds:    slices.Insert(slices.Clone(st.GetSeconds()), i, second),
	}}
}

func fire(st *livetabv1.TimerState, nowUs int64) Result {
	keys := Keys(st)
	if len(keys) == 0 {
		return Result{}
	}
	r := Result{Delete: true, Out: make([]Loop, 0, len(keys))}
	for _, k := range keys {
		r.Out = append(r.Out, Loop{Key: k, Timer: &livetabv1.Timer{Op: &livetabv1.Timer_ExpireUs{ExpireUs: nowUs}}})
	}
	return r
}
