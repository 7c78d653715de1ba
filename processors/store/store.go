// Package store is the local storage of livetab's goka tables: goka's
// leveldb layout (one database per topic partition, the table offset under
// goka's "__offset" key), with writes gathered into batches.
//
// goka's own leveldb storage writes every Set, and every table offset once
// the table topic acknowledged a write, as a leveldb write of its own: two
// write system calls per processed record, the largest single cost of the
// processors once their callbacks are cheap. Here Set, Delete and SetOffset
// go to an in-memory overlay that reads see at once, and the overlay is
// written to leveldb as one batch every FlushInterval or every MaxPending
// writes, offset last. A crash loses at most the unwritten overlay, and
// that is what goka recovers anyway: the stored offset only ever covers
// records whose values were written with or before it, so a restart
// catches up from the table topic exactly as after a crash of goka's own
// storage (which, like this one, does not fsync).
package store

import (
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"github.com/lovoo/goka/storage"
	"github.com/syndtr/goleveldb/leveldb"
	ldbiter "github.com/syndtr/goleveldb/leveldb/iterator"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// offsetKey is where goka's leveldb storage keeps the table offset; the
// same key keeps existing data directories readable.
const offsetKey = "__offset"

// Options tune the batching. Zero fields take the defaults.
type Options struct {
	// FlushInterval is the longest a write waits in memory. Default 100 ms.
	FlushInterval time.Duration
	// MaxPending is how many writes (keys set or deleted) the overlay holds
	// before Set writes the batch itself. Default 4,096.
	MaxPending int
}

// Defaults of Options.
const (
	DefaultFlushInterval = 100 * time.Millisecond
	DefaultMaxPending    = 4096
)

// Builder opens a batched leveldb storage per topic partition under dir,
// at the paths goka's storage.DefaultBuilder uses.
func Builder(dir string, opts Options) storage.Builder {
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.MaxPending <= 0 {
		opts.MaxPending = DefaultMaxPending
	}
	return func(topic string, partition int32) (storage.Storage, error) {
		path := filepath.Join(dir, fmt.Sprintf("%s.%d", topic, partition))
		db, err := leveldb.OpenFile(path, nil)
		if err != nil {
			return nil, fmt.Errorf("store: open %s: %w", path, err)
		}
		return newBatched(db, opts), nil
	}
}

// batched is one partition's storage. pending collects writes; while a
// batch is being written its writes move to flushing, so that reads keep
// seeing them until leveldb has them.
type batched struct {
	db   *leveldb.DB
	opts Options

	mu       sync.Mutex
	pending  map[string][]byte // nil value: deleted
	flushing map[string][]byte
	offset   int64
	hasOff   bool // offset set since the last batch
	err      error

	writeMu sync.Mutex     // one batch write at a time, in order
	batch   *leveldb.Batch // reused under writeMu: its buffer need not grow again for every flush
	stop    chan struct{}
	done    chan struct{}
	opened  bool
	closed  bool
}

// maxReusedBatch is the largest batch buffer a partition keeps between
// flushes.
const maxReusedBatch = 1 << 20

func newBatched(db *leveldb.DB, opts Options) *batched {
	return &batched{db: db, opts: opts, pending: map[string][]byte{}, stop: make(chan struct{}), done: make(chan struct{})}
}

// deleted marks a key deleted in the overlay; a distinct empty slice would
// be a stored empty value.
var deleted []byte

// Open starts the flusher; until then writes wait for MaxPending or
// Close.
func (b *batched) Open() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.opened || b.closed {
		return nil
	}
	b.opened = true
	go b.run()
	return nil
}

func (b *batched) run() {
	defer close(b.done)
	t := time.NewTicker(b.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			// A failed write is kept and returned by the next Set, so the
			// processor fails rather than running on with a table that
			// does not persist.
			_ = b.flush()
		}
	}
}

// flush writes what is pending as one batch, the offset last.
func (b *batched) flush() error {
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	if len(b.pending) == 0 && !b.hasOff {
		b.mu.Unlock()
		return nil
	}
	writes, offset, hasOff := b.pending, b.offset, b.hasOff
	b.flushing, b.pending, b.hasOff = writes, make(map[string][]byte, len(writes)), false
	b.mu.Unlock()

	batch := b.batch
	if batch == nil {
		batch = new(leveldb.Batch)
	}
	batch.Reset()
	for k, v := range writes {
		if v == nil {
			batch.Delete([]byte(k))
		} else {
			batch.Put([]byte(k), v)
		}
	}
	if hasOff {
		batch.Put([]byte(offsetKey), []byte(strconv.FormatInt(offset, 10)))
	}
	err := b.db.Write(batch, nil)
	// A batch grown by a burst (recovery writes up to MaxPending records
	// at once) is not kept: a partition would hold its memory for good.
	b.batch = nil
	if cap(batch.Dump()) <= maxReusedBatch {
		b.batch = batch
	}

	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushing = nil
	if err != nil {
		b.err = fmt.Errorf("store: write batch: %w", err)
		return b.err
	}
	return nil
}

