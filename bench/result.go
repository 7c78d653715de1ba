package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// Result is a run's machine-readable outcome (result.json).
type Result struct {
	Scenario string `json:"scenario"`
	// PresetChanged lists the options that differ from the scenario's
	// preset: the targets are only claimed on an unchanged preset.
	PresetChanged []string  `json:"preset_changed,omitempty"`
	Interrupted   bool      `json:"interrupted,omitempty"`
	StartedAt     time.Time `json:"started_at"`
	Machine       Machine   `json:"machine"`
	Options       Settings  `json:"options"`

	SUT       SUTResult `json:"system_under_test"`
	Generator Resources `json:"generator"`
	Ingest    Ingest    `json:"ingest"`
	Latency   Latencies `json:"latency"`
	Delivery  Delivery  `json:"delivery"`
	Backlog   Backlog   `json:"backlog"`
	Memory    *Memory   `json:"memory_per_subscriber,omitempty"`
	Restart   *Restart  `json:"restart,omitempty"`
	Targets   []Check   `json:"targets,omitempty"`
	Notes     []string  `json:"notes,omitempty"`
	// Series has one point per second of the run, every phase included.
	Series []Point `json:"series"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	GoVersion string `json:"go"`
	OS        string `json:"os"`
	// LoadBefore and LoadAfter are /proc/loadavg at the start and the end:
	// other work on the machine skews every figure.
	LoadBefore string `json:"loadavg_before,omitempty"`
	LoadAfter  string `json:"loadavg_after,omitempty"`
	// StealPercent is the share of the machine's CPU time over the
	// measured window that the hypervisor gave to other guests (steal in
	// /proc/stat), and StealMaxPercent the most of any one second; -1
	// when unknown. A virtual machine's neighbours take it, and the
	// figures of a run with much of it describe a slower machine.
	StealPercent    float64 `json:"steal_percent"`
	StealMaxPercent float64 `json:"steal_max_percent"`
}

// Settings are the options that shaped the load.
type Settings struct {
	Mode           Mode    `json:"mode"`
	Feed           string  `json:"feed"`
	Partitions     int     `json:"partitions"`
	DurationS      float64 `json:"duration_s"`
	WarmupS        float64 `json:"warmup_s,omitempty"`
	BaselineS      float64 `json:"baseline_s,omitempty"`
	HitRate        float64 `json:"hit_rate"`
	EventRate      float64 `json:"event_rate"`
	Max            bool    `json:"max,omitempty"`
	Concurrency    int     `json:"concurrency"`
	Accounts       int     `json:"accounts"`
	HotShare       float64 `json:"hot_share,omitempty"`
	SubsPerAccount int     `json:"subs_per_account"`
	SubFilter      string  `json:"sub_filter"`
	HotSubs        int     `json:"hot_subs,omitempty"`
	HotFilter      string  `json:"hot_filter,omitempty"`
	SessionEvents  int     `json:"session_events"`
	Batch          int     `json:"batch"`
	InstallRatio   float64 `json:"install_ratio"`
	ParamBytes     int     `json:"param_bytes"`
	Fill           int64   `json:"fill,omitempty"`
}

func settingsOf(o *Options) Settings {
	return Settings{
		Mode: o.Mode, Feed: o.Feed, Partitions: o.Partitions,
		DurationS: o.Duration.Seconds(), WarmupS: o.Warmup.Seconds(), BaselineS: o.Baseline.Seconds(),
		HitRate: o.HitRate, EventRate: o.EventRate, Max: o.Max, Concurrency: o.Concurrency,
		Accounts: o.Accounts, HotShare: o.HotShare, SubsPerAccount: o.SubsPerAccount, SubFilter: o.SubFilter,
		HotSubs: o.HotSubs, HotFilter: o.HotFilter, SessionEvents: o.SessionEvents, Batch: o.Batch,
		InstallRatio: o.InstallRatio, ParamBytes: o.ParamBytes, Fill: o.Fill,
	}
}

// presetChanges names the settings of o that differ from its preset.
func presetChanges(o *Options) []string {
	p, err := Preset(o.Scenario)
	if err != nil {
		return nil
	}
	a, b := settingsOf(o), settingsOf(&p)
	a.Mode, b.Mode = "", ""
	var ma, mb map[string]any
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	json.Unmarshal(ja, &ma)
	json.Unmarshal(jb, &mb)
	var out []string
	for k, v := range ma {
		if fmt.Sprint(mb[k]) != fmt.Sprint(v) {
			out = append(out, k)
		}
	}
	for k := range mb {
		if _, ok := ma[k]; !ok {
			out = append(out, k)
		}
	}
	return sortedStrings(out)
}

// Resources are a process's CPU and memory over the measured window.
type Resources struct {
	CPUSeconds float64 `json:"cpu_seconds"`
	// CPUPercent is of one core: 200 is both cores of a 2-core machine.
	CPUPercent   float64 `json:"cpu_percent"`
	PeakRSSBytes int64   `json:"peak_rss_bytes"`
	RSSEndBytes  int64   `json:"rss_end_bytes"`
}

// SUTResult is the system under test.
type SUTResult struct {
	Mode Mode   `json:"mode"`
	URL  string `json:"url"`
	PID  int    `json:"pid,omitempty"`
	// Separated says whether its resources are its own; How says how they
	// were measured.
	Separated bool   `json:"separated"`
	How       string `json:"how"`
	Resources
	// CPUPerMessageUs is its CPU time over the window per hit and event
	// it accepted, in microseconds: what a message costs, which, unlike
	// latency, a busy host's steal hardly moves, so it compares builds.
	CPUPerMessageUs float64 `json:"cpu_per_message_us,omitempty"`
	StartS          float64 `json:"start_s,omitempty"`
	StopS           float64 `json:"stop_s,omitempty"`
	Pprof           string  `json:"pprof,omitempty"`
}

// Ingest is what the generator offered and the collector accepted during
// the measured window.
type Ingest struct {
	WindowS            float64 `json:"window_s"`
	OfferedHitsPerS    float64 `json:"offered_hits_per_s"`
	OfferedEventsPerS  float64 `json:"offered_events_per_s"`
	AchievedHitsPerS   float64 `json:"achieved_hits_per_s"`
	AchievedEventsPerS float64 `json:"achieved_events_per_s"`
	HitsOffered        int64   `json:"hits_offered"`
	HitsSkipped        int64   `json:"hits_skipped"`
	HitsAccepted       int64   `json:"hits_accepted"`
	EventsOffered      int64   `json:"events_offered"`
	EventsSkipped      int64   `json:"events_skipped"`
	EventsAccepted     int64   `json:"events_accepted"`
	EventsRejected     int64   `json:"events_rejected"`
	ConvertingInstalls int64   `json:"converting_installs"`
	BytesPerEvent      float64 `json:"bytes_per_event"`
	// HTTPErrors counts failed requests of the whole run by kind ("hit",
	// "events") and status ("503", "transport").
	HTTPErrors map[string]map[string]int64 `json:"http_errors"`
	FirstError string                      `json:"first_error,omitempty"`
}

// Latencies are in milliseconds; the stages overlap (see BENCHMARKS.md).
type Latencies struct {
	// EndToEnd is collector accept (the item's received_at) → a
	// subscriber received the item frame, over hit and event items.
	EndToEnd   Latency  `json:"end_to_end"`
	Hit        Latency  `json:"hit"`
	Event      Latency  `json:"event"`
	Conversion Latency  `json:"conversion"`
	Hot        *Latency `json:"hot_account,omitempty"`
	// CollectorAck is the HTTP round trip of a collector request: it is
	// answered once Kafka acknowledged the write.
	CollectorAckHit    Latency `json:"collector_ack_hit"`
	CollectorAckEvents Latency `json:"collector_ack_events"`
	// Processor is accept → the liveview processor emitted the item.
	Processor *Latency `json:"processor,omitempty"`
	// Views is the emit → a subscriber received it.
	Views *Latency `json:"views,omitempty"`
	// TapDelivery is the emit → the generator's own view-topic consumer.
	TapDelivery *Latency `json:"tap_delivery,omitempty"`
	StageSource string   `json:"stage_source"`
	// Schedule is how late the generator started requests: when it is
	// high the generator, not the system, is the bottleneck.
	Schedule Latency `json:"generator_schedule"`
}

// Delivery is what the subscribers got.
type Delivery struct {
	Subscribers     int     `json:"subscribers"`
	HotSubscribers  int     `json:"hot_subscribers,omitempty"`
	ConnectS        float64 `json:"connect_s"`
	ConnectedEnd    int64   `json:"connected_at_end"`
	Items           int64   `json:"items"`
	ItemsPerS       float64 `json:"deliveries_per_s"`
	HotItemsPerSubS float64 `json:"hot_items_per_subscriber_per_s,omitempty"`
	Updates         int64   `json:"updates"`
	Catchup         int64   `json:"catchup_items"`
	SlowDisconnects int64   `json:"slow_disconnects"`
	Disconnects     int64   `json:"other_disconnects"`
	DialErrors      int64   `json:"dial_errors"`
	Gaps            int64   `json:"gaps"`
	ErrorFrames     int64   `json:"error_frames"`
	BadFrames       int64   `json:"bad_frames"`
	// Undelivered is, after the drain, how many accepted hits and events
	// the subscribers that receive all of them still miss; nil when none
	// can be checked.
	Undelivered *int64  `json:"undelivered,omitempty"`
	DrainS      float64 `json:"drain_s"`
	// ServerLag and ServerDelayMs are the largest the server's stats
	// frames reported (nil: the server sends none).
	ServerLag     *int64   `json:"server_max_lag,omitempty"`
	ServerDelayMs *float64 `json:"server_max_delay_ms,omitempty"`
	FirstError    string   `json:"first_error,omitempty"`
}

// Backlog is the processors' consumer lag (messages).
type Backlog struct {
	Measured   bool    `json:"measured"`
	AtStart    int64   `json:"at_start"`
	AtEnd      int64   `json:"at_end_of_load"`
	Max        int64   `json:"max"`
	AfterDrain int64   `json:"after_drain"`
	GrowthPerS float64 `json:"growth_per_s"`
}

// Memory is the system's resident memory per subscriber.
type Memory struct {
	Subscribers int64 `json:"subscribers"`
	// Before: load running, no subscriber; Connected: just after all
	// connected; Loaded: the median over the measured window.
	BeforeBytes    int64   `json:"rss_before_bytes"`
	ConnectedBytes int64   `json:"rss_connected_bytes"`
	LoadedBytes    int64   `json:"rss_loaded_bytes"`
	PerSubConnect  float64 `json:"per_subscriber_connected_bytes"`
	PerSubLoaded   float64 `json:"per_subscriber_loaded_bytes"`
}

// Restart is the restart scenario's outcome.
type Restart struct {
	FillItems int64   `json:"fill_items"`
	FillS     float64 `json:"fill_s"`
	FillPerS  float64 `json:"fill_items_per_s"`
	CatchUpS  float64 `json:"catch_up_s"`
	// BacklogAtStop is the processors' lag when the wait for them ended
	// without their catching up (0: they caught up).
	BacklogAtStop  int64            `json:"backlog_at_stop,omitempty"`
	TopicMessages  map[string]int64 `json:"topic_messages"`
	TotalMessages  int64            `json:"total_messages"`
	DataDirBytes   int64            `json:"data_dir_bytes"`
	StopS          float64          `json:"stop_s"`
	ReadyS         float64          `json:"ready_s"`
	PageS          float64          `json:"page_s"`
	SnapshotS      float64          `json:"snapshot_s"`
	SnapshotItems  int              `json:"snapshot_items"`
	RecoveryCPUS   float64          `json:"recovery_cpu_s"`
	RecoveryPeakMB float64          `json:"recovery_peak_rss_mb"`
}

// Check is one target of the issue against what was measured.
type Check struct {
	Target   string `json:"target"`
	Measured string `json:"measured"`
	Met      bool   `json:"met"`
}

// Point is one second of the run.
type Point struct {
	T             float64 `json:"t_s"`
	Phase         string  `json:"phase"`
	OfferedHits   float64 `json:"offered_hits_per_s"`
	OfferedEvents float64 `json:"offered_events_per_s"`
	Hits          float64 `json:"hits_per_s"`
	Events        float64 `json:"events_per_s"`
	Errors        float64 `json:"errors_per_s"`
	Deliveries    float64 `json:"deliveries_per_s"`
	Count         int64   `json:"latency_count"`
	P50           float64 `json:"p50_ms"`
	P90           float64 `json:"p90_ms"`
	P99           float64 `json:"p99_ms"`
	Max           float64 `json:"max_ms"`
	SUTCPU        float64 `json:"sut_cpu_percent"`
	SUTRSSMB      float64 `json:"sut_rss_mb"`
	GenCPU        float64 `json:"generator_cpu_percent"`
	Lag           int64   `json:"lag"`
	Subs          int64   `json:"subscribers"`
	// Steal is the share of the machine's CPU time the hypervisor gave
	// to other guests (/proc/stat); -1 when unknown.
	Steal float64 `json:"steal_percent"`
}

// write saves r as <dir>/result.json.
func (r *Result) write(dir string) (string, error) {
	path := filepath.Join(dir, "result.json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("bench: encode result: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("bench: write result: %w", err)
	}
	return path, nil
}

func machine() Machine {
	return Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH, LoadBefore: loadavg(), StealPercent: -1, StealMaxPercent: -1}
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// summary writes the human-readable outcome.
func (r *Result) summary(w io.Writer) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	lat := func(name string, l Latency) {
		if l.Count == 0 {
			p("  %-22s -", name)
			return
		}
		p("  %-22s p50 %7.2f  p90 %7.2f  p99 %7.2f  p99.9 %7.2f  max %8.2f ms  (n=%d)", name, l.P50, l.P90, l.P99, l.P999, l.Max, l.Count)
	}
	p("")
	p("livetab bench: scenario %s%s", r.Scenario, map[bool]string{true: " (interrupted)", false: ""}[r.Interrupted])
	if len(r.PresetChanged) > 0 {
		p("  options changed from the preset: %s", strings.Join(r.PresetChanged, ", "))
	}
	p("machine: %d CPUs, %s, load before %s, after %s", r.Machine.CPUs, r.Machine.GoVersion, r.Machine.LoadBefore, r.Machine.LoadAfter)
	if r.Machine.StealPercent >= 0 {
		p("cpu steal (time the hypervisor gave other guests) over the window: %.1f%% of the machine, at most %.0f%% in one second", r.Machine.StealPercent, r.Machine.StealMaxPercent)
		if r.Machine.StealPercent >= stealWarnPercent {
			p("  WARNING: the machine lost %.0f%% of its CPU to other guests: this run measured a slower machine; repeat it", r.Machine.StealPercent)
		}
	}
	if rs := r.Restart; rs != nil {
		p("fill: %d items in %.1fs (%.0f/s); waited %.1fs for the processors (backlog left: %d); %d messages on the topics, data dir %.0f MB",
			rs.FillItems, rs.FillS, rs.FillPerS, rs.CatchUpS, rs.BacklogAtStop, rs.TotalMessages, float64(rs.DataDirBytes)/1e6)
		p("clean stop: %.2fs; restart: ready (HTTP serving) %.2fs, page 200 %.2fs, first snapshot %.2fs (%d items); recovery CPU %.1fs, peak RSS %.0f MB",
			rs.StopS, rs.ReadyS, rs.PageS, rs.SnapshotS, rs.SnapshotItems, rs.RecoveryCPUS, rs.RecoveryPeakMB)
	} else {
		in := r.Ingest
		p("ingest over %.1fs: hits %.0f/s offered, %.0f/s accepted; events %.0f/s offered, %.0f/s accepted (%d skipped, %d rejected); %.0f bytes/event",
			in.WindowS, in.OfferedHitsPerS, in.AchievedHitsPerS, in.OfferedEventsPerS, in.AchievedEventsPerS, in.HitsSkipped+in.EventsSkipped, in.EventsRejected, in.BytesPerEvent)
		p("HTTP errors: %v", in.HTTPErrors)
		d := r.Delivery
		p("subscribers: %d (%d hot), %d connected at the end, connected in %.1fs; %.0f deliveries/s; updates %d; slow disconnects %d, other %d; gaps %d",
			d.Subscribers, d.HotSubscribers, d.ConnectedEnd, d.ConnectS, d.ItemsPerS, d.Updates, d.SlowDisconnects, d.Disconnects, d.Gaps)
		if d.Undelivered != nil {
			p("undelivered after %.1fs drain: %d", d.DrainS, *d.Undelivered)
		}
		p("latency (ms):")
		lat("end to end", r.Latency.EndToEnd)
		lat("  hits", r.Latency.Hit)
		lat("  events", r.Latency.Event)
		if r.Latency.Hot != nil {
			lat("  hot account", *r.Latency.Hot)
		}
		lat("  conversions", r.Latency.Conversion)
		lat("collector ack (hit)", r.Latency.CollectorAckHit)
		lat("collector ack (events)", r.Latency.CollectorAckEvents)
		if r.Latency.Processor != nil {
			lat("processor stage", *r.Latency.Processor)
		}
		if r.Latency.Views != nil {
			lat("views stage", *r.Latency.Views)
		}
		lat("generator schedule", r.Latency.Schedule)
		p("  stages from: %s", r.Latency.StageSource)
		if r.Backlog.Measured {
			p("backlog (consumer lag, messages): start %d, end of load %d, max %d, after drain %d, growth %.1f/s",
				r.Backlog.AtStart, r.Backlog.AtEnd, r.Backlog.Max, r.Backlog.AfterDrain, r.Backlog.GrowthPerS)
		}
		if m := r.Memory; m != nil {
			p("memory: %d subscribers: RSS %.0f MB before, %.0f MB connected, %.0f MB loaded → %.1f KB/subscriber connected, %.1f KB loaded",
				m.Subscribers, float64(m.BeforeBytes)/1e6, float64(m.ConnectedBytes)/1e6, float64(m.LoadedBytes)/1e6, m.PerSubConnect/1024, m.PerSubLoaded/1024)
		}
	}
	s := r.SUT
	p("system under test (%s; %s): CPU %.1fs (%.0f%% of a core), peak RSS %.0f MB", s.Mode, s.How, s.CPUSeconds, s.CPUPercent, float64(s.PeakRSSBytes)/1e6)
	if s.CPUPerMessageUs > 0 {
		p("  CPU per accepted hit or event: %.0f µs", s.CPUPerMessageUs)
	}
	g := r.Generator
	p("generator: CPU %.1fs (%.0f%% of a core), peak RSS %.0f MB", g.CPUSeconds, g.CPUPercent, float64(g.PeakRSSBytes)/1e6)
	for _, c := range r.Targets {
		p("target %s: %s — %s", map[bool]string{true: "MET", false: "MISSED"}[c.Met], c.Target, c.Measured)
	}
	for _, n := range r.Notes {
		p("note: %s", n)
	}
}

// stealWarnPercent is the CPU steal over a run's window from which the
// report warns that the run measured a slower machine.
const stealWarnPercent = 5
