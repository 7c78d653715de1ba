package views

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/coder/websocket"

	"github.com/livetab/livetab/codecs/livetabv1"
	"github.com/livetab/livetab/topics"
)

// clientMessageLimit bounds a client frame; clients send little (a later
// version adds subscribe and filter messages).
const clientMessageLimit = 16 << 10

// handleLive is GET /v1/live?account=A[&token=T]: a WebSocket that sends
// the account's snapshot, then every new item and every new version of an
// item the client has. Authentication and readiness are answered with
// plain HTTP errors before any upgrade.
func (s *Server) handleLive(w http.ResponseWriter, r *http.Request) {
	account, ok := s.authorize(w, r)
	if !ok {
		return
	}
	if !s.beginStream() {
		writeNotReady(w)
		return
	}
	defer s.streams.Done()

	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		// Accept already answered the request.
		s.log.Debug("live: websocket upgrade failed", "account", account, "error", err)
		return
	}
	defer c.CloseNow()
	err = s.stream(r.Context(), c, account)
	switch {
	case err == nil, errors.Is(err, context.Canceled),
		websocket.CloseStatus(err) == websocket.StatusNormalClosure,
		websocket.CloseStatus(err) == websocket.StatusGoingAway:
		s.log.Debug("live: connection ended", "account", account, "error", err)
	default:
		s.log.Info("live: connection ended", "account", account, "error", err)
	}
}

// stream runs one live connection until the client leaves, the hub drops
// it, or a write fails.
func (s *Server) stream(ctx context.Context, c *websocket.Conn, account string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	// Subscribe before reading the snapshot: whatever is stored after the
	// snapshot's reads is then in the queue.
	sub := s.hub.subscribe(account, s.queueSize)
	defer s.hub.unsubscribe(sub)

	// Keep reading so that pings, pongs and the close handshake work; the
	// read loop ends when the connection closes.
	c.SetReadLimit(clientMessageLimit)
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		defer cancel()
		s.readClient(ctx, c)
	}()
	defer func() {
		c.CloseNow()
		<-readDone
	}()

	snap, pos, err := s.snapshot(account, sub)
	if err != nil {
		c.Close(websocket.StatusInternalError, "snapshot failed")
		return err
	}
	if err := s.write(ctx, c, snap); err != nil {
		return err
	}

	ping := time.NewTicker(s.pingInterval)
	defer ping.Stop()
	for {
		select {
		case <-sub.done:
			return s.closeWith(c, sub.reason)
		case <-ctx.Done():
			return ctx.Err()
		case <-ping.C:
			pctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
			err := c.Ping(pctx)
			cancel()
			if err != nil {
				return fmt.Errorf("ping: %w", err)
			}
		case u := <-sub.queue:
			// A dropped subscriber gets nothing more than the close frame.
			select {
			case <-sub.done:
				return s.closeWith(c, sub.reason)
			default:
			}
			if frame := pos.frame(u); frame != nil {
				if err := s.write(ctx, c, frame); err != nil {
					return err
				}
			}
		}
	}
}

// readClient reads and, for now, ignores the client's frames.
func (s *Server) readClient(ctx context.Context, c *websocket.Conn) {
	for {
		if _, _, err := c.Read(ctx); err != nil {
			return
		}
	}
}

func (s *Server) closeWith(c *websocket.Conn, r closeReason) error {
	err := c.Close(r.code, r.text)
	return errors.Join(fmt.Errorf("closed: %s", r.text), err)
}

func (s *Server) write(ctx context.Context, c *websocket.Conn, frame []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.writeTimeout)
	defer cancel()
	return c.Write(ctx, websocket.MessageText, frame)
}

// position is what a connection's client has: every cursor in [lo, hi]
// (0 when it has nothing yet).
type position struct{ lo, hi uint64 }

