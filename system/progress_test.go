package system

import (
	"testing"

	"github.com/livetab/livetab/processors"
)

func TestDescribeProgress(t *testing.T) {
	tests := []struct {
		name   string
		tables []processors.TableProgress
		want   string
	}{
		{"nothing reported", nil, "all recovered; joining consumer groups"},
		{"all recovered", []processors.TableProgress{{Table: "a", Partitions: 8, Recovered: 8}}, "all recovered; joining consumer groups"},
		{"no partitions yet", []processors.TableProgress{{Table: "a"}}, "a: waiting for partitions"},
		{
			"recovering ones only",
			[]processors.TableProgress{
				{Table: "a", Partitions: 8, Recovered: 8},
				{Table: "b", Partitions: 8, Recovered: 3, Remaining: 120345},
				{Table: "c", Partitions: 4, Recovered: 0, Remaining: 7},
			},
			"b: 3/8 partitions recovered, 120345 records left; c: 0/4 partitions recovered, 7 records left",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describeProgress(tt.tables); got != tt.want {
				t.Errorf("got %q\nwant %q", got, tt.want)
			}
		})
	}
}
