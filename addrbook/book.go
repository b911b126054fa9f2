// Package addrbook is dualstack's address book: the one model of the
// addresses it hands out, under both of Docker's APIs. It owns the pools
// (durable, sequential allocation for IPv4 and IPv6 pools of any size,
// default pools, cluster pools and their blocks), every allocation with
// its owner (a kind and an ID), the networks' pools and the endpoints'
// claims, and the collection of allocations nobody explains. The IPAM
// driver (ipamdriver) and the network driver (driver) are adapters of
// Docker's two APIs over it.
//
// One lock guards it all, and each change is one transaction of the state
// file, committed before the call returns. The book never calls out to
// its users: the network driver tells it which pools a network holds and
// which addresses an endpoint holds (Attach, Claim), and learns of new
// cluster blocks from BlocksChanged.
package addrbook

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/state"
)

// Address spaces announced to Docker. Overlapping pools are refused within a
// space.
const (
	LocalAddressSpace  = "local"
	GlobalAddressSpace = "global"
)

// Config configures a Book.
type Config struct {
	// DB is the open state file.
	DB state.Store
	// DefaultPoolsV4 are the pools handed out to networks that ask for no
	// IPv4 subnet (the DEFAULT_POOLS_V4 setting).
	DefaultPoolsV4 []DefaultPool
	// MachineID is the host's /etc/machine-id. When empty, a random ID kept in
	// the state file is used instead.
	MachineID string
	// HostPrefixes returns the host's routes and addresses of one family;
	// default pools that overlap them are skipped. Nil means none.
	HostPrefixes func(v6 bool) ([]netip.Prefix, error)
	// Log receives one line per change; nil means the standard logger.
	Log logrus.FieldLogger
	// Leases is the cluster store, where the pools of cluster networks
	// lease their blocks; nil: this host is in no cluster.
	Leases Leases
	// StatusDir, when set, is where the book writes the sticky pools'
	// status file (StickyStatusFile).
	StatusDir string
	// Now is the clock of sticky reservations; nil means time.Now.
	Now func() time.Time
}

// Book is the address book. It is safe for concurrent use.
type Book struct {
	mu        sync.Mutex
	db        state.Store
	pools     map[string]*pool
	defaultV4 []DefaultPool
	ula       netip.Prefix
	hostNets  func(v6 bool) ([]netip.Prefix, error)
	log       logrus.FieldLogger
	// answered holds, by pool, the addresses this process handed to a
	// MAC address (RequestAddress): a request for one of them is never
	// a retry (see retry).
	answered map[string]map[netip.Addr]bool
	// answeredPools are the pools this process handed out (see
	// retriedPool).
	answeredPools map[string]bool
	// users are the network driver's networks and endpoints (Attach,
	// Claim).
	users users
	// blocksChanged signals that a cluster pool came to hold a block
	// (BlocksChanged).
	blocksChanged chan struct{}
	// leases is the cluster store (Config.Leases).
	leases Leases
	// statusDir and now are Config.StatusDir and Config.Now.
	statusDir string
	now       func() time.Time
}

// New loads the address book from cfg.DB.
func New(cfg Config) (*Book, error) {
	bk := &Book{db: cfg.DB, defaultV4: cfg.DefaultPoolsV4, hostNets: cfg.HostPrefixes, log: cfg.Log, answered: map[string]map[netip.Addr]bool{}, answeredPools: map[string]bool{}, leases: cfg.Leases, users: newUsers(), blocksChanged: make(chan struct{}, 1), statusDir: cfg.StatusDir, now: cfg.Now}
	if bk.log == nil {
		bk.log = logrus.StandardLogger()
	}
	if bk.now == nil {
		bk.now = time.Now
	}
	if len(bk.defaultV4) == 0 {
		pools, err := ParseDefaultPools(DefaultPoolsV4)
		if err != nil {
			return nil, err
		}
		bk.defaultV4 = pools
	}
	machineID := cfg.MachineID
	if machineID == "" {
		id, err := hostID(cfg.DB, randomID)
		if err != nil {
			return nil, fmt.Errorf("create host ID in state file: %w", err)
		}
		machineID = id
	}
	bk.ula = ULAPrefix(machineID)
	err := cfg.DB.View(func(tx state.Tx) error {
		var err error
		bk.pools, err = loadPools(tx, bk.log)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load IPAM state: %w", err)
	}
	bk.loadedSticky()
	bk.log.WithField("pools", len(bk.pools)).WithField("ula", bk.ula).Info("IPAM state loaded")
	return bk, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ULA returns the host's unique local /48, the source of default IPv6 pools.
func (bk *Book) ULA() netip.Prefix { return bk.ula }

// BlocksChanged signals, once per change or run of changes, that a
// cluster pool came to hold a block, leased or adopted: the host
// announces its blocks over BGP.
func (bk *Book) BlocksChanged() <-chan struct{} { return bk.blocksChanged }

func (bk *Book) signalBlocks() {
	select {
	case bk.blocksChanged <- struct{}{}:
	default: // one is pending already
	}
}
