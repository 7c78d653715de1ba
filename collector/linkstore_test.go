package collector

import (
	"context"
	"errors"
	"testing"
	"time"
)

func TestAppliedOffsets(t *testing.T) {
	a := newAppliedOffsets()
	waiting := func(p int32, off int64) chan error {
		done := make(chan error, 1)
		go func() { done <- a.wait(context.Background(), p, off) }()
		return done
	}
	expectPending := func(name string, done chan error) {
		t.Helper()
		select {
		case err := <-done:
			t.Fatalf("%s: wait returned %v early", name, err)
		default:
		}
	}
	expectDone := func(name string, done chan error, want error) {
		t.Helper()
		select {
		case err := <-done:
			if !errors.Is(err, want) {
				t.Fatalf("%s: wait = %v, want %v", name, err, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("%s: wait did not return", name)
		}
	}

	w := waiting(1, 5)
	a.mark(0, 9) // another partition does not count
	a.mark(1, 4)
	expectPending("below offset", w)
	a.mark(1, 5)
	expectDone("offset reached", w, nil)

	expectDone("already applied", waiting(1, 3), nil)
	a.mark(1, 2) // offsets never go back
	expectDone("after a lower mark", waiting(1, 5), nil)

	ctx, cancel := context.WithCancel(context.Background())
	cancelled := make(chan error, 1)
	go func() { cancelled <- a.wait(ctx, 2, 0) }()
	cancel()
	expectDone("cancelled", cancelled, context.Canceled)

	stopped := waiting(3, 0)
	a.stop()
	expectDone("view stopped", stopped, errViewStopped)
	a.mark(3, 1) // after stop: no panic on the closed channel
	expectDone("applied after stop", waiting(3, 1), nil)
}

func TestAccountIndex(t *testing.T) {
	a := newAccountIndex()
	steps := []struct {
		key      string
		had, has bool
		account  string
		want     bool
	}{
		{"acme/spring", false, true, "acme", true},
		{"acme/autumn", false, true, "acme", true},
		{"acme/spring", true, true, "acme", true},   // replaced
		{"acme/spring", true, false, "acme", true},  // deleted, autumn is left
		{"acme/winter", false, false, "acme", true}, // tombstone of a missing link
		{"acme/autumn", true, false, "acme", false}, // the last one
		{"acme-corp/x", false, true, "acme", false}, // a prefix is another account
		{"acme-corp/x", false, true, "acme-corp", true},
	}
	for i, s := range steps {
		a.apply(s.key, s.had, s.has)
		if got := a.has(s.account); got != s.want {
			t.Fatalf("step %d (%s had=%v has=%v): has(%s) = %v, want %v", i, s.key, s.had, s.has, s.account, got, s.want)
		}
	}
	if a.has("") || a.has("acme/") {
		t.Error("has must be false for what is no account")
	}
}
