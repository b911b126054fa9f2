// Package ipamdriver is dualstack's IPAM driver: durable, sequential address
// allocation for IPv4 and IPv6 pools of any size, served to Docker through
// the docker.ipamdriver/1.0 API.
package ipamdriver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"
	bolt "go.etcd.io/bbolt"

	"github.com/dualstack-net/dualstack/ipamdriver/allocator"
)

// Address spaces announced to Docker. Overlapping pools are refused within a
// space.
const (
	LocalAddressSpace  = "local"
	GlobalAddressSpace = "global"
)

// Option keys Docker sets on RequestAddress.
const (
	optRequestType = "RequestAddressType"
	gatewayType    = "com.docker.network.gateway"
	optMACAddress  = "com.docker.network.endpoint.macaddress"
)

// ownerGateway marks an address held as a network's gateway, given by the
// user (--gateway); ownerAutoGateway one the IPAM picked itself.
const (
	ownerGateway     = "gateway"
	ownerAutoGateway = "gateway:auto"
)

// Capabilities is the answer to /IpamDriver.GetCapabilities.
type Capabilities struct {
	ipam.CapabilitiesResponse
	// RequiresRequestReplay is false. dualstack commits every pool and
	// address to its state file before it answers, so after a dockerd
	// restart its state is already complete and nothing needs replaying.
	// A replay would also be ambiguous: a replayed RequestPool carries no
	// network ID, so it cannot be told apart from a second network asking
	// for a subnet that is already held, which must be refused.
	//
	// Requests that do arrive twice (Docker retries a call whose answer a
	// plugin crash lost) are still idempotent: RequiresMACAddress makes
	// Docker send the endpoint's MAC with each RequestAddress, and the
	// address recorded for that MAC comes back with no second allocation.
	// Gateway requests are recognised the same way by their type.
	RequiresRequestReplay bool
}

// Config configures a Driver.
type Config struct {
	// DB is the open state file.
	DB *bolt.DB
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
}

// Driver implements the IPAM API. It is safe for concurrent use.
type Driver struct {
	mu        sync.Mutex
	db        *bolt.DB
	pools     map[string]*pool
	defaultV4 []DefaultPool
	ula       netip.Prefix
	hostNets  func(v6 bool) ([]netip.Prefix, error)
	log       logrus.FieldLogger
}

// New loads the IPAM state from cfg.DB and returns a ready driver.
func New(cfg Config) (*Driver, error) {
	d := &Driver{db: cfg.DB, defaultV4: cfg.DefaultPoolsV4, hostNets: cfg.HostPrefixes, log: cfg.Log}
	if d.log == nil {
		d.log = logrus.StandardLogger()
	}
	if len(d.defaultV4) == 0 {
		pools, err := ParseDefaultPools(DefaultPoolsV4)
		if err != nil {
			return nil, err
		}
		d.defaultV4 = pools
	}
	machineID := cfg.MachineID
	if machineID == "" {
		id, err := hostID(cfg.DB, randomID)
		if err != nil {
			return nil, fmt.Errorf("create host ID in state file: %w", err)
		}
		machineID = id
	}
	d.ula = ULAPrefix(machineID)
	err := cfg.DB.View(func(tx *bolt.Tx) error {
		var err error
		d.pools, err = loadPools(tx, d.log)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("load IPAM state: %w", err)
	}
	d.log.WithField("pools", len(d.pools)).WithField("ula", d.ula).Info("IPAM state loaded")
	return d, nil
}

func randomID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ULA returns the host's unique local /48, the source of default IPv6 pools.
func (d *Driver) ULA() netip.Prefix { return d.ula }

// GetCapabilities answers /IpamDriver.GetCapabilities.
func (d *Driver) GetCapabilities() (*Capabilities, error) {
	return &Capabilities{CapabilitiesResponse: ipam.CapabilitiesResponse{RequiresMACAddress: true}}, nil
}

// GetDefaultAddressSpaces answers /IpamDriver.GetDefaultAddressSpaces.
func (d *Driver) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{
		LocalDefaultAddressSpace:  LocalAddressSpace,
		GlobalDefaultAddressSpace: GlobalAddressSpace,
	}, nil
}

