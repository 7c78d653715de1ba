package bench

import (
	"bytes"
	"encoding/json"
	"image/png"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestFrameType(t *testing.T) {
	tests := []struct {
		frame string
		want  string
	}{
		{`{"type":"item","item":{"cursor":1}}`, "item"},
		{`{"type":"snapshot","account":"a","items":[]}`, "snapshot"},
		{`{"account":"a","type":"stats"}`, "stats"}, // not written first: decoded
		{`{"type":`, ""},
		{`not json`, ""},
	}
	for _, tt := range tests {
		if got := frameType([]byte(tt.frame)); got != tt.want {
			t.Errorf("frameType(%s) = %q, want %q", tt.frame, got, tt.want)
		}
	}
}

func TestBatchFrames(t *testing.T) {
	tests := []struct {
		name  string
		frame string
		want  []string
		ok    bool
	}{
		{
			name:  "items and an update",
			frame: `{"type":"batch","frames":[{"type":"item","item":{"cursor":1}},{"type":"update","item":{"cursor":0}},{"type":"item","item":{"cursor":2,"params":{"a":[1,{"b":2}]}}}]}`,
			want:  []string{`{"type":"item","item":{"cursor":1}}`, `{"type":"update","item":{"cursor":0}}`, `{"type":"item","item":{"cursor":2,"params":{"a":[1,{"b":2}]}}}`},
			ok:    true,
		},
		{
			name:  "brackets, quotes and backslashes inside strings",
			frame: `{"type":"batch","frames":[{"type":"item","item":{"cursor":3,"ua":"}]},{\"x\\","p":"\\"}},{"type":"item","item":{"cursor":4}}]}`,
			want:  []string{`{"type":"item","item":{"cursor":3,"ua":"}]},{\"x\\","p":"\\"}}`, `{"type":"item","item":{"cursor":4}}`},
			ok:    true,
		},
		{
			name: "an item with a nested array of objects that looks like frames",
			frame: `{"type":"batch","frames":[{"type":"item","item":{"cursor":5,"x":[{"type":"a"},{"type":"item","item":{}}]}},` +
				`{"type":"update","item":{"cursor":5}}]}`,
			want: []string{`{"type":"item","item":{"cursor":5,"x":[{"type":"a"},{"type":"item","item":{}}]}}`, `{"type":"update","item":{"cursor":5}}`},
			ok:   true,
		},
		{
			name:  "frames of other types",
			frame: `{"type":"batch","frames":[{"type":"stats","lag":0},{"type":"item","item":{"cursor":6}}]}`,
			want:  []string{`{"type":"stats","lag":0}`, `{"type":"item","item":{"cursor":6}}`},
			ok:    true,
		},
		{name: "empty", frame: `{"type":"batch","frames":[]}`, ok: true},
		{name: "no frames", frame: `{"type":"batch"}`},
		{name: "cut short", frame: `{"type":"batch","frames":[{"type":"item","item":{"cursor":1}},{"type":"item"`, want: []string{`{"type":"item","item":{"cursor":1}}`}},
		{name: "cut short in a string", frame: `{"type":"batch","frames":[{"type":"item","item":{"ua":"abc`},
		{name: "unbalanced", frame: `{"type":"batch","frames":[{"type":"item"}}]}`, want: []string{`{"type":"item"}`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			ok := batchFrames([]byte(tt.frame), func(f []byte) {
				got = append(got, string(f))
				if !json.Valid(f) {
					t.Errorf("frame %s is not valid JSON", f)
				}
			})
			if ok != tt.ok || strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("got %v %q, want %v %q", ok, got, tt.ok, tt.want)
			}
		})
	}
}

// TestHandleBatch: a batch frame's items count as if each had come alone.
func TestHandleBatch(t *testing.T) {
	s := &subscribers{rec: newRecorder()}
	sb := &sub{hot: true, contiguous: true}
	now := time.Now()
	item := func(c int) string {
		return `{"type":"item","item":{"cursor":` + strconv.Itoa(c) + `,"account":"a","kind":"event","received_at":"` +
			now.UTC().Format(time.RFC3339Nano) + `"}}`
	}
	s.handle(sb, []byte(item(1)), now.UnixMicro())
	s.handle(sb, []byte(`{"type":"batch","frames":[`+item(2)+`,{"type":"update","item":{"cursor":1}},`+item(3)+`,`+item(5)+`]}`), now.UnixMicro())
	if got := s.st.items.Load(); got != 4 {
		t.Errorf("%d items, want 4", got)
	}
	if got := s.st.updates.Load(); got != 1 {
		t.Errorf("%d updates, want 1", got)
	}
	if sb.last != 5 || s.st.gaps.Load() != 1 || s.st.badFrames.Load() != 0 {
		t.Errorf("last %d, gaps %d, bad frames %d; want 5, 1 (cursor 4), 0", sb.last, s.st.gaps.Load(), s.st.badFrames.Load())
	}
}

