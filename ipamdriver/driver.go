// Package ipamdriver is dualstack's IPAM driver: durable, sequential address
// allocation for IPv4 and IPv6 pools of any size, served to Docker through
// the docker.ipamdriver/1.0 API.
package ipamdriver

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/ipamdriver/allocator"
	"github.com/dualstack-net/dualstack/state"
	"github.com/dualstack-net/dualstack/validate"
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
	// address recorded for that MAC comes back with no second allocation
	// (see Driver.retry for when a request counts as a retry). Gateway
	// requests are recognised the same way by their type.
	RequiresRequestReplay bool
}

// Config configures a Driver.
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
}

// Driver implements the IPAM API. It is safe for concurrent use.
type Driver struct {
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
	// claimed reports whether an endpoint of the network driver holds an
	// address (SetClaims); nil: none does.
	claimed func(netip.Addr) bool
	// released hears of each pool Docker releases (SetPoolRelease).
	released func(poolID string)
	// addrReleased hears of each address Docker releases
	// (SetAddressRelease).
	addrReleased func(addr netip.Addr)
	// blockAdded hears of each block a cluster pool comes to hold
	// (SetBlockAdded).
	blockAdded func(poolID string)
	// leases is the cluster store (Config.Leases).
	leases Leases
}

// SetPoolRelease has fn hear of each pool Docker releases, before it goes
// (see ReleasePool). fn may call the IPAM.
func (d *Driver) SetPoolRelease(fn func(poolID string)) {
	d.mu.Lock()
	d.released = fn
	d.mu.Unlock()
}

// SetAddressRelease has fn hear of each address Docker releases, before it
// goes (see ReleaseAddress). fn may call the IPAM.
func (d *Driver) SetAddressRelease(fn func(addr netip.Addr)) {
	d.mu.Lock()
	d.addrReleased = fn
	d.mu.Unlock()
}

// SetBlockAdded has fn hear of each block a cluster pool comes to hold,
// leased or adopted: the host announces its blocks over BGP. fn runs on a
// goroutine of its own once the IPAM is free again, and may call it.
func (d *Driver) SetBlockAdded(fn func(poolID string)) {
	d.mu.Lock()
	d.blockAdded = fn
	d.mu.Unlock()
}

// CollectEmptyDefaultPools releases, grace after it is called, the pools
// picked from the default pools (a network that named no subnet) that an
// earlier plugin process handed out, that hold no address then as now, and
// that claimed (the network driver's networks) does not know. Docker asks
// for a pool again when the plugin died before it answered, and a
// default-pool request then gets the next default pool: the first would
// stay held by nobody. A network of another driver holds at least its
// gateway's address. Each release is logged.
func (d *Driver) CollectEmptyDefaultPools(grace time.Duration, claimed func(poolID string) bool) {
	suspects := d.emptyDefaultPools()
	if len(suspects) == 0 {
		return
	}
	time.AfterFunc(grace, func() {
		for _, id := range suspects {
			if claimed != nil && claimed(id) || !slices.Contains(d.emptyDefaultPools(), id) {
				continue
			}
			if err := d.ReleasePool(&ipam.ReleasePoolRequest{PoolID: id}); err != nil {
				d.log.WithField("pool", id).WithError(err).Warn("release an empty default pool no network claims")
				continue
			}
			d.log.WithField("pool", id).Info("released a default pool that no network has used since an earlier process handed it out (Docker asked again after the plugin died before answering)")
		}
	})
}

// emptyDefaultPools lists the default pools an earlier process handed out
// that hold no address.
func (d *Driver) emptyDefaultPools() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for _, p := range d.sortedPools() {
		if p.byDefault && !d.answeredPools[p.id] && p.alloc.Runs() == 0 {
			out = append(out, p.id)
		}
	}
	return out
}

// SetClaims tells the IPAM how to learn whether an endpoint holds an
// address (the network driver's records): such an address is never handed
// out again to a request that merely carries the same MAC address.
// claimed must not call back into the IPAM.
func (d *Driver) SetClaims(claimed func(netip.Addr) bool) {
	d.mu.Lock()
	d.claimed = claimed
	d.mu.Unlock()
}

