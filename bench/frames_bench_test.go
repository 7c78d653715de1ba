package bench

import (
	"bytes"
	"strconv"
	"testing"
	"time"
)

// BenchmarkHandleItem is the generator's cost per delivered item frame
// (scan, latency records), which bounds the deliveries per second one
// generator core can check.
func BenchmarkHandleItem(b *testing.B) {
	frame := benchFrame()
	s := &subscribers{rec: newRecorder(), log: nil}
	sb := &sub{hot: true}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	now := time.Now().UnixMicro()
	for b.Loop() {
		sb.last = 0
		s.handle(sb, frame, now)
	}
	if s.st.items.Load() == 0 {
		b.Fatal("no item handled")
	}
}

// BenchmarkHandleBatch is the generator's cost per delivered item when
// items come in batch frames of 16 (per batch frame; the items' count is
// 16 times b.N).
func BenchmarkHandleBatch(b *testing.B) {
	const n = 16
	frame := benchFrame()
	batch := []byte(`{"type":"batch","frames":[`)
	for i := range n {
		if i > 0 {
			batch = append(batch, ',')
		}
		// Each a new cursor, as the items of a batch are.
		batch = append(batch, bytes.Replace(frame, []byte(`"cursor":17`), []byte(`"cursor":`+strconv.Itoa(i+1)), 1)...)
	}
	batch = append(batch, "]}"...)
	s := &subscribers{rec: newRecorder(), log: nil}
	sb := &sub{hot: true}
	b.SetBytes(int64(len(batch)))
	b.ReportAllocs()
	now := time.Now().UnixMicro()
	for b.Loop() {
		sb.last = 0
		s.handle(sb, batch, now)
	}
	if s.st.items.Load() < n || s.st.badFrames.Load() != 0 {
		b.Fatalf("%d items handled, %d bad frames", s.st.items.Load(), s.st.badFrames.Load())
	}
}

// benchFrame is an event item frame as the views write it.
func benchFrame() []byte {
	return []byte(`{"type":"item","item":{"cursor":17,"account":"acct-0000","kind":"event","session":"a1b2c3d4-s1","received_at":"` +
		time.Now().UTC().Format(time.RFC3339Nano) + `","counters":{"hits":100,"events":1000,"conversions":10},` +
		`"event":{"id":"a1b2c3d4-s1-3","name":"purchase","session":"a1b2c3d4-s1","time":"2026-11-22T10:00:00.123456Z","received_at":"2026-11-22T10:00:00.123456Z",` +
		`"platform":"ios","app_version":"2.3.0","device_ids":["d-0123456789abcdef01234567"],"params":{"pad":"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx","screen":"home"},` +
		`"ip":"10.1.2.3","user_agent":"Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"}}}`)
}
