package processors

import (
	"context"

	"github.com/lovoo/goka"
)

// TableProgress is how far one group table of this instance has come
// recovering from its table topic, for showing progress while a restart
// catches up.
type TableProgress struct {
	// Table is the group table's topic.
	Table string
	// Partitions is how many partitions of the table this instance holds
	// (none before the group's first rebalance); Recovered how many of them
	// are recovered and processing.
	Partitions, Recovered int
	// Remaining is the records still to read from the table topic, summed
	// over the partitions that are not recovered yet.
	Remaining int64
}

// Progress reports each group table's recovery. It is cheap enough to call
// every second while WaitReady waits.
func (p *Processors) Progress(ctx context.Context) []TableProgress {
	out := make([]TableProgress, 0, len(p.procs))
	for _, n := range p.procs {
		parts := map[int32]*goka.TableStats{}
		for id, part := range n.p.StatsWithContext(ctx).Group {
			parts[id] = part.TableStats
		}
		out = append(out, TableProgressOf(n.table, parts))
	}
	return out
}

// TableProgressOf sums the goka statistics of a table's partitions (a
// processor's group table, or a goka View's table) into its progress.
func TableProgressOf(table string, parts map[int32]*goka.TableStats) TableProgress {
	tp := TableProgress{Table: table}
	for _, ts := range parts {
		if ts == nil {
			continue
		}
		tp.Partitions++
		if ts.Status == goka.PartitionRunning {
			tp.Recovered++
			continue
		}
		if r := ts.Recovery; r != nil && r.Hwm > r.Offset+1 {
			// Offset is the last record read, Hwm the next to be written.
			tp.Remaining += r.Hwm - r.Offset - 1
		}
	}
	return tp
}