// RequestPool answers /IpamDriver.RequestPool: the given subnet (and
// ip-range), or the next free default pool of the requested family.
func (d *Driver) RequestPool(req *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	space := req.AddressSpace
	if space == "" {
		space = LocalAddressSpace
	}
	d.mu.Lock()
	defer d.mu.Unlock()

	var prefix, sub netip.Prefix
	var err error
	switch {
	case req.Pool != "":
		if prefix, err = parsePrefix("subnet", req.Pool); err != nil {
			return nil, err
		}
		if req.V6 != prefix.Addr().Is6() {
			want := "IPv4"
			if req.V6 {
				want = "IPv6"
			}
			return nil, fmt.Errorf("subnet %s is not an %s subnet: check the order of --subnet options and --ipv6", prefix, want)
		}
		if req.SubPool != "" {
			if sub, err = parsePrefix("ip-range", req.SubPool); err != nil {
				return nil, err
			}
		}
		if held := overlapping(d.sortedPools(), space, prefix); held != nil {
			return nil, fmt.Errorf("subnet %s overlaps subnet %s, which dualstack already holds for another network (pool %s): choose a subnet that does not overlap, or remove that network", prefix, held.prefix, held.id)
		}
	case req.SubPool != "":
		return nil, fmt.Errorf("ip-range %s given without a subnet: add --subnet", req.SubPool)
	case req.V6:
		if prefix, err = d.nextDefault(space, []DefaultPool{{Base: d.ula, Size: 64}}, true); err != nil {
			return nil, err
		}
	default:
		if prefix, err = d.nextDefault(space, d.defaultV4, false); err != nil {
			return nil, err
		}
	}

	p, err := newPool(space, prefix, sub)
	if err != nil {
		return nil, err
	}
	if err := d.db.Update(func(tx *bolt.Tx) error { return savePool(tx, p) }); err != nil {
		return nil, fmt.Errorf("record pool %s in the state file: %w", p.id, err)
	}
	d.pools[p.id] = p
	d.log.WithField("pool", p.id).Debug("pool allocated")
	return &ipam.RequestPoolResponse{PoolID: p.id, Pool: prefix.String(), Data: map[string]string{}}, nil
}

// overlapping returns the first pool of space in pools that overlaps
// prefix, if any.
func overlapping(pools []*pool, space string, prefix netip.Prefix) *pool {
	for _, p := range pools {
		if p.space == space && p.prefix.Overlaps(prefix) {
			return p
		}
	}
	return nil
}

