package liveview_test

import (
	"testing"

	"github.com/livetab/livetab/processors/liveview"
)

// BenchmarkReadInput is ReadInput alone on a loop record of the
// benchmarks' traffic: the check of the whole payload and the read of
// what Input holds.
func BenchmarkReadInput(b *testing.B) {
	record := benchRecord(b, 1_000_000)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := liveview.ReadInput(record); err != nil {
			b.Fatal(err)
		}
	}
}
