package state

import (
	"errors"
	"slices"
	"strings"
	"sync"
)

// NewMemory returns a Store that lives in memory, for tests: transactions
// are serialised and a failed Update leaves nothing behind, as in the
// state file.
func NewMemory() Store { return &memStore{root: newMemBucket()} }

type memBucket struct {
	keys     map[string][]byte
	children map[string]*memBucket
}

func newMemBucket() *memBucket {
	return &memBucket{keys: map[string][]byte{}, children: map[string]*memBucket{}}
}

func (b *memBucket) clone() *memBucket {
	c := newMemBucket()
	for k, v := range b.keys {
		c.keys[k] = slices.Clone(v)
	}
	for k, v := range b.children {
		c.children[k] = v.clone()
	}
	return c
}

type memStore struct {
	mu     sync.RWMutex
	root   *memBucket
	closed bool
}

var errClosed = errors.New("state store is closed")

func (s *memStore) View(fn func(Tx) error) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return errClosed
	}
	return fn(&memTx{root: s.root})
}

func (s *memStore) Update(fn func(Tx) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	work := s.root.clone()
	if err := fn(&memTx{root: work, writable: true}); err != nil {
		return err
	}
	s.root = work
	return nil
}

func (s *memStore) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}

type memTx struct {
	root     *memBucket
	writable bool
}

func (t *memTx) find(path []string, create bool) *memBucket {
	if len(path) == 0 {
		return nil
	}
	b := t.root
	for _, name := range path {
		c := b.children[name]
		if c == nil {
			if !create {
				return nil
			}
			c = newMemBucket()
			b.children[name] = c
		}
		b = c
	}
	return b
}

func (t *memTx) Get(path []string, key []byte) []byte {
	if b := t.find(path, false); b != nil {
		return b.keys[string(key)]
	}
	return nil
}

func (t *memTx) Put(path []string, key, value []byte) error {
	if !t.writable {
		return ErrReadOnly
	}
	if len(path) == 0 {
		return errors.New("no bucket named")
	}
	t.find(path, true).keys[string(key)] = slices.Clone(value)
	return nil
}

func (t *memTx) Delete(path []string, key []byte) error {
	if !t.writable {
		return ErrReadOnly
	}
	if b := t.find(path, false); b != nil {
		delete(b.keys, string(key))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.SortFunc(out, strings.Compare)
	return out
}

func (t *memTx) ForEach(path []string, fn func(k, v []byte) error) error {
	b := t.find(path, false)
	if b == nil {
		return nil
	}
	for _, k := range sortedKeys(b.keys) {
		if err := fn([]byte(k), b.keys[k]); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTx) Buckets(path []string, fn func(name string) error) error {
	b := t.find(path, false)
	if b == nil {
		return nil
	}
	for _, k := range sortedKeys(b.children) {
		if err := fn(k); err != nil {
			return err
		}
	}
	return nil
}

func (t *memTx) HasBucket(path []string) bool { return t.find(path, false) != nil }

func (t *memTx) DeleteBucket(path []string) error {
	if !t.writable {
		return ErrReadOnly
	}
	if len(path) == 0 {
		return nil
	}
	if parent := t.find(path[:len(path)-1], false); len(path) == 1 {
		delete(t.root.children, path[0])
	} else if parent != nil {
		delete(parent.children, path[len(path)-1])
	}
	return nil
}
