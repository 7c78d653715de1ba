package views

import (
	"bytes"
	"slices"
	"sync"

	"github.com/lovoo/goka/storage"
)

// mapStorage is an in-memory goka storage backed by a plain map.
//
// goka's storage.NewMemory keeps a sorted key slice and re-sorts it on every
// new key, which makes recovering a table of many keys (the sessions table
// holds every session) quadratic. Views here only Get by key, so the map
// pays for ordering only when something iterates.
type mapStorage struct {
	mu     sync.RWMutex
	values map[string][]byte
	offset int64
	hasOff bool
}

// mapBuilder builds a mapStorage per partition.
func mapBuilder() storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		return &mapStorage{values: make(map[string][]byte)}, nil
	}
}

func (m *mapStorage) Open() error          { return nil }
func (m *mapStorage) Close() error         { return nil }
func (m *mapStorage) MarkRecovered() error { return nil }

func (m *mapStorage) Has(key string) (bool, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.values[key]
	return ok, nil
}

func (m *mapStorage) Get(key string) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.values[key], nil
}

func (m *mapStorage) Set(key string, value []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.values[key] = value
	return nil
}

func (m *mapStorage) Delete(key string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.values, key)
	return nil
}

func (m *mapStorage) GetOffset(def int64) (int64, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.hasOff {
		return def, nil
	}
	return m.offset, nil
}

func (m *mapStorage) SetOffset(offset int64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.offset, m.hasOff = offset, true
	return nil
}

func (m *mapStorage) Iterator() (storage.Iterator, error) {
	return m.IteratorWithRange(nil, nil)
}

// IteratorWithRange iterates over a sorted copy of the pairs with keys in
// [start, limit); a nil bound is open.
func (m *mapStorage) IteratorWithRange(start, limit []byte) (storage.Iterator, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	it := &sliceIter{pos: -1}
	for k, v := range m.values {
		kb := []byte(k)
		if (start != nil && bytes.Compare(kb, start) < 0) || (limit != nil && bytes.Compare(kb, limit) >= 0) {
			continue
		}
		it.pairs = append(it.pairs, pair{kb, v})
	}
	slices.SortFunc(it.pairs, func(a, b pair) int { return bytes.Compare(a.key, b.key) })
	return it, nil
}

type pair struct{ key, value []byte }

// sliceIter iterates over a sorted snapshot of pairs.
type sliceIter struct {
	pairs []pair
	pos   int
}

func (i *sliceIter) Next() bool {
	if i.pos < len(i.pairs) {
		i.pos++
	}
	return i.pos < len(i.pairs)
}

func (i *sliceIter) Err() error { return nil }

func (i *sliceIter) valid() bool { return i.pos >= 0 && i.pos < len(i.pairs) }

func (i *sliceIter) Key() []byte {
	if !i.valid() {
		return nil
	}
	return i.pairs[i.pos].key
}

func (i *sliceIter) Value() ([]byte, error) {
	if !i.valid() {
		return nil, nil
	}
	return i.pairs[i.pos].value, nil
}

func (i *sliceIter) Release() { i.pos = len(i.pairs) }

// Seek positions the iterator just before the first key >= key, so that
// the following Next lands on it.
func (i *sliceIter) Seek(key []byte) bool {
	n, _ := slices.BinarySearchFunc(i.pairs, key, func(p pair, k []byte) int { return bytes.Compare(p.key, k) })
	i.pos = n - 1
	return n < len(i.pairs)
}

// offsetStorage keeps nothing but a partition's offset. The view of
// topics.View needs no more: its items live in the hub's history, and
// nothing reads them from goka.
type offsetStorage struct {
	mu     sync.Mutex
	offset int64
	hasOff bool
}

// offsetBuilder builds an offsetStorage per partition.
func offsetBuilder() storage.Builder {
	return func(topic string, partition int32) (storage.Storage, error) {
		return &offsetStorage{}, nil
	}
}

func (o *offsetStorage) Open() error                         { return nil }
func (o *offsetStorage) Close() error                        { return nil }
func (o *offsetStorage) MarkRecovered() error                { return nil }
func (o *offsetStorage) Has(string) (bool, error)            { return false, nil }
func (o *offsetStorage) Get(string) ([]byte, error)          { return nil, nil }
func (o *offsetStorage) Set(string, []byte) error            { return nil }
func (o *offsetStorage) Delete(string) error                 { return nil }
func (o *offsetStorage) Iterator() (storage.Iterator, error) { return &sliceIter{pos: -1}, nil }
func (o *offsetStorage) IteratorWithRange(_, _ []byte) (storage.Iterator, error) {
	return &sliceIter{pos: -1}, nil
}

func (o *offsetStorage) GetOffset(def int64) (int64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.hasOff {
		return def, nil
	}
	return o.offset, nil
}

func (o *offsetStorage) SetOffset(offset int64) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.offset, o.hasOff = offset, true
	return nil
}
