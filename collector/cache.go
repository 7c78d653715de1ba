package collector

import "sync"

// stringCache remembers values by a string key, for what the request
// paths would otherwise work out again and again from the same input:
// parsed user agents, decoded links, redirect templates. It is bounded: it
// holds at most 2*size entries in two generations. When the current one is
// full it becomes the previous one and the older one is dropped; a key
// found in the previous one is carried over, so the keys in use stay and
// the rest age out.
type stringCache[V any] struct {
	size int

	mu        sync.Mutex
	cur, prev map[string]V
}

func newStringCache[V any](size int) *stringCache[V] {
	size = max(size, 1)
	return &stringCache[V]{size: size, cur: make(map[string]V, size)}
}

// get returns the value under k.
func (c *stringCache[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cur[k]
	if !ok {
		if v, ok = c.prev[k]; ok {
			c.store(k, v)
		}
	}
	return v, ok
}

// getBytes returns the value under string(k), without converting k
// unless the entry is carried over.
func (c *stringCache[V]) getBytes(k []byte) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.cur[string(k)]
	if !ok {
		if v, ok = c.prev[string(k)]; ok {
			c.store(string(k), v)
		}
	}
	return v, ok
}

// put stores v under k.
func (c *stringCache[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.store(k, v)
}

// store adds an entry; c.mu is held.
func (c *stringCache[V]) store(k string, v V) {
	if len(c.cur) >= c.size {
		c.prev, c.cur = c.cur, make(map[string]V, c.size)
	}
	c.cur[k] = v
}

// len is how many entries the cache holds.
func (c *stringCache[V]) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.cur) + len(c.prev)
}
