package views

import (
	"slices"
	"sort"
)

// ring is an account's history: its newest items (the newest version of
// each), by cursor, oldest first, at most max of them. Cursors are
// usually consecutive; recovering a partly compacted view topic may leave
// gaps, which resume checks for.
type ring struct {
	max   int
	items []*update
	bytes int // the items' sizes, summed
}

func (r *ring) len() int { return len(r.items) }

// oldest and newest are the first and last cursors held, 0 when empty.
func (r *ring) oldest() uint64 {
	if len(r.items) == 0 {
		return 0
	}
	return r.items[0].cursor
}

func (r *ring) newest() uint64 {
	if len(r.items) == 0 {
		return 0
	}
	return r.items[len(r.items)-1].cursor
}

// search returns the index of the first item with a cursor >= c.
func (r *ring) search(c uint64) int {
	return sort.Search(len(r.items), func(i int) bool { return r.items[i].cursor >= c })
}

// get returns the version held of cursor c, nil if none.
func (r *ring) get(c uint64) *update {
	if i := r.search(c); i < len(r.items) && r.items[i].cursor == c {
		return r.items[i]
	}
	return nil
}

// put stores u as the newest version of its cursor, evicting the oldest
// item beyond max, and returns the change in bytes held. An item older
// than every item of a full ring is not stored.
func (r *ring) put(u *update) int {
	before := r.bytes
	n := len(r.items)
	switch i := r.search(u.cursor); {
	case i == n:
		r.items = append(r.items, u)
		r.bytes += u.size
	case r.items[i].cursor == u.cursor:
		r.bytes += u.size - r.items[i].size
		r.items[i] = u
		return r.bytes - before
	case i == 0 && n >= r.max:
		return 0
	default:
		r.items = slices.Insert(r.items, i, u)
		r.bytes += u.size
	}
	if extra := len(r.items) - r.max; extra > 0 {
		r.drop(extra)
	}
	return r.bytes - before
}

// trim drops the oldest items beyond keep and returns the bytes freed.
func (r *ring) trim(keep int) int {
	before := r.bytes
	if extra := len(r.items) - keep; extra > 0 {
		r.drop(extra)
	}
	return before - r.bytes
}

func (r *ring) drop(n int) {
	for _, u := range r.items[:n] {
		r.bytes -= u.size
	}
	clear(r.items[:n])
	r.items = r.items[n:]
}

// after returns the items with a cursor above c, and whether they are
// every cursor from c+1 to the newest (no gap, nothing evicted).
func (r *ring) after(c uint64) ([]*update, bool) {
	i := r.search(c + 1)
	rest := r.items[i:]
	if len(rest) == 0 {
		return nil, true
	}
	return rest, rest[0].cursor == c+1 && uint64(len(rest)) == rest[len(rest)-1].cursor-c
}

// pairs are the session pairings an account's conversions made, learned
// from conversion items and converted_with marks: each session maps to
// the sessions it is paired with (usually one). The oldest pairings go
// beyond max.
type pairs struct {
	max      int
	partners map[string][]string
	order    [][2]string
}

// add records that a and b are paired.
func (p *pairs) add(a, b string) {
	if a == "" || b == "" || a == b || p.paired(a, b) {
		return
	}
	if p.partners == nil {
		p.partners = make(map[string][]string)
	}
	p.partners[a] = append(p.partners[a], b)
	p.partners[b] = append(p.partners[b], a)
	p.order = append(p.order, [2]string{a, b})
	if len(p.order) > p.max {
		old := p.order[0]
		p.order[0] = [2]string{}
		p.order = p.order[1:]
		p.unlink(old[0], old[1])
		p.unlink(old[1], old[0])
	}
}

func (p *pairs) unlink(a, b string) {
	l := slices.DeleteFunc(p.partners[a], func(x string) bool { return x == b })
	if len(l) == 0 {
		delete(p.partners, a)
		return
	}
	p.partners[a] = l
}

// paired reports whether a conversion paired a with b.
func (p *pairs) paired(a, b string) bool {
	for _, x := range p.partners[a] {
		if x == b {
			return true
		}
	}
	return false
}

// anyKept reports whether a session paired with s is in the sample.
func (p *pairs) anyKept(s string, thr uint64) bool {
	for _, x := range p.partners[s] {
		if kept(x, thr) {
			return true
		}
	}
	return false
}
