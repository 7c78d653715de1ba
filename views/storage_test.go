package views

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/lovoo/goka"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// TestStorageDirKeepsTheSessionsTable: with Options.StorageDir the
// sessions table is kept on disk, so a restarted server reads only the
// records that arrived while it was down, and still answers for the
// others.
func TestStorageDirKeepsTheSessionsTable(t *testing.T) {
	timelines := func(from, to int) []*livetabv1.Timeline {
		var tls []*livetabv1.Timeline
		for i := from; i < to; i++ {
			tls = append(tls, &livetabv1.Timeline{Session: fmt.Sprintf("s-%d", i), Account: "demo"})
		}
		return tls
	}
	dir := t.TempDir()
	waitLevelDBClosed(t)
	e := newEnv(t, envOptions{storageDir: dir, before: func(e *env) { e.produceTimelines(timelines(0, 20)...) }})
	if got := e.srv.sessionRecords.Load(); got != 20 {
		t.Fatalf("the first server read %d sessions-table records, want 20", got)
	}
	db := filepath.Join(dir, "views", fmt.Sprintf("%s.0", goka.GroupTable(topics.SessionsGroup)))
	if _, err := os.Stat(db); err != nil {
		t.Fatalf("no leveldb storage where expected: %v", err)
	}

	e.stopRun()
	e.http.Close()
	e.produceTimelines(timelines(20, 25)...)
	e.startServer()
	if got := e.srv.sessionRecords.Load(); got != 5 {
		t.Errorf("the restarted server read %d sessions-table records, want the 5 that arrived while it was down", got)
	}
	// Ready: both tables report every partition recovered, nothing left.
	progress := e.srv.Progress(context.Background())
	if len(progress) != 2 {
		t.Fatalf("progress of %d tables, want 2: %+v", len(progress), progress)
	}
	for _, tp := range progress {
		if tp.Partitions == 0 || tp.Recovered != tp.Partitions || tp.Remaining != 0 {
			t.Errorf("progress when ready: %+v, want every partition recovered", tp)
		}
	}
	for _, session := range []string{"s-3", "s-19", "s-22"} {
		v, err := e.srv.get(e.srv.sessions, session)
		if err != nil {
			t.Fatal(err)
		}
		if tl, ok := v.(*livetabv1.Timeline); !ok || tl.GetSession() != session {
			t.Errorf("after the restart, session %s reads %v", session, v)
		}
	}
}

// waitLevelDBClosed makes the test wait, when it ends and its server
// stopped (this cleanup is registered before the server's, so runs after
// them), for goleveldb's goroutines to end: they linger up to a second
// after Close, and for ever without it.
func waitLevelDBClosed(tb testing.TB) {
	tb.Cleanup(func() {
		waitFor(tb, 10*time.Second, "the leveldb storage to be closed", func() bool {
			buf := make([]byte, 1<<20)
			return !bytes.Contains(buf[:runtime.Stack(buf, true)], []byte("leveldb.(*DB).mpoolDrain"))
		})
	})
}
