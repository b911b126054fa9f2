package ipamdriver

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"
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
//
// Addresses are stored as 4 or 16 raw bytes, so bbolt's key order is address
// order and a pool loads as a sorted stream.
var (
	bucketIPAM   = []byte("ipam")
	bucketPools  = []byte("pools")
	bucketAddrs  = []byte("addrs")
	bucketOwners = []byte("owners")
	keyMeta      = []byte("meta")
	keyCursor    = []byte("cursor")
	keyHostID    = []byte("host-id")
)

// poolRecord is what is persisted of a pool; the allocator is rebuilt from
// the addrs bucket.
type poolRecord struct {
	Space   string `json:"space"`
	Pool    string `json:"pool"`
	SubPool string `json:"subPool,omitempty"`
	// Default: picked from the default pools.
	Default bool `json:"default,omitempty"`
}

func poolsBucket(tx *bolt.Tx) (*bolt.Bucket, error) {
	if tx.Writable() {
		root, err := tx.CreateBucketIfNotExists(bucketIPAM)
		if err != nil {
			return nil, err
		}
		return root.CreateBucketIfNotExists(bucketPools)
	}
	root := tx.Bucket(bucketIPAM)
	if root == nil {
		return nil, nil
	}
	return root.Bucket(bucketPools), nil
}

// savePool records a new pool.
func savePool(tx *bolt.Tx, p *pool) error {
	pools, err := poolsBucket(tx)
	if err != nil {
		return err
	}
	b, err := pools.CreateBucket([]byte(p.id))
	if err != nil {
		return fmt.Errorf("record pool %s: %w", p.id, err)
	}
	rec := poolRecord{Space: p.space, Pool: p.prefix.String(), Default: p.byDefault}
	if p.sub.IsValid() {
		rec.SubPool = p.sub.String()
	}
	meta, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	if err := b.Put(keyMeta, meta); err != nil {
		return err
	}
	if _, err := b.CreateBucket(bucketAddrs); err != nil {
		return err
	}
	_, err = b.CreateBucket(bucketOwners)
	return err
}

// deletePool forgets a pool and every address in it.
func deletePool(tx *bolt.Tx, id string) error {
	pools, err := poolsBucket(tx)
	if err != nil {
		return err
	}
	if pools.Bucket([]byte(id)) == nil {
		return nil
	}
	return pools.DeleteBucket([]byte(id))
}

// poolBuckets returns the addrs and owners buckets of pool id.
func poolBuckets(tx *bolt.Tx, id string) (pb, addrs, owners *bolt.Bucket, err error) {
	pools, err := poolsBucket(tx)
	if err != nil {
		return nil, nil, nil, err
	}
	if pools != nil {
		pb = pools.Bucket([]byte(id))
	}
	if pb == nil {
		return nil, nil, nil, fmt.Errorf("pool %s is missing from the state file", id)
	}
	return pb, pb.Bucket(bucketAddrs), pb.Bucket(bucketOwners), nil
}

// saveAddr records addr as held by owner and, when cursor is valid, the new
// sequential cursor.
func saveAddr(tx *bolt.Tx, id string, addr netip.Addr, owner string, cursor netip.Addr) error {
	pb, addrs, owners, err := poolBuckets(tx, id)
	if err != nil {
		return err
	}
	key := addr.AsSlice()
	if err := addrs.Put(key, []byte(owner)); err != nil {
		return err
	}
	if owner != "" {
		if err := owners.Put([]byte(owner), key); err != nil {
			return err
		}
	}
	if cursor.IsValid() {
		return pb.Put(keyCursor, cursor.AsSlice())
	}
	return nil
}

// deleteAddr forgets addr and its owner index entry.
func deleteAddr(tx *bolt.Tx, id string, addr netip.Addr) error {
	_, addrs, owners, err := poolBuckets(tx, id)
	if err != nil {
		return err
	}
	key := addr.AsSlice()
	if owner := addrs.Get(key); len(owner) > 0 {
		if cur := owners.Get(owner); cur != nil && string(cur) == string(key) {
			if err := owners.Delete(owner); err != nil {
				return err
			}
		}
	}
	return addrs.Delete(key)
}

// ownerOf returns who holds addr in pool id.
func ownerOf(tx *bolt.Tx, id string, addr netip.Addr) string {
	_, addrs, _, err := poolBuckets(tx, id)
	if err != nil {
		return ""
	}
	return string(addrs.Get(addr.AsSlice()))
}

// addrOf returns the address owner holds in pool id, if any.
func addrOf(tx *bolt.Tx, id, owner string) (netip.Addr, bool) {
	_, _, owners, err := poolBuckets(tx, id)
	if err != nil {
		return netip.Addr{}, false
	}
	a, ok := netip.AddrFromSlice(owners.Get([]byte(owner)))
	return a, ok
}

// loadPools rebuilds every pool from the state file. A record that cannot be
// read is skipped with a warning rather than stopping the plugin: Docker
// cannot start without its IPAM driver.
func loadPools(tx *bolt.Tx, log logrus.FieldLogger) (map[string]*pool, error) {
	out := map[string]*pool{}
	pools, err := poolsBucket(tx)
	if err != nil || pools == nil {
		return out, err
	}
	err = pools.ForEachBucket(func(k []byte) error {
		id := string(k)
		b := pools.Bucket(k)
		p, err := loadPool(b)
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

func loadPool(b *bolt.Bucket) (*pool, error) {
	var rec poolRecord
	if err := json.Unmarshal(b.Get(keyMeta), &rec); err != nil {
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
	addrs := b.Bucket(bucketAddrs)
	if addrs == nil {
		return nil, fmt.Errorf("no addrs bucket")
	}
	err = addrs.ForEach(func(k, _ []byte) error {
		a, ok := netip.AddrFromSlice(k)
		if !ok {
			return fmt.Errorf("bad address key %x", k)
		}
		return p.alloc.Reserve(a)
	})
	if err != nil {
		return nil, err
	}
	if c, ok := netip.AddrFromSlice(b.Get(keyCursor)); ok {
		if err := p.alloc.SetCursor(c); err != nil {
			return nil, fmt.Errorf("bad cursor %s: %w", c, err)
		}
	}
	return p, nil
}

// hostID returns a random ID kept in the state file, creating it on first
// use. It stands in for /etc/machine-id when that is empty or unreadable.
func hostID(db *bolt.DB, random func() string) (string, error) {
	var id string
	err := db.Update(func(tx *bolt.Tx) error {
		root, err := tx.CreateBucketIfNotExists(bucketIPAM)
		if err != nil {
			return err
		}
		if v := root.Get(keyHostID); len(v) > 0 {
			id = string(v)
			return nil
		}
		id = random()
		return root.Put(keyHostID, []byte(id))
	})
	return id, err
}
