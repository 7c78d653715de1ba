package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/livetab/livetab/codecs"
	"github.com/livetab/livetab/topics"
)

func TestRunExitCodes(t *testing.T) {
	t.Setenv("LIVETAB_BROKERS", "")
	tests := []struct {
		name     string
		args     []string
		code     int
		inStdout string
		inStderr string
	}{
		{"no command", nil, 2, "", "Commands:"},
		{"help", []string{"help"}, 0, "Commands:", ""},
		{"unknown command", []string{"frobnicate"}, 2, "", `unknown command "frobnicate"`},
		{"dev help", []string{"dev", "--help"}, 0, "", "-data-dir"},
		{"bad flag", []string{"dev", "--no-such-flag"}, 2, "", "flag provided but not defined"},
		{"stray argument", []string{"dev", "extra"}, 2, "", "unexpected arguments"},
		{"collect needs brokers", []string{"collect"}, 2, "", "no brokers"},
		{"process needs brokers", []string{"process"}, 2, "", "no brokers"},
		{"bad partitions", []string{"serve", "--brokers", "x:9092", "--partitions", "0"}, 2, "", "--partitions"},
		{"bad proxy", []string{"collect", "--brokers", "x:9092", "--trusted-proxies", "10.0.0.0/99"}, 2, "", "bad --trusted-proxies"},
		{"bad log level", []string{"dev", "--log-level", "loud"}, 2, "", "bad --log-level"},
		{"bad produce timeout", []string{"collect", "--brokers", "x:9092", "--produce-timeout", "0s"}, 2, "", "--produce-timeout"},
		{"bad grace", []string{"process", "--brokers", "x:9092", "--grace", "-1s"}, 2, "", "--grace"},
		{"bad background wait", []string{"process", "--brokers", "x:9092", "--background-wait", "-1ms"}, 2, "", "--background-wait"},
		{"dev help names the background wait", []string{"dev", "--help"}, 0, "", "-background-wait"},
		{"token needs account", []string{"token"}, 2, "", "--account is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tt.args, &stdout, &stderr)
			if code != tt.code {
				t.Errorf("exit code %d, want %d; stderr: %s", code, tt.code, stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.inStdout) {
				t.Errorf("stdout %q does not contain %q", stdout.String(), tt.inStdout)
			}
			if !strings.Contains(stderr.String(), tt.inStderr) {
				t.Errorf("stderr %q does not contain %q", stderr.String(), tt.inStderr)
			}
		})
	}
}

func TestTokenCommand(t *testing.T) {
	t.Setenv("LIVETAB_SECRET", "cmd-test-secret")
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"token", "--account", "acme", "--admin"}, &stdout, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	c, err := codecs.ParseToken([]byte("cmd-test-secret"), strings.TrimSpace(stdout.String()))
	if err != nil {
		t.Fatal(err)
	}
	if c.Account != "acme" || !c.Admin || c.Expires.IsZero() {
		t.Fatalf("claims = %+v", c)
	}
}

func TestTokenCommandUsesDevSecret(t *testing.T) {
	t.Setenv("LIVETAB_SECRET", "")
	dir := t.TempDir()
	var out1, out2, stderr bytes.Buffer
	if code := run(context.Background(), []string{"token", "--account", "demo", "--data-dir", dir}, &out1, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if code := run(context.Background(), []string{"token", "--account", "demo", "--data-dir", dir}, &out2, &stderr); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	// Both tokens must verify with the one secret kept in the data dir.
	secret := readSecret(t, dir)
	for _, tok := range []string{out1.String(), out2.String()} {
		if _, err := codecs.ParseToken(secret, strings.TrimSpace(tok)); err != nil {
			t.Fatalf("token not signed with the data dir's secret: %v", err)
		}
	}
}

func TestBackgroundPace(t *testing.T) {
	tests := []struct {
		wait time.Duration
		want topics.Pace
	}{
		{topics.DefaultBackgroundFetchWait, topics.Pace{FetchWait: topics.DefaultBackgroundFetchWait, FetchBytes: topics.DefaultBackgroundFetchBytes, Linger: topics.DefaultBackgroundLinger}},
		{100 * time.Millisecond, topics.Pace{FetchWait: 100 * time.Millisecond, FetchBytes: topics.DefaultBackgroundFetchBytes, Linger: 20 * time.Millisecond}},
		{0, topics.Pace{FetchBytes: 1}},
	}
	for _, tt := range tests {
		if got := backgroundPace(tt.wait); got != tt.want {
			t.Errorf("backgroundPace(%v) = %+v, want %+v", tt.wait, got, tt.want)
		}
	}
}
