package sessions_test

import (
	"testing"

	"github.com/livetab/livetab/processors/sessions"
)

// BenchmarkReadEvent is ReadEvent alone on an event of the benchmarks'
// traffic: the check of the whole record, its read and its entry built.
func BenchmarkReadEvent(b *testing.B) {
	record := benchRecord(b, "s", 0)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sessions.ReadEvent(record); err != nil {
			b.Fatal(err)
		}
	}
}
