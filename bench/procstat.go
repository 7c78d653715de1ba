package bench

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"
)

// usage is a process's resource use.
type usage struct {
	// CPU is user plus system time since the process started.
	CPU time.Duration
	// RSS is the resident set size now, PeakRSS its high-water mark
	// (VmHWM, or getrusage's maxrss); bytes, 0 when unknown.
	RSS     int64
	PeakRSS int64
}

// procReader reads another process's usage from /proc/<pid>/stat (utime
// and stime, in clock ticks) and /proc/<pid>/status (VmRSS, VmHWM).
type procReader struct {
	pid  int
	tick time.Duration
}

func newProcReader(pid int) procReader {
	return procReader{pid: pid, tick: time.Second / time.Duration(clockTicks())}
}

func (p procReader) read() (usage, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", p.pid))
	if err != nil {
		return usage{}, err
	}
	ticks, err := parseProcStat(stat)
	if err != nil {
		return usage{}, fmt.Errorf("/proc/%d/stat: %w", p.pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.pid))
	if err != nil {
		return usage{}, err
	}
	rss, hwm, err := parseProcStatus(status)
	if err != nil {
		return usage{}, fmt.Errorf("/proc/%d/status: %w", p.pid, err)
	}
	return usage{CPU: time.Duration(ticks) * p.tick, RSS: rss, PeakRSS: hwm}, nil
}

// parseProcStat returns utime+stime, in clock ticks, of a /proc/<pid>/stat
// line. The command name (field 2) is in parentheses and may hold spaces
// and parentheses itself, so fields are counted from the last ')'.
func parseProcStat(b []byte) (int64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("no command name")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state); utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("%d fields after the command name, want at least 13", len(f))
	}
	utime, err := strconv.ParseInt(string(f[11]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("utime: %w", err)
	}
	stime, err := strconv.ParseInt(string(f[12]), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("stime: %w", err)
	}
	return utime + stime, nil
}

// parseProcStatus returns VmRSS and VmHWM, in bytes, of /proc/<pid>/status.
func parseProcStatus(b []byte) (rss, hwm int64, err error) {
	var gotRSS, gotHWM bool
	for line := range bytes.Lines(b) {
		name, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst, gotRSS = &rss, true
		case "VmHWM":
			dst, gotHWM = &hwm, true
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, 0, fmt.Errorf("%s: unexpected %q", name, bytes.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("%s: %w", name, err)
		}
		*dst = kb << 10
	}
	if !gotRSS || !gotHWM {
		return 0, 0, errors.New("no VmRSS or VmHWM")
	}
	return rss, hwm, nil
}

// clockTicks is the kernel's USER_HZ, the unit of /proc/<pid>/stat's
// times, from the auxiliary vector (AT_CLKTCK); 100 when it cannot be read.
func clockTicks() int64 {
	const atClkTck = 17
	b, err := os.ReadFile("/proc/self/auxv")
	if err != nil {
		return 100
	}
	for len(b) >= 16 {
		k, v := binary.NativeEndian.Uint64(b), binary.NativeEndian.Uint64(b[8:])
		if k == atClkTck && v > 0 {
			return int64(v)
		}
		if k == 0 {
			break
		}
		b = b[16:]
	}
	return 100
}

// selfUsage is the generator's own usage: getrusage(RUSAGE_SELF), which
// counts this process only (not its children), and VmRSS.
func selfUsage() usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return usage{}
	}
	u := usage{
		CPU:     time.Duration(ru.Utime.Nano() + ru.Stime.Nano()),
		PeakRSS: ru.Maxrss << 10, // kilobytes on Linux
	}
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		if rss, _, err := parseProcStatus(b); err == nil {
			u.RSS = rss
		}
	}
	return u
}

// hostCPU is the machine's CPU time from /proc/stat's "cpu" line, in clock
// ticks: all of it, and what the hypervisor gave to other guests while this
// one had work (steal). A virtual machine whose host is busy loses CPU
// this way, which the processes' own times cannot show; a run with much of
// it measured a slower machine than the one it names.
type hostCPU struct {
	total, steal int64
	ok           bool
}

func readHostCPU() hostCPU {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}
	}
	h, err := parseHostCPU(b)
	if err != nil {
		return hostCPU{}
	}
	return h
}

// parseHostCPU reads the first line of /proc/stat: "cpu" and the ticks
// spent in user, nice, system, idle, iowait, irq, softirq, steal, ...
// (guest times are counted in user already, so they are not added).
func parseHostCPU(b []byte) (hostCPU, error) {
	line, _, _ := bytes.Cut(b, []byte{'\n'})
	f := bytes.Fields(line)
	if len(f) < 9 || string(f[0]) != "cpu" {
		return hostCPU{}, errors.New("no cpu line with a steal column")
	}
	var h hostCPU
	for i, s := range f[1:9] {
		v, err := strconv.ParseInt(string(s), 10, 64)
		if err != nil {
			return hostCPU{}, fmt.Errorf("cpu field %d: %w", i+1, err)
		}
		h.total += v
		if i == 7 {
			h.steal = v
		}
	}
	h.ok = true
	return h, nil
}

// stealPercent is the share of the machine's CPU time between a and b
// that went to other guests; -1 when unknown.
func stealPercent(a, b hostCPU) float64 {
	if !a.ok || !b.ok || b.total <= a.total {
		return -1
	}
	return 100 * float64(b.steal-a.steal) / float64(b.total-a.total)
}