// retry reports whether a RequestAddress for the address a MAC already
// holds in p is Docker repeating a request whose answer was lost, so that
// the same address is the answer.
//
// The key is the MAC address, which Docker sends with each request
// (RequiresMACAddress): it is the only thing a request carries that is the
// endpoint's own. But two endpoints can have one MAC (docker run
// --mac-address twice on a network), and they must not share an address.
// Answers are lost only when the plugin dies before it replies (the unix
// socket loses nothing while the plugin lives), so a retry asks for an
// address an earlier process handed out, which no endpoint has claimed
// yet: Docker asks for the address before it creates the endpoint. An
// address this process handed out, or one an endpoint holds, belongs to
// another endpoint with the same MAC, which gets an address of its own.
func (d *Driver) retry(p *pool, held netip.Addr) bool {
	if d.answered[p.id][held] {
		return false
	}
	return d.claimed == nil || !d.claimed(held)
}

// noteAnswered records addr as handed to a MAC by this process.
func (d *Driver) noteAnswered(p *pool, addr netip.Addr) {
	if d.answered[p.id] == nil {
		d.answered[p.id] = map[netip.Addr]bool{}
	}
	d.answered[p.id][addr] = true
}

// New loads the IPAM state from cfg.DB and returns a ready driver.
func New(cfg Config) (*Driver, error) {
	d := &Driver{db: cfg.DB, defaultV4: cfg.DefaultPoolsV4, hostNets: cfg.HostPrefixes, log: cfg.Log, answered: map[string]map[netip.Addr]bool{}, answeredPools: map[string]bool{}, leases: cfg.Leases}
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
	err := cfg.DB.View(func(tx state.Tx) error {
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
		if err := validate.Subnet(prefix); err != nil {
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
			if d.retriedPool(held, prefix, sub) {
				d.answeredPools[held.id] = true
				d.log.WithField("pool", held.id).Info("pool asked for again, as an earlier process answered it and nothing uses it yet: the same pool (a retried request)")
				return &ipam.RequestPoolResponse{PoolID: held.id, Pool: held.prefix.String(), Data: map[string]string{}}, nil
			}
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
	p.byDefault = req.Pool == ""
	if err := d.db.Update(func(tx state.Tx) error { return savePool(tx, p) }); err != nil {
		return nil, fmt.Errorf("record pool %s in the state file: %w", p.id, err)
	}
	d.pools[p.id] = p
	d.answeredPools[p.id] = true
	d.log.WithField("pool", p.id).Debug("pool allocated")
	return &ipam.RequestPoolResponse{PoolID: p.id, Pool: prefix.String(), Data: map[string]string{}}, nil
}

// retriedPool reports whether a RequestPool for prefix and sub, which held
// overlaps, is Docker repeating a request whose answer a plugin crash lost:
// the same subnet and ip-range, answered by an earlier plugin process (the
// unix socket loses no answer while the plugin lives), and nothing
// allocated in it yet (Docker asks for the pool before any address). The
// answer is the same pool; any other overlap is another network's, and
// refused.
func (d *Driver) retriedPool(held *pool, prefix, sub netip.Prefix) bool {
	return held.prefix == prefix && held.sub == sub && !d.answeredPools[held.id] && held.alloc.Runs() == 0
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
// addresses. Releasing an unknown pool succeeds. The network driver hears
// of it first (SetPoolRelease): Docker releases the pools of a network it
// never deletes when the network's creation failed after the plugin
// committed it.
func (d *Driver) ReleasePool(req *ipam.ReleasePoolRequest) error {
	d.mu.Lock()
	released := d.released
	d.mu.Unlock()
	if released != nil {
		released(req.PoolID)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.pools[req.PoolID]; ok {
		d.leaveCluster(p)
	}
	if err := d.db.Update(func(tx state.Tx) error { return deletePool(tx, req.PoolID) }); err != nil {
		return fmt.Errorf("remove pool %s from the state file: %w", req.PoolID, err)
	}
	delete(d.pools, req.PoolID)
	delete(d.answered, req.PoolID)
	delete(d.answeredPools, req.PoolID)
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
	// An endpoint's request (by MAC); the gateway's and the network
	// driver's own (AllocateFor) are keyed by what they are.
	_, notMAC := net.ParseMAC(owner)
	byMAC := !gateway && notMAC == nil
	addr, err := d.requestAddress(p, req.Address, owner, gateway, byMAC)
	if err != nil {
		return nil, err
	}
	if byMAC {
		d.noteAnswered(p, addr)
	}
	return &ipam.RequestAddressResponse{Address: netip.PrefixFrom(addr, p.addrBits(addr)).String(), Data: map[string]string{}}, nil
}

// requestAddress hands owner an address of p: preferred, or the next in
// sequence. byMAC says owner is an endpoint's MAC address, which may be
// another endpoint's too (see retry).
func (d *Driver) requestAddress(p *pool, preferred, owner string, gateway, byMAC bool) (netip.Addr, error) {
	if preferred != "" {
		addr, err := parseAddr(preferred)
		if err != nil {
			return netip.Addr{}, fmt.Errorf("invalid address %q requested from pool %s: %v", preferred, p, err)
		}
		return d.reserve(p, addr, owner, byMAC)
	}
	addr, fresh, undo, err := d.pick(p, owner, gateway, byMAC)
	if err != nil || !fresh {
		return addr, err
	}
	var cursor netip.Addr
	if !gateway {
		cursor = addr
	}
	if err := d.db.Update(func(tx state.Tx) error { return saveAddr(tx, p.id, addr, owner, cursor) }); err != nil {
		undo()
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	return addr, nil
}

// pick chooses owner's address in p, in memory only: the address owner
// holds already (a retried request whose answer was committed but never
// reached Docker; fresh is false; for a MAC owner only if retry says so),
// or the next in sequence (the first free one for a gateway). undo gives a
// fresh pick back and restores the sequence, for a caller whose commit
// failed.
func (d *Driver) pick(p *pool, owner string, gateway, byMAC bool) (addr netip.Addr, fresh bool, undo func(), err error) {
	if owner != "" {
		var held netip.Addr
		_ = d.db.View(func(tx state.Tx) error { held, _ = addrOf(tx, p.id, owner); return nil })
		if held.IsValid() && p.alloc.Allocated(held) && (!byMAC || d.retry(p, held)) {
			d.log.WithField("pool", p.id).WithField("address", held).Debugf("address already held by %s, returning it again", owner)
			return held, false, func() {}, nil
		}
	}
	if p.cluster != nil && !gateway {
		addr, undo, err := d.pickInBlocks(p)
		return addr, err == nil, undo, err
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
// request Docker repeats for an address it already holds (for a MAC owner,
// only a retry: see retry).
func (d *Driver) reserve(p *pool, addr netip.Addr, owner string, byMAC bool) (netip.Addr, error) {
	if !p.prefix.Contains(addr) {
		return netip.Addr{}, fmt.Errorf("address %s is outside pool %s: choose an address inside the subnet", addr, p.prefix)
	}
	err := p.alloc.Reserve(addr)
	switch {
	case errors.Is(err, allocator.ErrInUse):
		var holder string
		_ = d.db.View(func(tx state.Tx) error { holder = ownerOf(tx, p.id, addr); return nil })
		// The same holder asking again; a gateway named now that the
		// IPAM had picked itself (a replayed request) is the same gateway.
		if owner != "" && (holder == owner && (!byMAC || d.retry(p, addr)) || owner == ownerGateway && holder == ownerAutoGateway) {
			return addr, nil
		}
		return netip.Addr{}, fmt.Errorf("address %s is already in use in pool %s: choose another address or let dualstack pick one", addr, p.prefix)
	case errors.Is(err, allocator.ErrOutOfRange):
		return netip.Addr{}, fmt.Errorf("address %s cannot be assigned in pool %s: it is the network, broadcast or subnet-router address", addr, p.prefix)
	case err != nil:
		return netip.Addr{}, fmt.Errorf("reserve address %s in pool %s: %w", addr, p.prefix, err)
	}
	// In a cluster network, an address outside the host's blocks is the
	// host's only once the cluster store says so.
	if p.cluster != nil {
		if err := d.claimOutside(p, addr); err != nil {
			p.alloc.Release(addr)
			return netip.Addr{}, err
		}
	}
	if err := d.db.Update(func(tx state.Tx) error { return saveAddr(tx, p.id, addr, owner, netip.Addr{}) }); err != nil {
		p.alloc.Release(addr)
		d.releaseClaims(p, []netip.Addr{addr})
		return netip.Addr{}, fmt.Errorf("record address %s of pool %s in the state file: %w", addr, p, err)
	}
	return addr, nil
}

// ReleaseAddress answers /IpamDriver.ReleaseAddress. Releasing an address
// that is not held, or from a pool that is gone, succeeds. The network
// driver hears of it first (SetAddressRelease): Docker releases the
// address of an endpoint it never deletes when the endpoint's creation
// failed after the plugin committed it.
func (d *Driver) ReleaseAddress(req *ipam.ReleaseAddressRequest) error {
	addr, err := parseAddr(req.Address)
	if err != nil {
		return fmt.Errorf("invalid address %q to release from pool %s: %v", req.Address, req.PoolID, err)
	}
	d.mu.Lock()
	released := d.addrReleased
	d.mu.Unlock()
	if released != nil {
		released(addr)
	}
	return d.ReleaseEach(map[string][]netip.Addr{req.PoolID: {addr}}, nil)
}
