package timers_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/IBM/sarama"
	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/timers"
	"github.com/livetab/livetab/topics"
)

func partitionOf(t *testing.T, key string, n int32) int32 {
	t.Helper()
	p, err := topics.Partitioner("any").Partition(&sarama.ProducerMessage{Key: sarama.StringEncoder(key)}, n)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPartitionKeysLandOnTheirPartition(t *testing.T) {
	for _, n := range []int32{1, 2, 3, 4, 8, 16, 32} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			tm := timers.New(n)
			keys := tm.PartitionKeys()
			if len(keys) != int(n) {
				t.Fatalf("%d keys, want %d", len(keys), n)
			}
			for p, k := range keys {
				if got := partitionOf(t, k, n); got != int32(p) {
					t.Errorf("key %q for partition %d lands on %d", k, p, got)
				}
				b := timers.BucketKey(k, 1_780_000_000)
				if got := partitionOf(t, b, n); got != int32(p) {
					t.Errorf("bucket key %q of partition %d lands on %d", b, p, got)
				}
				if l := tm.Schedule(int32(p), "a:x", 5e6); l.Key != timers.BucketKey(k, 5) {
					t.Errorf("schedule on partition %d goes to %q, want the bucket of %q", p, l.Key, k)
				}
			}
		})
	}
	for _, n := range []int32{1, 0, -3} {
		if got := timers.New(n).PartitionKeys(); !slices.Equal(got, []string{"t:0"}) {
			t.Errorf("New(%d): keys %v, want [t:0]", n, got)
		}
	}
}

func TestBucketSecond(t *testing.T) {
	tests := []struct {
		due, want int64
	}{
		{0, 0},
		{1, 1},
		{999_999, 1},
		{1_000_000, 1},
		{1_000_001, 2},
		{1_780_000_000_500_000, 1_780_000_001},
		{1_780_000_000_000_000, 1_780_000_000},
	}
	for _, tt := range tests {
		if got := timers.BucketSecond(tt.due); got != tt.want {
			t.Errorf("BucketSecond(%d) = %d, want %d", tt.due, got, tt.want)
		}
	}
}

func TestParseKey(t *testing.T) {
	tests := []struct {
		key       string
		pk        string
		second    int64
		bucket    bool
		wantError bool
	}{
		{key: "t:3", pk: "t:3"},
		{key: "t:3/1780000000", pk: "t:3", second: 1780000000, bucket: true},
		{key: "t:3/x", wantError: true},
		{key: "a:session", wantError: true},
		{key: "", wantError: true},
	}
	for _, tt := range tests {
		pk, s, b, err := timers.ParseKey(tt.key)
		if (err != nil) != tt.wantError {
			t.Errorf("ParseKey(%q) error %v, want error %v", tt.key, err, tt.wantError)
			continue
		}
		if err != nil {
			if !errors.Is(err, timers.ErrNotTimerKey) {
				t.Errorf("ParseKey(%q) error %v does not wrap ErrNotTimerKey", tt.key, err)
			}
			continue
		}
		if pk != tt.pk || s != tt.second || b != tt.bucket {
			t.Errorf("ParseKey(%q) = %q %d %v, want %q %d %v", tt.key, pk, s, b, tt.pk, tt.second, tt.bucket)
		}
	}
}

func schedule(key string, due int64) *livetabv1.Timer {
	return &livetabv1.Timer{Op: &livetabv1.Timer_Schedule{Schedule: &livetabv1.TimerSchedule{Key: key, DueUs: due}}}
}
func register(s int64) *livetabv1.Timer {
	return &livetabv1.Timer{Op: &livetabv1.Timer_RegisterSecond{RegisterSecond: s}}
}
func fireAt(us int64) *livetabv1.Timer {
	return &livetabv1.Timer{Op: &livetabv1.Timer_FireUs{FireUs: us}}
}
func expireAt(us int64) *livetabv1.Timer {
	return &livetabv1.Timer{Op: &livetabv1.Timer_ExpireUs{ExpireUs: us}}
}

// bucket is the state of a bucket that keys were scheduled into, in order.
func bucket(keys ...string) *livetabv1.TimerState {
	var entries []byte
	for _, k := range keys {
		entries = timers.AppendEntry(entries, k)
	}
	return &livetabv1.TimerState{Entries: entries}
}

// TestEntriesAreKeys checks that a bucket's entries read back as its keys,
// in order, and are encoded as the repeated field keys would be.
func TestEntriesAreKeys(t *testing.T) {
	keys := []string{"a:x", "", "f:" + string(make([]byte, 300)), "c:é"}
	st := bucket(keys...)
	if got := timers.Keys(st); !slices.Equal(got, keys) {
		t.Errorf("Keys = %q, want %q", got, keys)
	}
	var asKeys livetabv1.TimerState
	if err := proto.Unmarshal(st.GetEntries(), &asKeys); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(asKeys.GetKeys(), keys) {
		t.Errorf("entries decode as keys %q, want %q", asKeys.GetKeys(), keys)
	}
	if got := timers.Keys(nil); len(got) != 0 {
		t.Errorf("Keys(nil) = %q", got)
	}
}

