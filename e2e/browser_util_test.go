package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath finds a Chromium to drive: LIVETAB_CHROMIUM, else the usual
// names on PATH (Debian's package is "chromium").
func chromiumPath() string {
	if p := os.Getenv("LIVETAB_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome-stable", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// tab is one page of a headless Chromium that lives as long as the test.
type tab struct {
	t   *testing.T
	ctx context.Context

	mu      sync.Mutex
	console []chromedp.ConsoleMessage
}

// newTab starts a headless Chromium with a fresh profile and opens a blank
// tab. Without a Chromium the test is skipped — unless CI is set, where a
// missing browser is a broken machine, not a reason to skip.
func newTab(t *testing.T, width, height int) *tab {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium found, and CI is set: .ci/run installs Debian's chromium; set LIVETAB_CHROMIUM to use another")
		}
		t.Skip("no Chromium found (apt-get install chromium, or set LIVETAB_CHROMIUM): skipping the browser test")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.NoSandbox, // CI runs as root, where Chromium's sandbox cannot start
		chromedp.DisableGPU,
		// This machine reaches no internet: keep Chromium from trying.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.WindowSize(width, height),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	tb := &tab{t: t, ctx: ctx}

	// The first action starts the browser and ties it to the context it
	// gets: that must be ctx itself, not one with a timeout that would
	// kill the browser when it ends. Starting is bounded by chromedp's own
	// 20 s wait for the browser's DevTools address.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(int64(width), int64(height))); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("start Chromium %s: %v", path, err)
	}

	// Collect what the page logs, to fail on script errors and to explain a
	// failed wait.
	messages := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			tb.mu.Lock()
			tb.console = append(tb.console, m)
			tb.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
		<-done
	})
	return tb
}

// navigate opens url in the tab.
func (tb *tab) navigate(url string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		tb.t.Fatalf("navigate to %s: %v", redactToken(url), err)
	}
}

// eval evaluates a JavaScript expression and decodes its value into T.
func eval[T any](tb *tab, expr string) T {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		tb.t.Fatalf("evaluate %s: %v\n%s", expr, err, tb.describe())
	}
	return v
}

// waitFor waits until the JavaScript expression is truthy in the page, or
// fails the test after timeout with what the page shows.
func (tb *tab) waitFor(what string, timeout time.Duration, expr string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, timeout+10*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](expr,
		chromedp.WithPollingTimeout(timeout), chromedp.WithPollingInterval(50*time.Millisecond)))
	if err != nil {
		tb.t.Fatalf("waiting %s for %s: %v\n%s", timeout, what, err, tb.describe())
	}
}

// click clicks the first element matching the CSS selector.
func (tb *tab) click(what, selector string) {
	tb.t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(selector), chromedp.NodeVisible)); err != nil {
		tb.t.Fatalf("click %s (%s): %v\n%s", what, selector, err, tb.describe())
	}
}

// describe summarises the page for a failure message: the connection
// state, the notice, the rows and the timeline panel, and the console.
func (tb *tab) describe() string {
	ctx, cancel := context.WithTimeout(tb.ctx, 5*time.Second)
	defer cancel()
	summary, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		const q = (s) => document.querySelector(s);
		const rows = [...document.querySelectorAll("#feed li[data-cursor]")].slice(0, 20)
			.map((li) => "  #" + li.dataset.cursor + " " + li.dataset.kind + " " + li.dataset.session + ": " + li.innerText.replace(/\s+/g, " "));
		const tl = [...document.querySelectorAll("[data-testid=timeline-entry]")]
			.map((li) => "  " + li.dataset.kind + " " + li.dataset.session + " (" + li.dataset.role + ")");
		return "connection: " + (q("#state") ? q("#state").dataset.state + " / " + q("#state").innerText : "?") +
			"\nnotice: " + (q("#notice") && !q("#notice").hidden ? q("#notice").innerText : "") +
			"\nurl: " + location.pathname + "?" + [...new URLSearchParams(location.search).keys()].join("&") +
			"\nrows (" + document.querySelectorAll("#feed li[data-cursor]").length + "):\n" + rows.join("\n") +
			"\ntimeline panel: " + (q("#panel") && !q("#panel").hidden ? q("#panel").dataset.session + " paired " + (q("#panel").dataset.pairedSession || "-") + "; " + (q("#panel-msg") ? q("#panel-msg").innerText : "") : "closed") +
			"\n" + tl.join("\n");
	})()`))
	if err != nil {
		summary = "page state unavailable: " + err.Error()
	}
	var b strings.Builder
	b.WriteString(summary)
	b.WriteString("\nconsole:\n")
	for _, m := range tb.messages() {
		fmt.Fprintf(&b, "  %s %s %s\n", m.Type, m.Source, m.Text)
	}
	return b.String()
}

func (tb *tab) messages() []chromedp.ConsoleMessage {
	tb.mu.Lock()
	defer tb.mu.Unlock()
	return append([]chromedp.ConsoleMessage(nil), tb.console...)
}

// checkConsole fails the test on an uncaught exception, an error the page's
// script logged, or a Content-Security-Policy violation. Network errors
// (the socket failing while the server restarts) are expected.
func (tb *tab) checkConsole() {
	tb.t.Helper()
	for _, m := range tb.messages() {
		csp := strings.Contains(m.Text, "Content Security Policy")
		if m.IsException() || csp || (m.Type == chromedp.ConsoleError && m.Source == "") {
			tb.t.Errorf("page console: %s %s %s (%s:%d)", m.Type, m.Source, m.Text, m.URL, m.Line)
		}
	}
}

// js quotes a Go string as a JavaScript string literal.
func js(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// freeAddr picks a free port on 127.0.0.1, so that a restarted system can
// listen on the same address and the page can reconnect to it.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func redactToken(u string) string {
	if i := strings.Index(u, "token="); i >= 0 {
		return u[:i] + "token=…"
	}
	return u
}
