// Package state keeps dualstack's durable state: one bbolt file in the state
// directory, shared by the IPAM and network drivers, each in its own
// buckets.
//
// The drivers see the file only through Store and Tx: keys in buckets named
// by a path (the IPAM's pools under "ipam", "pools", <pool ID>), changed
// in transactions that commit whole or not at all. No bbolt type leaves
// this package, so a driver can hand a transaction to another (the network
// driver writes an endpoint's record in the transaction that commits its
// addresses) and tests can run on the in-memory store (NewMemory).
//
// Every change a driver makes is committed before it answers Docker. A bbolt
// commit costs two fsyncs (data pages, then the meta page), which is the
// budget for one allocation.
package state

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the name of the state file inside the state directory.
const FileName = "dualstack.db"

// Tx is one transaction. A bucket is named by its path from the root;
// reading a bucket that does not exist finds nothing, and writing creates
// it with its parents. Keys iterate in byte order. A read-only
// transaction refuses writes with ErrReadOnly.
type Tx interface {
	// Get returns the value of key, nil if there is none. It is valid
	// until the transaction ends.
	Get(bucket []string, key []byte) []byte
	Put(bucket []string, key, value []byte) error
	// Delete removes key; a key that is not there is no error.
	Delete(bucket []string, key []byte) error
	// ForEach calls fn with each key and value of bucket (not its child
	// buckets), in key order, until fn fails.
	ForEach(bucket []string, fn func(k, v []byte) error) error
	// Buckets calls fn with the name of each child bucket of bucket, in
	// order, until fn fails.
	Buckets(bucket []string, fn func(name string) error) error
	// HasBucket reports whether bucket exists.
	HasBucket(bucket []string) bool
	// DeleteBucket removes bucket with everything in it; a bucket that
	// is not there is no error.
	DeleteBucket(bucket []string) error
}

// Store is the durable state.
type Store interface {
	// View runs fn in a read-only transaction.
	View(fn func(Tx) error) error
	// Update runs fn in a read-write transaction, committed (durably) if
	// fn returns nil and rolled back otherwise.
	Update(fn func(Tx) error) error
	Close() error
}

// ErrReadOnly is the error of a write in a View.
var ErrReadOnly = errors.New("write in a read-only transaction")

// Open opens (creating if needed) the state file in dir. The file is locked
// while open: a second plugin process pointed at the same directory waits up
// to lockTimeout and then fails with an error that says so.
func Open(dir string, lockTimeout time.Duration) (Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w (is another dualstack process using it?)", path, err)
	}
	return boltStore{db}, nil
}

type boltStore struct{ db *bolt.DB }

func (s boltStore) View(fn func(Tx) error) error {
	return s.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (s boltStore) Update(fn func(Tx) error) error {
	return s.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (s boltStore) Close() error { return s.db.Close() }

type boltTx struct{ tx *bolt.Tx }

// find returns bucket, or nil when it (or a parent) does not exist.
func (t boltTx) find(path []string) *bolt.Bucket {
	if len(path) == 0 {
		return nil
	}
	b := t.tx.Bucket([]byte(path[0]))
	for _, name := range path[1:] {
		if b == nil {
			return nil
		}
		b = b.Bucket([]byte(name))
	}
	return b
}

// make returns bucket, creating it and its parents.
func (t boltTx) make(path []string) (*bolt.Bucket, error) {
	if !t.tx.Writable() {
		return nil, ErrReadOnly
	}
	if len(path) == 0 {
		return nil, errors.New("no bucket named")
	}
	b, err := t.tx.CreateBucketIfNotExists([]byte(path[0]))
	for _, name := range path[1:] {
		if err != nil {
			break
		}
		b, err = b.CreateBucketIfNotExists([]byte(name))
	}
	if err != nil {
		return nil, fmt.Errorf("bucket %v: %w", path, err)
	}
	return b, nil
}

func (t boltTx) Get(path []string, key []byte) []byte {
	if b := t.find(path); b != nil {
		return b.Get(key)
	}
	return nil
}

func (t boltTx) Put(path []string, key, value []byte) error {
	b, err := t.make(path)
	if err != nil {
		return err
	}
	return b.Put(key, value)
}

func (t boltTx) Delete(path []string, key []byte) error {
	if !t.tx.Writable() {
		return ErrReadOnly
	}
	if b := t.find(path); b != nil {
		return b.Delete(key)
	}
	return nil
}

func (t boltTx) ForEach(path []string, fn func(k, v []byte) error) error {
	b := t.find(path)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		if v == nil { // a child bucket
			return nil
		}
		return fn(k, v)
	})
}

func (t boltTx) Buckets(path []string, fn func(name string) error) error {
	b := t.find(path)
	if b == nil {
		return nil
	}
	return b.ForEachBucket(func(k []byte) error { return fn(string(k)) })
}

func (t boltTx) HasBucket(path []string) bool { return t.find(path) != nil }

func (t boltTx) DeleteBucket(path []string) error {
	if !t.tx.Writable() {
		return ErrReadOnly
	}
	if len(path) == 0 || t.find(path) == nil {
		return nil
	}
	if len(path) == 1 {
		return t.tx.DeleteBucket([]byte(path[0]))
	}
	return t.find(path[:len(path)-1]).DeleteBucket([]byte(path[len(path)-1]))
}