func sameResult(t *testing.T, got, want timers.Result) {
	t.Helper()
	if got.Write != want.Write || got.Delete != want.Delete || !proto.Equal(got.State, want.State) {
		t.Errorf("result write=%v delete=%v state=%v, want write=%v delete=%v state=%v",
			got.Write, got.Delete, got.State, want.Write, want.Delete, want.State)
	}
	if !slices.EqualFunc(got.Out, want.Out, func(a, b timers.Loop) bool { return a.Key == b.Key && proto.Equal(a.Timer, b.Timer) }) {
		t.Errorf("loops %v, want %v", got.Out, want.Out)
	}
}

func TestApply(t *testing.T) {
	tests := []struct {
		name    string
		key     string
		st      *livetabv1.TimerState
		m       *livetabv1.Timer
		want    timers.Result
		wantErr bool
	}{
		{
			name: "schedule into an empty bucket registers it",
			key:  "t:0/5", m: schedule("a:x", 4_500_000),
			want: timers.Result{Write: true, State: bucket("a:x"), Out: []timers.Loop{{Key: "t:0", Timer: register(5)}}},
		},
		{
			name: "schedule into a bucket that waits already",
			key:  "t:0/5", st: bucket("a:x"), m: schedule("a:y", 4_600_000),
			want: timers.Result{Write: true, State: bucket("a:x", "a:y")},
		},
		{
			name: "a redelivered schedule only registers again",
			key:  "t:0/5", st: bucket("a:x", "a:y"), m: schedule("a:x", 4_500_000),
			want: timers.Result{Out: []timers.Loop{{Key: "t:0", Timer: register(5)}}},
		},
		{
			name: "a key that holds another key's entry is not that key",
			key:  "t:0/5", st: bucket(string(timers.AppendEntry(nil, "a:x"))), m: schedule("a:x", 4_500_000),
			want: timers.Result{Write: true, State: bucket(string(timers.AppendEntry(nil, "a:x")), "a:x")},
		},
		{
			name: "schedule into a bucket written as repeated keys keeps them",
			key:  "t:0/5", st: &livetabv1.TimerState{Keys: []string{"a:x"}}, m: schedule("a:y", 4_600_000),
			want: timers.Result{Write: true, State: &livetabv1.TimerState{Keys: []string{"a:x"}, Entries: timers.AppendEntry(nil, "a:y")}},
		},
		{
			name: "a redelivered schedule to a bucket written as repeated keys",
			key:  "t:0/5", st: &livetabv1.TimerState{Keys: []string{"a:x"}}, m: schedule("a:x", 4_600_000),
			want: timers.Result{Out: []timers.Loop{{Key: "t:0", Timer: register(5)}}},
		},
		{
			name: "register keeps the seconds sorted",
			key:  "t:0", st: &livetabv1.TimerState{LastTickUs: 3e6, Seconds: []int64{4, 9}}, m: register(5),
			want: timers.Result{Write: true, State: &livetabv1.TimerState{LastTickUs: 3e6, Seconds: []int64{4, 5, 9}}},
		},
		{
			name: "register of a known second",
			key:  "t:0", st: &livetabv1.TimerState{Seconds: []int64{4, 5}}, m: register(5),
			want: timers.Result{},
		},
		{
			name: "fire expires every key and deletes the bucket",
			key:  "t:0/5", st: bucket("a:x", "c:y"), m: fireAt(5_200_000),
			want: timers.Result{Delete: true, Out: []timers.Loop{{Key: "a:x", Timer: expireAt(5_200_000)}, {Key: "c:y", Timer: expireAt(5_200_000)}}},
		},
		{
			name: "fire expires repeated keys first, then entries, in order",
			key:  "t:0/5", st: &livetabv1.TimerState{Keys: []string{"b:1", "b:2"}, Entries: bucket("a:x", "c:y").Entries}, m: fireAt(5_200_000),
			want: timers.Result{Delete: true, Out: []timers.Loop{
				{Key: "b:1", Timer: expireAt(5_200_000)}, {Key: "b:2", Timer: expireAt(5_200_000)},
				{Key: "a:x", Timer: expireAt(5_200_000)}, {Key: "c:y", Timer: expireAt(5_200_000)},
			}},
		},
		{
			name: "fire of an empty bucket",
			key:  "t:0/5", m: fireAt(5_200_000),
			want: timers.Result{},
		},
		{name: "schedule to a partition key", key: "t:0", m: schedule("a:x", 1), wantErr: true},
		{name: "register to a bucket", key: "t:0/5", m: register(5), wantErr: true},
		{name: "fire to a partition key", key: "t:0", m: fireAt(5), wantErr: true},
		{name: "expire to a timer key", key: "t:0/5", m: expireAt(5), wantErr: true},
		{name: "not a timer key", key: "a:x", m: schedule("a:x", 1), wantErr: true},
		{name: "no op", key: "t:0/5", m: &livetabv1.Timer{}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := proto.Clone(tt.st)
			got, err := timers.Apply(tt.key, tt.st, tt.m)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if !proto.Equal(before, tt.st) {
				t.Errorf("Apply changed its input state: %v", tt.st)
			}
			if err == nil {
				sameResult(t, got, tt.want)
			}
		})
	}
}

