// Package state opens dualstack's durable state: one bbolt file in the state
// directory, shared by the IPAM and network drivers, each in its own buckets.
//
// Every change a driver makes is committed before it answers Docker. A bbolt
// commit costs two fsyncs (data pages, then the meta page), which is the
// budget for one allocation.
package state

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
)

// FileName is the name of the state file inside the state directory.
const FileName = "dualstack.db"

// Open opens (creating if needed) the state file in dir. The file is locked
// while open: a second plugin process pointed at the same directory waits up
// to lockTimeout and then fails with an error that says so.
func Open(dir string, lockTimeout time.Duration) (*bolt.DB, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create state directory %s: %w", dir, err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: lockTimeout})
	if err != nil {
		return nil, fmt.Errorf("open state file %s: %w (is another dualstack process using it?)", path, err)
	}
	return db, nil
}
