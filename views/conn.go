package views

import (
	"bufio"
	"bytes"
	"io"
	"net"
	"net/http"
	"sync"
)

// Buffer sizes of a live connection. coder/websocket reads and writes
// through the bufio.Reader and Writer that the hijack returns; net/http's
// are 4 KiB each, kept for the connection's life. Clients send little
// (pongs, a subscribe now and then), so a small read buffer costs nothing.
// Messages are written through corkWriter, one writev each, whatever the
// buffer; control frames (ping, pong, close: at most 127 bytes) still fit
// it whole.
const (
	liveReadBuffer  = 512
	liveWriteBuffer = 128
)

// liveHijacker hands coder/websocket small buffers on hijack, with writes
// through a corkWriter.
type liveHijacker struct {
	http.ResponseWriter
	out *corkWriter
}

// Unwrap lets http.ResponseController reach the ResponseWriter's other
// interfaces.
func (h *liveHijacker) Unwrap() http.ResponseWriter { return h.ResponseWriter }

func (h *liveHijacker) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	var br *bufio.Reader
	if n := brw.Reader.Buffered(); n > 0 {
		// What the client sent after its request is in net/http's buffer:
		// move it into ours.
		early, _ := brw.Reader.Peek(n)
		br = bufio.NewReaderSize(io.MultiReader(bytes.NewReader(bytes.Clone(early)), conn), max(liveReadBuffer, n))
		if _, err := br.Peek(n); err != nil {
			conn.Close()
			return nil, nil, err
		}
	} else {
		br = bufio.NewReaderSize(conn, liveReadBuffer)
	}
	h.out = &corkWriter{conn: conn}
	return conn, bufio.NewReadWriter(br, bufio.NewWriterSize(h.out, liveWriteBuffer)), nil
}

// corkWriter is what a live connection's small bufio.Writer writes to.
// Uncorked, it writes straight through. Between cork(msg) and uncork — the
// writer's Conn.Write of msg — it holds what it is given: the frame header
// and the head of msg (copied out of the bufio buffer) and the rest of msg,
// which bufio hands over directly (by reference: the caller keeps msg
// until uncork). uncork writes it all at once: one writev per message of
// any size, and no buffer the size of a message per connection.
type corkWriter struct {
	conn net.Conn

	mu     sync.Mutex
	corked bool
	msg    []byte // the message being written, while corked
	head   []byte // copied bytes, written first
	tail   []byte // a suffix of msg, written after head
	bufs   [2][]byte
	vec    net.Buffers
}

// isSuffix reports whether p is a suffix of msg, the same memory.
func isSuffix(p, msg []byte) bool {
	return len(p) > 0 && len(p) <= len(msg) && &p[len(p)-1] == &msg[len(msg)-1]
}

func (w *corkWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.corked {
		return w.conn.Write(p)
	}
	if w.tail == nil && isSuffix(p, w.msg) {
		w.tail = p
		return len(p), nil
	}
	if w.tail != nil {
		// Something after the message (a pong, say): what is held goes
		// first.
		if err := w.flushLocked(); err != nil {
			return 0, err
		}
	}
	w.head = append(w.head, p...)
	return len(p), nil
}

// cork starts holding what is written; msg is the message about to be
// written.
func (w *corkWriter) cork(msg []byte) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.corked, w.msg = true, msg
}

// uncork writes what was held and writes through again.
func (w *corkWriter) uncork() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	err := w.flushLocked()
	w.corked, w.msg = false, nil
	if cap(w.head) > 2*liveWriteBuffer {
		w.head = nil // something unusual was held: do not keep it
	}
	return err
}

func (w *corkWriter) flushLocked() error {
	var err error
	switch {
	case w.tail != nil:
		w.bufs = [2][]byte{w.head, w.tail}
		w.vec = w.bufs[:]
		_, err = w.vec.WriteTo(w.conn)
		w.bufs, w.vec = [2][]byte{}, nil
	case len(w.head) > 0:
		_, err = w.conn.Write(w.head)
	}
	w.head, w.tail = w.head[:0], nil
	return err
}
