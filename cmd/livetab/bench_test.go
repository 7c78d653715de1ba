package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestScanScenario(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, "throughput"},
		{[]string{"--duration", "5s"}, "throughput"},
		{[]string{"--scenario", "fanout"}, "fanout"},
		{[]string{"-scenario=restart", "--duration", "1s"}, "restart"},
		{[]string{"--duration", "1s", "--scenario=smoke"}, "smoke"},
		{[]string{"--scenario"}, "throughput"},
	}
	for _, tt := range tests {
		if got := scanScenario(tt.args); got != tt.want {
			t.Errorf("scanScenario(%q) = %q, want %q", tt.args, got, tt.want)
		}
	}
}

func TestBenchCommandUsage(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		code     int
		inStderr string
	}{
		{"help shows the scenario's defaults", []string{"bench", "--scenario", "fanout", "--help"}, 0, "-hot-subs int\n    \tmore subscribers on the hot account (default 1000)"},
		{"unknown scenario", []string{"bench", "--scenario", "nope"}, 2, `unknown scenario "nope"`},
		{"bad flag", []string{"bench", "--no-such-flag"}, 2, "flag provided but not defined"},
		{"invalid options", []string{"bench", "--batch", "500"}, 1, "batch must be between 1 and 100"},
		{"remote needs a secret", []string{"bench", "--url", "http://127.0.0.1:1"}, 1, "secret"},
		{"sut needs a data dir", []string{"bench", "sut"}, 2, "--data-dir is required"},
		{"repeat at least once", []string{"bench", "--repeat", "0"}, 2, "--repeat must be at least 1"},
		{"invalid options, repeated", []string{"bench", "--repeat", "2", "--batch", "500"}, 1, "batch must be between 1 and 100"},
	}
	t.Setenv("LIVETAB_SECRET", "")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.inStderr)
			}
		})
	}
}
