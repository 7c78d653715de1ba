package bench

import "fmt"

// The targets, on a 2-core machine with the system under test in
// one `livetab dev`-like process on the embedded broker.
const (
	targetEventsPerS   = 20000
	targetHitsPerS     = 2000
	targetSustainS     = 60
	targetFreshEvents  = 5000
	targetP99Ms        = 50
	targetHotSubs      = 1000
	targetHotItemsPerS = 200
	targetConnections  = 10000
	targetPerSubBytes  = 60 << 10
	targetFill         = 1_000_000
	targetRecoveryS    = 10
)

// checks compares the result with the targets of o's scenario. Only a
// run of the unchanged preset can meet a target; a changed one reports
// its figures as not a target run.
func checks(o *Options, res *Result) []Check {
	var out []Check
	add := func(target string, met bool, format string, args ...any) {
		m := fmt.Sprintf(format, args...)
		if len(res.PresetChanged) > 0 || res.Interrupted {
			m += " (not a target run: options changed or run interrupted)"
			met = false
		}
		out = append(out, Check{Target: target, Measured: m, Met: met})
	}
	in, lat, d, bl := res.Ingest, res.Latency, res.Delivery, res.Backlog
	lossFree := d.Undelivered != nil && *d.Undelivered == 0
	undelivered := "unchecked"
	if d.Undelivered != nil {
		undelivered = fmt.Sprint(*d.Undelivered)
	}
	switch o.Scenario {
	case ScenarioThroughput:
		ingest := in.AchievedEventsPerS + in.AchievedHitsPerS
		// No growing backlog: the lag grows by less than 1% of the ingest
		// rate and is gone soon after the load stops.
		steady := bl.Measured && bl.GrowthPerS < 0.01*ingest && d.DrainS < 10
		add(fmt.Sprintf("throughput: ≥ %d events/s plus %d hits/s sustained %d s end to end, no growing backlog", targetEventsPerS, targetHitsPerS, targetSustainS),
			in.AchievedEventsPerS >= targetEventsPerS && in.AchievedHitsPerS >= targetHitsPerS && in.WindowS >= targetSustainS && steady && lossFree,
			"%.0f events/s and %.0f hits/s accepted over %.0f s; backlog growth %.0f msg/s (max %d), drained %.1f s after the load; undelivered %s",
			in.AchievedEventsPerS, in.AchievedHitsPerS, in.WindowS, bl.GrowthPerS, bl.Max, d.DrainS, undelivered)
	case ScenarioFreshness:
		add(fmt.Sprintf("freshness: at %d events/s, p99 collector accept → WebSocket ≤ %d ms", targetFreshEvents, targetP99Ms),
			in.AchievedEventsPerS >= 0.99*targetFreshEvents && lat.EndToEnd.Count > 0 && lat.EndToEnd.P99 <= targetP99Ms && lossFree,
			"p99 %.1f ms (p50 %.1f, p99.9 %.1f, max %.1f) at %.0f events/s + %.0f hits/s; undelivered %s",
			lat.EndToEnd.P99, lat.EndToEnd.P50, lat.EndToEnd.P999, lat.EndToEnd.Max, in.AchievedEventsPerS, in.AchievedHitsPerS, undelivered)
	case ScenarioFanout:
		hot := Latency{}
		if lat.Hot != nil {
			hot = *lat.Hot
		}
		add(fmt.Sprintf("fan-out: one hot account, %d filtered subscribers, %d items/s each at p99 ≤ %d ms", targetHotSubs, targetHotItemsPerS, targetP99Ms),
			d.HotSubscribers >= targetHotSubs && d.HotItemsPerSubS >= 0.95*targetHotItemsPerS && hot.Count > 0 && hot.P99 <= targetP99Ms && d.SlowDisconnects == 0 && lossFree,
			"%d hot subscribers got %.1f items/s each (%.0f deliveries/s); p99 %.1f ms (p50 %.1f, max %.1f); slow disconnects %d; undelivered %s",
			d.HotSubscribers, d.HotItemsPerSubS, d.HotItemsPerSubS*float64(d.HotSubscribers), hot.P99, hot.P50, hot.Max, d.SlowDisconnects, undelivered)
	case ScenarioConnections:
		per := 0.0
		if res.Memory != nil {
			per = res.Memory.PerSubLoaded
		}
		add(fmt.Sprintf("connections: %d subscribers across accounts at ≤ %d KB RSS each while items flow", targetConnections, targetPerSubBytes>>10),
			d.Subscribers >= targetConnections && d.ConnectedEnd >= targetConnections && res.Memory != nil && per <= targetPerSubBytes && d.ItemsPerS > 0,
			"%d subscribers, %d connected at the end; %.1f KB RSS each while %.0f deliveries/s flowed (%.1f KB just connected); p99 %.1f ms",
			d.Subscribers, d.ConnectedEnd, per/1024, d.ItemsPerS, memConnected(res)/1024, lat.EndToEnd.P99)
	}
	return out
}

func memConnected(res *Result) float64 {
	if res.Memory == nil {
		return 0
	}
	return res.Memory.PerSubConnect
}

// restartCheck is the restart scenario's target.
func restartCheck(res *Result) Check {
	rs := res.Restart
	c := Check{
		Target: fmt.Sprintf("restart: after a clean stop with %d items on the topics, serving the page again within %d s", targetFill, targetRecoveryS),
		Met:    rs.FillItems >= targetFill && rs.PageS > 0 && rs.PageS <= targetRecoveryS,
		Measured: fmt.Sprintf("%d items filled (%d messages on all topics); page served %.2f s after the restart began (HTTP ready %.2f s, first snapshot %.2f s)",
			rs.FillItems, rs.TotalMessages, rs.PageS, rs.ReadyS, rs.SnapshotS),
	}
	if len(res.PresetChanged) > 0 {
		c.Met = false
		c.Measured += " (not a target run: options changed)"
	}
	return c
}
