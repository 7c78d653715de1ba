package system

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/livetab/livetab/processors"
)

// progressFunc reports the recovery of a part's tables.
type progressFunc func(context.Context) []processors.TableProgress

// progressInterval spaces the progress lines while the parts recover.
const progressInterval = 2 * time.Second

// reportProgress logs, every interval until ctx ends, how far the parts'
// tables have recovered, so that a restart over large tables shows it is
// moving rather than hanging. Nothing is logged when the parts are ready
// within the first interval.
func reportProgress(ctx context.Context, log *slog.Logger, parts []progressFunc, interval time.Duration) {
	begin := time.Now()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		var all []processors.TableProgress
		for _, p := range parts {
			all = append(all, p(ctx)...)
		}
		if ctx.Err() != nil {
			return
		}
		log.Info("recovering tables", "elapsed", time.Since(begin).Round(100*time.Millisecond).String(), "tables", describeProgress(all))
	}
}

// describeProgress is one line for the tables still recovering, e.g.
// "livetab.sessions-table: 3/8 partitions recovered, 120345 records left".
func describeProgress(tables []processors.TableProgress) string {
	var parts []string
	for _, t := range tables {
		switch {
		case t.Partitions == 0:
			parts = append(parts, t.Table+": waiting for partitions")
		case t.Recovered < t.Partitions:
			parts = append(parts, fmt.Sprintf("%s: %d/%d partitions recovered, %d records left", t.Table, t.Recovered, t.Partitions, t.Remaining))
		}
	}
	if len(parts) == 0 {
		return "all recovered; joining consumer groups"
	}
	return strings.Join(parts, "; ")
}