func TestTick(t *testing.T) {
	waiting := &livetabv1.TimerState{LastTickUs: 1e6, Seconds: []int64{4, 5, 9}}
	tests := []struct {
		name    string
		key     string
		st      *livetabv1.TimerState
		now     int64
		want    timers.Result
		wantErr bool
	}{
		{name: "nothing waits", key: "t:0", now: 7e6, want: timers.Result{}},
		{name: "before the first second", key: "t:0", st: waiting, now: 3_999_999, want: timers.Result{}},
		{
			name: "exactly at a second fires it", key: "t:0", st: waiting, now: 4e6,
			want: timers.Result{Write: true, State: &livetabv1.TimerState{LastTickUs: 4e6, Seconds: []int64{5, 9}},
				Out: []timers.Loop{{Key: "t:0/4", Timer: fireAt(4e6)}}},
		},
		{
			name: "fires every second that has come", key: "t:0", st: waiting, now: 8_999_999,
			want: timers.Result{Write: true, State: &livetabv1.TimerState{LastTickUs: 8_999_999, Seconds: []int64{9}},
				Out: []timers.Loop{{Key: "t:0/4", Timer: fireAt(8_999_999)}, {Key: "t:0/5", Timer: fireAt(8_999_999)}}},
		},
		{
			name: "time never goes back", key: "t:0", st: &livetabv1.TimerState{LastTickUs: 6e6, Seconds: []int64{5}}, now: 2e6,
			want: timers.Result{Write: true, State: &livetabv1.TimerState{LastTickUs: 6e6, Seconds: []int64{}},
				Out: []timers.Loop{{Key: "t:0/5", Timer: fireAt(6e6)}}},
		},
		{name: "tick to a bucket", key: "t:0/4", now: 1, wantErr: true},
		{name: "tick to another key", key: "a:x", now: 1, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := timers.Tick(tt.key, tt.st, tt.now)
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error %v", err, tt.wantErr)
			}
			if err == nil {
				sameResult(t, got, tt.want)
			}
		})
	}
}

// TestDeliveryOrderDoesNotMatter drives the mechanism through an in-memory
// table, delivering the looped messages in random order (Kafka orders them
// only per source partition) with ticks in between, and checks that every
// scheduled key expires, never before it is due, and that nothing is left
// behind.
func TestDeliveryOrderDoesNotMatter(t *testing.T) {
	const n = 4
	tm := timers.New(n)
	for seed := range uint64(50) {
		rng := rand.New(rand.NewPCG(seed, 7))
		table := map[string]*livetabv1.TimerState{}
		var pending []timers.Loop
		due := map[string]int64{}
		expired := map[string][]int64{}
		apply := func(key string, r timers.Result) {
			switch {
			case r.Delete:
				delete(table, key)
			case r.Write:
				table[key] = r.State
			}
			pending = append(pending, r.Out...)
		}
		deliver := func(l timers.Loop) {
			if !timers.IsKey(l.Key) {
				expired[l.Key] = append(expired[l.Key], l.Timer.GetExpireUs())
				return
			}
			r, err := timers.Apply(l.Key, table[l.Key], l.Timer)
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
			apply(l.Key, r)
		}
		now := int64(1_000_000_000)
		tick := func() {
			for _, k := range tm.PartitionKeys() {
				r, err := timers.Tick(k, table[k], now)
				if err != nil {
					t.Fatal(err)
				}
				apply(k, r)
			}
		}
		for i := range 40 {
			key := fmt.Sprintf("a:%d", i)
			due[key] = now + rng.Int64N(5_000_000)
			pending = append(pending, tm.Schedule(rng.Int32N(n), key, due[key]))
			// Deliver a random share of what is pending, in random order,
			// and let time pass now and then.
			for range rng.IntN(len(pending) + 1) {
				j := rng.IntN(len(pending))
				l := pending[j]
				pending = slices.Delete(pending, j, j+1)
				deliver(l)
			}
			if rng.IntN(3) == 0 {
				now += rng.Int64N(1_500_000)
				tick()
			}
		}
		// Drain with time far beyond every due time.
		now += 10_000_000
		for range 10 {
			for len(pending) > 0 {
				j := rng.IntN(len(pending))
				l := pending[j]
				pending = slices.Delete(pending, j, j+1)
				deliver(l)
			}
			tick()
		}
		for key, d := range due {
			got := expired[key]
			if len(got) == 0 {
				t.Errorf("seed %d: %s (due %d) never expired", seed, key, d)
			}
			for _, at := range got {
				if at < d {
					t.Errorf("seed %d: %s due %d expired early at %d", seed, key, d, at)
				}
			}
		}
		for k, st := range table {
			if len(timers.Keys(st)) > 0 || len(st.GetSeconds()) > 0 {
				t.Errorf("seed %d: %s left with %v", seed, k, st)
			}
		}
	}
}
