package timers_test

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/processors/internal/timers"
)

// BenchmarkScheduleOneBucket schedules keys into one second's bucket, as a
// burst of hits does: an op is one schedule with the table's round trip
// (decode the bucket's state, apply, encode the new state), and the bucket
// starts over every 2,000 schedules, so -benchtime=2000x fills one bucket
// with 2,000 keys.
func BenchmarkScheduleOneBucket(b *testing.B) {
	const perBucket = 2000
	tm := timers.New(4)
	keys := make([]string, perBucket)
	for i := range keys {
		keys[i] = fmt.Sprintf("f:acct/%040d", i)
	}
	var stored []byte
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if i%perBucket == 0 {
			stored = nil
		}
		l := tm.Schedule(1, keys[i%perBucket], 1_780_000_000_500_000)
		var st *livetabv1.TimerState
		if stored != nil {
			st = &livetabv1.TimerState{}
			if err := proto.Unmarshal(stored, st); err != nil {
				b.Fatal(err)
			}
		}
		r, err := timers.Apply(l.Key, st, l.Timer)
		if err != nil {
			b.Fatal(err)
		}
		if r.Write {
			if stored, err = proto.Marshal(r.State); err != nil {
				b.Fatal(err)
			}
		}
	}
}
