package addrbook

import (
	"net/netip"
	"slices"
	"strings"
)

// The network driver's networks and endpoints, as far as addresses go.
//
// The network driver tells the book which pools each of its networks
// holds (Attach) and which addresses each endpoint holds (Claim), as it
// creates, restores and deletes them. The book needs both: an address an
// endpoint holds never goes to another endpoint that merely has the same
// MAC address (retry), a default pool a network holds is never collected
// as forgotten, and an allocation is stale when no network's gateway,
// host address, host link or endpoint explains it. Kept in memory only:
// the driver's own records say it again at every start.

// Claim is what an endpoint holds.
type Claim struct {
	Endpoint string
	Network  string
	// MAC is the endpoint's MAC address, the key of Docker's requests.
	MAC   string
	Addrs []netip.Addr
}

type users struct {
	networks  map[string][]string // network ID → its pools
	endpoints map[string]Claim    // endpoint ID → its claim
	claims    map[netip.Addr]int  // how many endpoints hold each address
}

func newUsers() users {
	return users{networks: map[string][]string{}, endpoints: map[string]Claim{}, claims: map[netip.Addr]int{}}
}

func (u *users) attach(network string, pools []string) { u.networks[network] = pools }

func (u *users) detach(network string) { delete(u.networks, network) }

func (u *users) claim(c Claim) {
	u.unclaim(c.Endpoint)
	u.endpoints[c.Endpoint] = c
	for _, a := range c.Addrs {
		u.claims[a]++
	}
}

func (u *users) unclaim(endpoint string) {
	c, ok := u.endpoints[endpoint]
	if !ok {
		return
	}
	delete(u.endpoints, endpoint)
	for _, a := range c.Addrs {
		if u.claims[a]--; u.claims[a] <= 0 {
			delete(u.claims, a)
		}
	}
}

func (u *users) claimed(a netip.Addr) bool { return u.claims[a] > 0 }

// poolAttached reports whether a network holds pool id.
func (u *users) poolAttached(id string) bool {
	for _, pools := range u.networks {
		for _, p := range pools {
			if p == id {
				return true
			}
		}
	}
	return false
}

// networkOf returns the network that holds pool id, or "".
func (u *users) networkOf(id string) string {
	for network, pools := range u.networks {
		if slices.Contains(pools, id) {
			return network
		}
	}
	return ""
}

// explains reports whether o is an owner network's allocations may have:
// nobody, a gateway, a node of an on-link pool's link, a container name's
// reservation (sticky pools), the network's host
// link or host addresses, one of its endpoints (by ID, or by the MAC
// Docker asked with).
func (u *users) explains(network string, o Owner) bool {
	switch o.Kind {
	case Nobody, Gateway, AutoGateway, OnLink, Sticky:
		return true
	case HostLink, HostAddress:
		return o.ID == network
	case Endpoint:
		c, ok := u.endpoints[o.ID]
		return ok && c.Network == network
	}
	for _, c := range u.endpoints {
		if c.Network == network && strings.EqualFold(c.MAC, o.ID) {
			return true
		}
	}
	return false
}

// Attach records that network holds pools (replacing what it held).
func (bk *Book) Attach(network string, pools []string) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.users.attach(network, pools)
	for _, id := range pools {
		if p, ok := bk.pools[id]; ok && p.sticky != nil {
			bk.writeStickyStatus() // names the pools' network
			return
		}
	}
}

// Detach records that network is gone.
func (bk *Book) Detach(network string) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.users.detach(network)
}

// Claim records what an endpoint holds (replacing its earlier claim).
func (bk *Book) Claim(c Claim) {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	bk.users.claim(c)
}

// Claimed reports whether an endpoint holds addr.
func (bk *Book) Claimed(addr netip.Addr) bool {
	bk.mu.Lock()
	defer bk.mu.Unlock()
	return bk.users.claimed(addr)
}

// Claim records, once this change commits, what an endpoint holds.
func (tx *Tx) Claim(c Claim) { tx.after = append(tx.after, func() { tx.bk.users.claim(c) }) }

// Unclaim records, once this change commits, that an endpoint is gone.
func (tx *Tx) Unclaim(endpoint string) {
	tx.after = append(tx.after, func() { tx.bk.users.unclaim(endpoint) })
}