func TestScanItem(t *testing.T) {
	rec := time.Date(2026, 11, 22, 10, 0, 0, 123456000, time.UTC)
	em := rec.Add(7 * time.Millisecond)
	ts := func(t time.Time) string { return t.Format(time.RFC3339Nano) }
	tests := []struct {
		name    string
		frame   string
		ok      bool
		cursor  uint64
		account string
		kind    string
		emitted time.Time
	}{
		{
			name: "event item as the views encode it",
			frame: `{"type":"item","item":{"cursor":17,"account":"acct-0001","kind":"event","session":"s-1","received_at":"` + ts(rec) +
				`","counters":{"hits":1,"events":2,"conversions":0},"event":{"id":"e","name":"install","session":"s-1","received_at":"2000-01-01T00:00:00Z","params":{"kind":"x"}}}}`,
			ok: true, cursor: 17, account: "acct-0001", kind: "event",
		},
		{
			name:  "emitted_at exposed",
			frame: `{"type":"item","item":{"cursor":3,"account":"a","kind":"hit","received_at":"` + ts(rec) + `","emitted_at":"` + ts(em) + `"}}`,
			ok:    true, cursor: 3, account: "a", kind: "hit", emitted: em,
		},
		{
			name:  "session with quotes and a key-like value",
			frame: `{"type":"item","item":{"cursor":9,"account":"a","kind":"hit","session":"x\",\"kind\":\"event","received_at":"` + ts(rec) + `"}}`,
			ok:    true, cursor: 9, account: "a", kind: "hit",
		},
		{name: "no cursor", frame: `{"type":"item","item":{"account":"a","received_at":"` + ts(rec) + `"}}`},
		{name: "no received_at", frame: `{"type":"item","item":{"cursor":1,"account":"a"}}`},
		{name: "bad time", frame: `{"type":"item","item":{"cursor":1,"received_at":"yesterday"}}`},
		{name: "not an item", frame: `{"type":"stats","lag":0}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			it, ok := scanItem([]byte(tt.frame), true)
			if ok != tt.ok {
				t.Fatalf("ok = %v, want %v", ok, tt.ok)
			}
			if !ok {
				return
			}
			if it.cursor != tt.cursor || string(it.account) != tt.account || string(it.kind) != tt.kind {
				t.Errorf("got cursor %d account %q kind %q, want %d %q %q", it.cursor, it.account, it.kind, tt.cursor, tt.account, tt.kind)
			}
			if it.receivedUs != rec.UnixMicro() {
				t.Errorf("received %d, want %d", it.receivedUs, rec.UnixMicro())
			}
			var wantEm int64
			if !tt.emitted.IsZero() {
				wantEm = tt.emitted.UnixMicro()
			}
			if it.emittedUs != wantEm {
				t.Errorf("emitted %d, want %d", it.emittedUs, wantEm)
			}
		})
	}
}

func TestParseProcStat(t *testing.T) {
	// Field 2 may hold spaces and parentheses; utime and stime are fields
	// 14 and 15.
	line := "4242 (livetab (bench) x) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 37 0 0 20 0 12 0 100 1000000 5000 18446744073709551615\n"
	got, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if got != 287 {
		t.Errorf("ticks = %d, want 287", got)
	}
	for _, bad := range []string{"", "1 (x) S 1 2", "1 (x) S 1 2 3 4 5 6 7 8 9 10 x 12 13"} {
		if _, err := parseProcStat([]byte(bad)); err == nil {
			t.Errorf("parseProcStat(%q) succeeded", bad)
		}
	}
}

func TestHostCPUSteal(t *testing.T) {
	a, err := parseHostCPU([]byte("cpu  100 5 20 800 10 0 5 60 7 0\ncpu0 50 2 10 400 5 0 2 30 0 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if a.total != 1000 || a.steal != 60 {
		t.Fatalf("total %d steal %d, want 1000 and 60 (guest not added)", a.total, a.steal)
	}
	b, err := parseHostCPU([]byte("cpu  150 5 30 890 10 0 5 110 7 0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if got := stealPercent(a, b); got != 25 {
		t.Errorf("steal %.1f%%, want 25%% (50 of 200 ticks)", got)
	}
	if got := stealPercent(a, hostCPU{}); got != -1 {
		t.Errorf("steal against an unread sample %.1f, want -1", got)
	}
	for _, bad := range []string{"", "cpu0 1 2 3 4 5 6 7 8", "cpu 1 2 3 4 5 6 7", "cpu 1 2 3 4 5 6 7 x"} {
		if _, err := parseHostCPU([]byte(bad)); err == nil {
			t.Errorf("parseHostCPU(%q) succeeded", bad)
		}
	}
	if h := readHostCPU(); !h.ok || h.total <= 0 {
		t.Errorf("this machine's /proc/stat read as %+v", h)
	}
}

func TestParseProcStatus(t *testing.T) {
	status := "Name:\tlivetab\nVmPeak:\t 2000 kB\nVmHWM:\t  51200 kB\nVmRSS:\t  40960 kB\nThreads:\t12\n"
	rss, hwm, err := parseProcStatus([]byte(status))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 40960<<10 || hwm != 51200<<10 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
	if _, _, err := parseProcStatus([]byte("Name:\tx\n")); err == nil {
		t.Error("status without VmRSS parsed")
	}
	if _, _, err := parseProcStatus([]byte("VmRSS:\t12 MB\nVmHWM:\t1 kB\n")); err == nil {
		t.Error("status in MB parsed")
	}
}

func TestProcReaderReadsThisProcess(t *testing.T) {
	// Burn a little CPU so that the reading cannot be zero.
	deadline := time.Now().Add(30 * time.Millisecond)
	for x := 0; time.Now().Before(deadline); x++ {
		_ = x * x
	}
	u, err := newProcReader(os.Getpid()).read()
	if err != nil {
		t.Fatal(err)
	}
	if u.CPU <= 0 || u.RSS <= 0 || u.PeakRSS < u.RSS {
		t.Errorf("usage = %+v", u)
	}
	self := selfUsage()
	if self.CPU <= 0 || self.PeakRSS <= 0 {
		t.Errorf("self usage = %+v", self)
	}
	if n := clockTicks(); n <= 0 {
		t.Errorf("clock ticks %d", n)
	}
}

func TestSlope(t *testing.T) {
	tests := []struct {
		xs, ys []float64
		want   float64
	}{
		{nil, nil, 0},
		{[]float64{1}, []float64{5}, 0},
		{[]float64{1, 2, 3}, []float64{10, 10, 10}, 0},
		{[]float64{0, 1, 2, 3}, []float64{0, 100, 200, 300}, 100},
		{[]float64{0, 1, 2, 3}, []float64{300, 200, 100, 0}, -100},
	}
	for _, tt := range tests {
		if got := slope(tt.xs, tt.ys); got != tt.want {
			t.Errorf("slope(%v, %v) = %v, want %v", tt.xs, tt.ys, got, tt.want)
		}
	}
}

func TestFilters(t *testing.T) {
	tests := []struct {
		filter               string
		complete, contiguous bool
	}{
		{AllKinds, true, true},
		{"kind=hit,event", true, false},
		{"kind=hit&kind=event", true, false},
		{"kind=event", false, false},
		{"", false, false},
		{"kind=hit,event,conversion&platform=ios", false, false},
		{"session=s-1", false, false},
	}
	for _, tt := range tests {
		if got := complete(tt.filter); got != tt.complete {
			t.Errorf("complete(%q) = %v, want %v", tt.filter, got, tt.complete)
		}
		if got := contiguous(tt.filter); got != tt.contiguous {
			t.Errorf("contiguous(%q) = %v, want %v", tt.filter, got, tt.contiguous)
		}
	}
}

func TestClickIDOf(t *testing.T) {
	tests := []struct{ location, want string }{
		{"https://example.com/landing?click_id=abc", "abc"},
		{"https://apps.example.com/app/id123?x=1&click_id=k-2", "k-2"},
		{"https://play.google.com/store/apps/details?id=com.example.app&referrer=click_id%3Dplay-1", "play-1"},
		{"https://play.google.com/store/apps/details?id=x&referrer=utm_source%3Dy%26click_id%3Dp2", "p2"},
		{"https://example.com/", ""},
		{"::not a url", ""},
	}
	for _, tt := range tests {
		if got := clickIDOf(tt.location); got != tt.want {
			t.Errorf("clickIDOf(%q) = %q, want %q", tt.location, got, tt.want)
		}
	}
}

// The SDK batches the generator sends are what the README documents.
func TestAppendBatch(t *testing.T) {
	o, err := Preset(ScenarioSmoke)
	if err != nil {
		t.Fatal(err)
	}
	o.ParamBytes = 10
	l := newLoad(&o, "http://x", accountNames(2), newRecorder())
	s := &appSession{account: 1, id: "run-s1", v: visitor{ip: "10.0.0.1", ua: "ua", platform: "ios", device: "d-1"}, clickID: "click-9", events: 4}
	var evs []map[string]any
	if err := json.Unmarshal(l.appendBatch(nil, s, 0, 1), &evs); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0]["name"] != "install" || evs[0]["click_id"] != "click-9" || evs[0]["id"] != "run-s1-0" ||
		evs[0]["account"] != "acct-0001" || evs[0]["session"] != "run-s1" || evs[0]["platform"] != "ios" {
		t.Fatalf("install batch = %v", evs)
	}
	if p := evs[0]["params"].(map[string]any); p["pad"] != strings.Repeat("x", 10) {
		t.Errorf("params = %v", p)
	}
	evs = nil
	if err := json.Unmarshal(l.appendBatch(nil, s, 1, 3), &evs); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 3 {
		t.Fatalf("%d events, want 3", len(evs))
	}
	for i, ev := range evs {
		if ev["name"] == "install" || ev["click_id"] != nil || ev["id"] != "run-s1-"+string(rune('1'+i)) {
			t.Errorf("in-app event %d = %v", i, ev)
		}
	}
}

func TestPresetsAndValidation(t *testing.T) {
	for _, name := range Scenarios() {
		o, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		o.Command = []string{"livetab", "bench", "sut"}
		if err := o.validate(); err != nil {
			t.Errorf("preset %s does not validate: %v", name, err)
		}
		if c := presetChanges(&o); len(c) != 0 {
			t.Errorf("preset %s differs from itself: %v", name, c)
		}
	}
	if _, err := Preset("nope"); err == nil {
		t.Error("unknown scenario accepted")
	}
	base, _ := Preset(ScenarioSmoke)
	base.Command = []string{"x"}
	tests := []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"no command", func(o *Options) { o.Command = nil }, "no command"},
		{"remote without url", func(o *Options) { o.Mode = ModeRemote; o.Secret = []byte("s") }, "needs a URL"},
		{"remote without secret", func(o *Options) { o.Mode = ModeRemote; o.URL = "http://127.0.0.1:1" }, "secret"},
		{"remote bad url", func(o *Options) { o.Mode = ModeRemote; o.URL = "ftp://x"; o.Secret = []byte("s") }, "bad URL"},
		{"profile in process", func(o *Options) { o.Mode = ModeInProcess; o.CPUProfile = true }, "profiling"},
		{"zero rates", func(o *Options) { o.HitRate, o.EventRate = 0, 0 }, "rates"},
		{"batch too big", func(o *Options) { o.Batch = 101 }, "batch"},
		{"hot share", func(o *Options) { o.HotShare = 2 }, "hot share"},
		{"no duration", func(o *Options) { o.Duration = 0 }, "duration"},
		{"restart in process", func(o *Options) { o.Scenario = ScenarioRestart; o.Mode = ModeInProcess; o.Fill = 1 }, "child mode"},
	}
	for _, tt := range tests {
		o := base
		tt.change(&o)
		err := o.validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: validate = %v, want an error about %q", tt.name, err, tt.want)
		}
	}
	changed := base
	changed.Duration = time.Second
	if c := presetChanges(&changed); len(c) != 1 || c[0] != "duration_s" {
		t.Errorf("presetChanges = %v, want [duration_s]", c)
	}
}

func TestRecorder(t *testing.T) {
	r := newRecorder()
	for i := range 100 {
		r.record(i, mE2E, int64(1000*(i+1)))
		r.record(i, mAckHit, 5)
	}
	iv := r.takeInterval()
	if iv.TotalCount() != 100 {
		t.Fatalf("interval count %d", iv.TotalCount())
	}
	if again := r.takeInterval(); again.TotalCount() != 0 {
		t.Errorf("interval not reset: %d", again.TotalCount())
	}
	l := summarize(r.total(mE2E))
	if l.Count != 100 || l.P50 < 49 || l.P50 > 51 || l.Max < 99.9 || l.Max > 100.1 {
		t.Errorf("summary = %+v", l)
	}
	// Values beyond the histogram's range are clamped, not lost.
	r.record(0, mViews, -5)
	r.record(0, mViews, histMaxUs*2)
	if n := r.total(mViews).TotalCount(); n != 2 {
		t.Errorf("clamped values recorded %d times, want 2", n)
	}
	r.reset()
	if n := r.total(mE2E).TotalCount(); n != 0 {
		t.Errorf("after reset %d", n)
	}
}

func TestJoinerEitherOrder(t *testing.T) {
	r := newRecorder()
	j := newJoiner(r)
	// The socket first, twice (two subscribers), then the tap.
	j.socket([]byte("a"), 1, 1_010_000)
	j.socket([]byte("a"), 1, 1_020_000)
	j.emitted("a", 1, 1_000_000)
	// The tap first, then the socket.
	j.emitted("b", 1, 2_000_000)
	j.socket([]byte("b"), 1, 2_005_000)
	// Another account's cursor 1 is not joined with these.
	j.emitted("c", 1, 5_000_000)
	h := r.total(mViews)
	if h.TotalCount() != 3 {
		t.Fatalf("recorded %d views latencies, want 3", h.TotalCount())
	}
	if min, max := h.Min(), h.Max(); min < 4950 || min > 5050 || max < 19800 || max > 20200 {
		t.Errorf("views latencies from %d to %d µs, want 5000 to 20000", min, max)
	}
}

func TestLastLineWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &lastLineWriter{w: &buf}
	w.Write([]byte("one\ntw"))
	if got := w.last(); got != "one" {
		t.Errorf("last = %q", got)
	}
	w.Write([]byte("o\nthree"))
	if got := w.last(); got != "two" {
		t.Errorf("last = %q", got)
	}
	if buf.String() != "one\ntwo\nthree" {
		t.Errorf("passed on %q", buf.String())
	}
}

func TestWriteChart(t *testing.T) {
	res := &Result{Scenario: "test"}
	for i := range 10 {
		res.Series = append(res.Series, Point{T: float64(i), Count: 100, P50: 1, P99: float64(i), Max: 20, Events: 100, Hits: 10, Deliveries: 110, SUTCPU: 50, SUTRSSMB: 100, Lag: 10})
	}
	path := filepath.Join(t.TempDir(), "chart.png")
	if err := writeChart(path, res); err != nil {
		t.Fatal(err)
	}
	checkPNG(t, path)
	if err := writeChart(path, &Result{}); err == nil {
		t.Error("chart of no samples written")
	}
}

func checkPNG(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if b := img.Bounds(); b.Dx() < 500 || b.Dy() < 500 {
		t.Errorf("%s is %v", path, b)
	}
}

func TestParseTimeUs(t *testing.T) {
	for _, s := range []string{
		"2026-11-22T10:00:00Z",
		"2026-11-22T10:00:00.1Z",
		"2026-11-22T10:00:00.123456Z",
		"2026-11-22T10:00:00.123456789Z",
		"1999-12-31T23:59:59.999999Z",
		"2026-11-22T11:00:00.5+01:00", // not UTC: the slow path
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			t.Fatal(err)
		}
		got, ok := parseTimeUs([]byte(s))
		if !ok || got != want.UnixMicro() {
			t.Errorf("parseTimeUs(%q) = %d, %v; want %d", s, got, ok, want.UnixMicro())
		}
	}
	for _, s := range []string{"", "yesterday", "2026-11-22T10:00:00.Z", "2026-11-22T10:0a:00Z"} {
		if _, ok := parseTimeUs([]byte(s)); ok {
			t.Errorf("parseTimeUs(%q) succeeded", s)
		}
	}
}