// sortedPools returns the pools in ID order, so that choices and messages do
// not depend on map order.
func (d *Driver) sortedPools() []*pool {
	out := make([]*pool, 0, len(d.pools))
	for _, p := range d.pools {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// nextDefault returns the first subnet of defaults that overlaps neither a
// pool held in space nor the host's own routes and addresses.
func (d *Driver) nextDefault(space string, defaults []DefaultPool, v6 bool) (netip.Prefix, error) {
	var host []netip.Prefix
	if d.hostNets != nil {
		var err error
		if host, err = d.hostNets(v6); err != nil {
			return netip.Prefix{}, fmt.Errorf("read the host's routes to pick a free default pool: %w", err)
		}
	}
	held := d.sortedPools()
	for _, def := range defaults {
		count := uint64(1) << uint(def.Size-def.Base.Bits())
		for n := uint64(0); n < count; n++ {
			cand := nthSubnet(def.Base, def.Size, n)
			if overlapping(held, space, cand) != nil || overlapsAny(cand, host) {
				continue
			}
			return cand, nil
		}
	}
	if v6 {
		return netip.Prefix{}, fmt.Errorf("every /64 of the host's ULA prefix %s is in use: give the network an explicit IPv6 --subnet", d.ula)
	}
	return netip.Prefix{}, errors.New("every default IPv4 pool (DEFAULT_POOLS_V4) is in use or overlaps a host route: give the network an explicit --subnet, or add pools with `docker plugin set dualstack DEFAULT_POOLS_V4=...`")
}

func overlapsAny(p netip.Prefix, list []netip.Prefix) bool {
	for _, q := range list {
		if q.Bits() > 0 && p.Overlaps(q) {
			return true
		}
	}
	return false
}

// ReleasePool answers /IpamDriver.ReleasePool. Releasing a pool frees its
// addresses. Releasing an unknown pool succeeds.
func (d *Driver) ReleasePool(req *ipam.ReleasePoolRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := d.db.Update(func(tx *bolt.Tx) error { return deletePool(tx, req.PoolID) }); err != nil {
		return fmt.Errorf("remove pool %s from the state file: %w", req.PoolID, err)
	}
	delete(d.pools, req.PoolID)
	return nil
}

// RequestAddress answers /IpamDriver.RequestAddress: the gateway, a
// preferred address, or the next address in sequence.
func (d *Driver) RequestAddress(req *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	owner := req.Options[optMACAddress]
	gateway := req.Options[optRequestType] == gatewayType
	if gateway {
		owner = ownerGateway
		if req.Address == "" {
			owner = ownerAutoGateway
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.pools[req.PoolID]
	if !ok {
		return nil, fmt.Errorf("no pool %q is held by dualstack: the network's IPAM state is missing; recreate the network", req.PoolID)
	}
	addr, err := d.requestAddress(p, req.Address, owner, gateway)
	if err != nil {
		return nil, err
	}
	return &ipam.RequestAddressResponse{Address: netip.PrefixFrom(addr, p.prefix.Bits()).String(), Data: map[string]string{}}, nil
}

func (d *Driver) requestAddress(p *pool, preferred, owner string, gateway bool) (netip.Addr, error) {
	if preferred != "" {
		addr, err := parseAddr(preferred)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("invalid address %q requested from pool %s: %v", preferred, p, err)
		}
		return d.reserve(p, addr, owner)
	}
	addr, fresh, undo, err := d.pick(p, owner, gateway)
	if err != nil || !fresh {
		return addr, err
	}
	var cursor netip.Addr
	if !gateway {
		cursor = addr
	}
	if err := d.db.Update(func(tx *bolt.Tx) error { return saveAddr(tx, p.id, addr, owner, cursor) }); err != nil {
		undo()
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	return addr, nil
}

// pick chooses owner's address in p, in memory only: the address owner
// holds already (a retried request whose answer was committed but never
// reached Docker; fresh is false), or the next in sequence (the first free
// one for a gateway). undo gives a fresh pick back and restores the
// sequence, for a caller whose commit failed.
func (d *Driver) pick(p *pool, owner string, gateway bool) (addr netip.Addr, fresh bool, undo func(), err error) {
	if owner != "" {
		var held netip.Addr
		_ = d.db.View(func(tx *bolt.Tx) error { held, _ = addrOf(tx, p.id, owner); return nil })
		if held.IsValid() && p.alloc.Allocated(held) {
			d.log.WithField("pool", p.id).WithField("address", held).Debugf("address already held by %s, returning it again", owner)
			return held, false, func() {}, nil
		}
	}
	prevCursor, hadCursor := p.alloc.Cursor()
	if gateway {
		addr, err = p.alloc.FirstFree()
	} else {
		addr, err = p.alloc.Next()
	}
	if errors.Is(err, allocator.ErrFull) {
		return netip.Addr{}, false, nil, fmt.Errorf("pool %s is exhausted: every usable address is in use; remove unused containers or use a larger subnet", p)
	}
	if err != nil {
		return netip.Addr{}, false, nil, fmt.Errorf("allocate an address in pool %s: %w", p, err)
	}
	return addr, true, func() {
		p.alloc.Release(addr)
		if hadCursor {
			_ = p.alloc.SetCursor(prevCursor)
		} else {
			p.alloc.ResetCursor()
		}
	}, nil
}

// reserve hands out a specific address: a user's --ip or --gateway, or a
// request Docker repeats for an address it already holds.
func (d *Driver) reserve(p *pool, addr netip.Addr, owner string) (netip.Addr, error) {
	if !p.prefix.Contains(addr) {
		return netip.Addr{}, fmt.Errorf("address %s is outside pool %s: choose an address inside the subnet", addr, p.prefix)
	}
	err := p.alloc.Reserve(addr)
	switch {
	case errors.Is(err, allocator.ErrInUse):
		var holder string
		_ = d.db.View(func(tx *bolt.Tx) error { holder = ownerOf(tx, p.id, addr); return nil })
		// The same holder asking again; a gateway named now that the
		// IPAM had picked itself (a replayed request) is the same gateway.
		if owner != "" && (holder == owner || owner == ownerGateway && holder == ownerAutoGateway) {
			return addr, nil
		}
		return netip.Addr{}, fmt.Errorf("address %s is already in use in pool %s: choose another address or let dualstack pick one", addr, p.prefix)
	case errors.Is(err, allocator.ErrOutOfRange):
		return netip.Addr{}, fmt.Errorf("address %s cannot be assigned in pool %s: it is the network, broadcast or subnet-router address", addr, p.prefix)
	case err != nil:
		return netip.Addr{}, fmt.Errorf("reserve address %s in pool %s: %w", addr, p.prefix, err)
	}
	if err := d.db.Update(func(tx *bolt.Tx) error { return saveAddr(tx, p.id, addr, owner, netip.Addr{}) }); err != nil {
		p.alloc.Release(addr)
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	return addr, nil
}

// ReleaseAddress answers /IpamDriver.ReleaseAddress. Releasing an address
// that is not held, or from a pool that is gone, succeeds.
func (d *Driver) ReleaseAddress(req *ipam.ReleaseAddressRequest) error {
	addr, err := parseAddr(req.Address)
	if err != nil {
		return fmt.Errorf("invalid address %q to release from pool %s: %v", req.Address, req.PoolID, err)
	}
	return d.ReleaseEach(map[string][]netip.Addr{req.PoolID: {addr}}, nil)
}