func (b *batched) lookup(key string) (value []byte, found bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if v, ok := b.pending[key]; ok {
		return v, true
	}
	if v, ok := b.flushing[key]; ok {
		return v, true
	}
	return nil, false
}

// Has reports whether key holds a value.
func (b *batched) Has(key string) (bool, error) {
	if v, ok := b.lookup(key); ok {
		return v != nil, nil
	}
	return b.db.Has([]byte(key), nil)
}

// Get returns key's value, nil when it has none.
func (b *batched) Get(key string) ([]byte, error) {
	if v, ok := b.lookup(key); ok {
		return v, nil
	}
	v, err := b.db.Get([]byte(key), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %q: %w", key, err)
	}
	return v, nil
}

// Set stores value under key. goka hands over the value and does not
// change it afterwards.
func (b *batched) Set(key string, value []byte) error {
	if value == nil {
		value = []byte{}
	}
	return b.put(key, value)
}

// Delete removes key.
func (b *batched) Delete(key string) error { return b.put(key, deleted) }

func (b *batched) put(key string, value []byte) error {
	b.mu.Lock()
	if b.err != nil {
		err := b.err
		b.mu.Unlock()
		return err
	}
	b.pending[key] = value
	full := len(b.pending) >= b.opts.MaxPending
	b.mu.Unlock()
	if full {
		return b.flush()
	}
	return nil
}

// GetOffset is the table offset last set, or the stored one, or def.
func (b *batched) GetOffset(def int64) (int64, error) {
	b.mu.Lock()
	if b.hasOff {
		o := b.offset
		b.mu.Unlock()
		return o, nil
	}
	b.mu.Unlock()
	// A batch being written may hold a newer offset: wait for it.
	b.writeMu.Lock()
	defer b.writeMu.Unlock()
	data, err := b.db.Get([]byte(offsetKey), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return def, nil
	}
	if err != nil {
		return 0, fmt.Errorf("store: get offset: %w", err)
	}
	o, err := strconv.ParseInt(string(data), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("store: decode offset %q: %w", data, err)
	}
	return o, nil
}

// SetOffset records the table offset the stored values reflect; it is
// written with the next batch, after the values set before it.
func (b *batched) SetOffset(offset int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.offset, b.hasOff = offset, true
	return b.err
}

// MarkRecovered writes what recovery gathered.
func (b *batched) MarkRecovered() error { return b.flush() }

// Iterator iterates over every stored key but the offset, writes pending
// at the call included.
func (b *batched) Iterator() (storage.Iterator, error) {
	return b.IteratorWithRange(nil, nil)
}

// IteratorWithRange iterates over [start, limit), or over the keys with
// prefix start when limit is empty, like goka's leveldb storage.
func (b *batched) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	if err := b.flush(); err != nil {
		return nil, err
	}
	var r *util.Range
	switch {
	case len(limit) > 0:
		r = &util.Range{Start: start, Limit: limit}
	case len(start) > 0:
		r = util.BytesPrefix(start)
	}
	return &iterator{it: b.db.NewIterator(r, nil)}, nil
}

// Close writes what is pending and closes the database.
func (b *batched) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	opened := b.opened
	b.mu.Unlock()
	close(b.stop)
	if opened {
		<-b.done
	}
	ferr := b.flush()
	return errors.Join(ferr, b.db.Close())
}

// iterator skips the offset key, as goka's does.
type iterator struct{ it ldbiter.Iterator }

func (i *iterator) Next() bool {
	for i.it.Next() {
		if string(i.it.Key()) != offsetKey {
			return true
		}
	}
	return false
}
func (i *iterator) Err() error             { return i.it.Error() }
func (i *iterator) Key() []byte            { return i.it.Key() }
func (i *iterator) Value() ([]byte, error) { return i.it.Value(), nil }
func (i *iterator) Release()               { i.it.Release() }
func (i *iterator) Seek(key []byte) bool   { return i.it.Seek(key) }