// frame is u's frame for the client: an item beyond what it has, an update
// of one it has, or nil for an older item it never had.
func (p *position) frame(u *update) []byte {
	switch {
	case u.cursor > p.hi:
		if p.lo == 0 {
			p.lo = u.cursor
		}
		p.hi = u.cursor
		return liveFrame("item", u.json)
	case u.cursor >= p.lo:
		return liveFrame("update", u.json)
	}
	return nil
}

// liveFrame wraps an encoded item: {"type":typ,"item":item}. typ is one of
// the constant frame types, so no escaping is needed.
func liveFrame(typ string, item rawJSON) []byte {
	b := make([]byte, 0, len(item)+32)
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","item":`...)
	b = append(b, item...)
	return append(b, '}')
}

// snapshot returns account's snapshot frame, oldest item first, and the
// position it leaves the client in.
//
// The 100 slots are read one by one while the view keeps storing, so a
// slot may be read just before its newer item is stored while a later
// slot is read after its own newer item was: the snapshot would skip an
// item older than its newest. Every item stored after the subscription is
// in sub's queue, so the queue's current content is merged in (newest
// version last) and live frames resume from there.
func (s *Server) snapshot(account string, sub *subscriber) ([]byte, position, error) {
	return s.snapshotFrom(account, sub, func(slot uint64) (any, error) {
		return s.get(s.items, topics.ViewKey(account, slot))
	})
}

// snapshotFrom builds the snapshot from the slots read returns.
func (s *Server) snapshotFrom(account string, sub *subscriber, read func(slot uint64) (any, error)) ([]byte, position, error) {
	got := make(map[uint64]*update, topics.ViewSlots)
	for slot := range uint64(topics.ViewSlots) {
		v, err := read(slot)
		if errors.Is(err, errNotReady) {
			return nil, position{}, fmt.Errorf("snapshot of %q: %w", account, err)
		}
		if err != nil {
			// A record that does not decode must not hide the others.
			s.log.Warn("snapshot: skipping view slot", "account", account, "slot", slot, "error", err)
			continue
		}
		it, ok := v.(*livetabv1.ViewItem)
		if !ok || it == nil {
			continue
		}
		u, err := newUpdate(it, account)
		if err != nil {
			s.log.Warn("snapshot: skipping view item", "account", account, "slot", slot, "error", err)
			continue
		}
		got[u.cursor] = u
	}
drain:
	for {
		select {
		case u := <-sub.queue:
			got[u.cursor] = u
		default:
			break drain
		}
	}

	cursors := slices.Sorted(maps.Keys(got))
	if len(cursors) > topics.ViewSlots {
		cursors = cursors[len(cursors)-topics.ViewSlots:]
	}
	f := snapshotFrame{Type: "snapshot", Account: account, Items: make([]rawJSON, 0, len(cursors))}
	var pos position
	for _, c := range cursors {
		f.Items = append(f.Items, got[c].json)
	}
	if n := len(cursors); n > 0 {
		pos = position{lo: cursors[0], hi: cursors[n-1]}
		// The newest item carries the account's latest counters.
		f.Counters = got[pos.hi].counters
	}
	b, err := json.Marshal(f)
	if err != nil {
		return nil, position{}, fmt.Errorf("snapshot of %q: %w", account, err)
	}
	return b, pos, nil
}

// newUpdate checks and encodes one view item of account.
func newUpdate(it *livetabv1.ViewItem, account string) (*update, error) {
	if it.GetAccount() != account {
		return nil, fmt.Errorf("item of account %q stored under account %q", it.GetAccount(), account)
	}
	if it.GetCursor() == 0 {
		return nil, errors.New("item without cursor")
	}
	b, err := json.Marshal(encodeItem(it))
	if err != nil {
		return nil, fmt.Errorf("encode item %d: %w", it.GetCursor(), err)
	}
	return &update{cursor: it.GetCursor(), counters: encodeCounters(it.GetCounters()), json: b}, nil
}
