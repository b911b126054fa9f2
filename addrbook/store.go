package addrbook

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/state"
)

// Layout of the IPAM buckets in the state file:
//
//	ipam/
//	  host-id                  random ID, used only when /etc/machine-id is empty
//	  pools/<pool ID>/
//	    meta                   poolRecord as JSON
//	    cursor                 last address handed out sequentially
//	    addrs/<address>        owner (endpoint MAC, "gateway", or empty)
//	    owners/<owner>         address, so a retried request finds its answer
//	    sticky/<name>          a container name's reservation (sticky pools)
//
// Addresses are stored as 4 or 16 raw bytes, so bbolt's key order is address
// order and a pool loads as a sorted stream.
const (
	bucketIPAM   = "ipam"
	bucketPools  = "pools"
	bucketAddrs  = "addrs"
	bucketOwners = "owners"
	bucketSticky = "sticky"
)

var (
	keyMeta   = []byte("meta")
	keyCursor = []byte("cursor")
	keyHostID = []byte("host-id")
)

// poolRecord is what is persisted of a pool; the allocator is rebuilt from
// the addrs bucket.
type poolRecord struct {
	Space   string `json:"space"`
	Pool    string `json:"pool"`
	SubPool string `json:"subPool,omitempty"`
	// Default: picked from the default pools.
	Default bool `json:"default,omitempty"`
	// OnLink: carved from this host interface's on-link prefix.
	OnLink string `json:"onLink,omitempty"`
	// StickyHold: a sticky pool (SetSticky), whose reservations last
	// this long (a Go duration) after their endpoint goes.
	StickyHold string `json:"stickyHold,omitempty"`
}

func poolPath(id string, sub ...string) []string {
	return append([]string{bucketIPAM, bucketPools, id}, sub...)
}

// savePool records a new pool.
func savePool(tx state.Tx, p *pool) error {
	if tx.HasBucket(poolPath(p.id)) {
		return fmt.Errorf("record pool %s: it is recorded already", p.id)
	}
	return saveMeta(tx, p)
}

// saveMeta records what p is (poolRecord).
func saveMeta(tx state.Tx, p *pool) error {
	rec := poolRecord{Space: p.space, Pool: p.prefix.String(), Default: p.byDefault, OnLink: p.onLink}
	if p.sub.IsValid() {
		rec.SubPool = p.sub.String()
	}
	if p.sticky != nil {
		rec.StickyHold = p.sticky.hold.String()
	}
	meta, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return tx.Put(poolPath(p.id), keyMeta, meta)
}

// deletePool forgets a pool and every address in it.
func deletePool(tx state.Tx, id string) error {
	return tx.DeleteBucket(poolPath(id))
}

// checkPool fails when pool id is not in the state file.
func checkPool(tx state.Tx, id string) error {
	if !tx.HasBucket(poolPath(id)) {
		return fmt.Errorf("pool %s is missing from the state file", id)
	}
	return nil
}

// saveAddr records addr as held by owner and, when cursor is valid, the new
// sequential cursor.
func saveAddr(tx state.Tx, id string, addr netip.Addr, owner string, cursor netip.Addr) error {
	if err := checkPool(tx, id); err != nil {
		return err
	}
	key := addr.AsSlice()
	if err := tx.Put(poolPath(id, bucketAddrs), key, []byte(owner)); err != nil {
		return err
	}
	if owner != "" {
		if err := tx.Put(poolPath(id, bucketOwners), []byte(owner), key); err != nil {
			return err
		}
	}
	if cursor.IsValid() {
		return tx.Put(poolPath(id), keyCursor, cursor.AsSlice())
	}
	return nil
}

// deleteAddr forgets addr and its owner index entry.
func deleteAddr(tx state.Tx, id string, addr netip.Addr) error {
	if err := checkPool(tx, id); err != nil {
		return err
	}
	key := addr.AsSlice()
	if owner := tx.Get(poolPath(id, bucketAddrs), key); len(owner) > 0 {
		if cur := tx.Get(poolPath(id, bucketOwners), owner); cur != nil && string(cur) == string(key) {
			if err := tx.Delete(poolPath(id, bucketOwners), owner); err != nil {
				return err
			}
		}
	}
	return tx.Delete(poolPath(id, bucketAddrs), key)
}

// ownerOf returns who holds addr in pool id.
func ownerOf(tx state.Tx, id string, addr netip.Addr) string {
	return string(tx.Get(poolPath(id, bucketAddrs), addr.AsSlice()))
}

// addrOf returns the address owner holds in pool id, if any.
func addrOf(tx state.Tx, id, owner string) (netip.Addr, bool) {
	return netip.AddrFromSlice(tx.Get(poolPath(id, bucketOwners), []byte(owner)))
}

// loadPools rebuilds every pool from the state file. A record that cannot be
// read is skipped with a warning rather than stopping the plugin: Docker
// cannot start without its IPAM driver.
func loadPools(tx state.Tx, log logrus.FieldLogger) (map[string]*pool, error) {
	out := map[string]*pool{}
	err := tx.Buckets([]string{bucketIPAM, bucketPools}, func(id string) error {
		p, err := loadPool(tx, id)
		if err != nil {
			log.WithField("pool", id).WithError(err).Warn("skipping unreadable pool record")
			return nil
		}
		if p.id != id {
			log.WithField("pool", id).Warnf("skipping pool record whose meta names pool %s", p.id)
			return nil
		}
		out[id] = p
		return nil
	})
	return out, err
}

func loadPool(tx state.Tx, id string) (*pool, error) {
	var rec poolRecord
	if err := json.Unmarshal(tx.Get(poolPath(id), keyMeta), &rec); err != nil {
		return nil, fmt.Errorf("bad meta: %w", err)
	}
	prefix, err := parsePrefix("pool", rec.Pool)
	if err != nil {
		return nil, err
	}
	var sub netip.Prefix
	if rec.SubPool != "" {
		if sub, err = parsePrefix("ip-range", rec.SubPool); err != nil {
			return nil, err
		}
	}
	p, err := newPool(rec.Space, prefix, sub)
	if err != nil {
		return nil, err
	}
	p.byDefault = rec.Default
	p.onLink = rec.OnLink
	if err := loadSticky(tx, p, rec.StickyHold); err != nil {
		return nil, err
	}
	err = tx.ForEach(poolPath(id, bucketAddrs), func(k, _ []byte) error {
		a, ok := netip.AddrFromSlice(k)
		if !ok {
			return fmt.Errorf("bad address key %x", k)
		}
		return p.alloc.Reserve(a)
	})
	if err != nil {
		return nil, err
	}
	if c, ok := netip.AddrFromSlice(tx.Get(poolPath(id), keyCursor)); ok {
		if err := p.alloc.SetCursor(c); err != nil {
			return nil, fmt.Errorf("bad cursor %s: %w", c, err)
		}
	}
	if err := loadCluster(tx, p); err != nil {
		return nil, err
	}
	return p, nil
}

// hostID returns a random ID kept in the state file, creating it on first
// use. It stands in for /etc/machine-id when that is empty or unreadable.
func hostID(db state.Store, random func() string) (string, error) {
	var id string
	err := db.Update(func(tx state.Tx) error {
		if v := tx.Get([]string{bucketIPAM}, keyHostID); len(v) > 0 {
			id = string(v)
			return nil
		}
		id = random()
		return tx.Put([]string{bucketIPAM}, keyHostID, []byte(id))
	})
	return id, err
}
