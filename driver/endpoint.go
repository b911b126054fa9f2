package driver

import (
	"errors"
	"fmt"
	"net/netip"

	api "github.com/docker/go-plugins-helpers/network"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/driver/bridge"
	"github.com/dualstack-net/dualstack/driver/portmap"
	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/state"
	"github.com/dualstack-net/dualstack/validate"
)

// claim is what ep holds, for the address book.
func (ep *endpoint) claim() addrbook.Claim {
	c := addrbook.Claim{Endpoint: ep.ID, Network: ep.NetworkID, MAC: ep.MAC}
	for _, a := range ep.addresses() {
		c.Addrs = append(c.Addrs, a.Addr())
	}
	return c
}

// holder names the endpoint that holds addr, for an error.
func (d *Driver) holder(addr netip.Addr) string {
	for _, ep := range d.endpoints {
		for _, a := range ep.addresses() {
			if a.Addr() == addr {
				return fmt.Sprintf("endpoint %s of network %s", short(ep.ID), short(ep.NetworkID))
			}
		}
	}
	return "another endpoint"
}

// CreateEndpoint creates the veth pair, fills the interface fields Docker
// left empty, allocates the extra IPv6 addresses and records the endpoint.
// Each step registers its undo as it succeeds; when a later step fails,
// the undos run, the last first, and nothing is left behind.
func (d *Driver) CreateEndpoint(req *api.CreateEndpointRequest) (_ *api.CreateEndpointResponse, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	n, ok := d.networks[req.NetworkID]
	if !ok {
		return nil, fmt.Errorf("network %s is unknown to the plugin (was its state file removed?): recreate the network", short(req.NetworkID))
	}
	if old, ok := d.endpoints[req.EndpointID]; ok {
		// A retry after a crash lost the answer: start again cleanly.
		if err := d.deleteEndpoint(old); err != nil {
			return nil, err
		}
	}
	ep, resp, err := newEndpoint(req)
	if err != nil {
		return nil, err
	}
	// Never one address on two live endpoints, whoever handed it out
	// (another IPAM than dualstack's, a bug): the second is refused before
	// anything is made for it.
	for _, a := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if a.IsValid() && d.cfg.Book.Claimed(a.Addr()) {
			return nil, fmt.Errorf("endpoint %s: address %s is held by %s already: two containers cannot share an address; "+
				"give this one another address (--ip, --ip6) or disconnect the other", short(ep.ID), a.Addr(), d.holder(a.Addr()))
		}
	}
	var undo undoStack
	defer func() {
		if err != nil {
			undo.run()
		}
	}()
	if err := d.allocateMissing(n, ep, resp.Interface); err != nil {
		return nil, err
	}
	undo.add(func() { d.releaseAll(ep) })
	plane := d.plane(n)
	if err := plane.createEndpoint(n, ep); err != nil {
		return nil, err
	}
	undo.add(func() { _ = plane.deleteEndpoint(n, ep) })
	if err := d.recordEndpoint(n, ep); err != nil {
		return nil, err
	}
	d.endpoints[ep.ID] = ep
	d.log.WithField("endpoint", short(ep.ID)).WithField("network", short(n.ID)).WithField("addresses", prefixes(ep.addresses())).Info("endpoint created")
	return resp, nil
}

// newEndpoint reads the endpoint req asks for: its MAC address (a random
// one when Docker gave none, returned in resp), its addresses and the
// ports it publishes, and the name of its interface in the container.
func newEndpoint(req *api.CreateEndpointRequest) (*endpoint, *api.CreateEndpointResponse, error) {
	in := req.Interface
	if in == nil {
		in = &api.EndpointInterface{}
	}
	ep := &endpoint{
		ID:        req.EndpointID,
		NetworkID: req.NetworkID,
		PeerVeth:  peerVethPrefix + short(req.EndpointID),
		MAC:       in.MacAddress,
	}
	resp := &api.CreateEndpointResponse{Interface: &api.EndpointInterface{}}
	if ep.MAC == "" {
		ep.MAC = bridge.RandomMAC().String()
		resp.Interface.MacAddress = ep.MAC
	} else if _, err := validate.MAC(ep.MAC); err != nil {
		return nil, nil, fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	var err error
	if ep.IPv4, err = optionalPrefix(in.Address); err != nil {
		return nil, nil, fmt.Errorf("bad IPv4 address %q from Docker", in.Address)
	}
	if ep.IPv6, err = optionalPrefix(in.AddressIPv6); err != nil {
		return nil, nil, fmt.Errorf("bad IPv6 address %q from Docker", in.AddressIPv6)
	}
	if ep.Ports, err = portmap.Parse(req.Options); err != nil {
		return nil, nil, fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	if ep.Ifname, err = endpointIfname(req.Options); err != nil {
		return nil, nil, fmt.Errorf("endpoint %s: %w", short(ep.ID), err)
	}
	return ep, resp, nil
}

// allocateMissing allocates the address of each family Docker gave ep
// none of, when dualstack's IPAM holds the network's pool of that family,
// and tells Docker in out. On failure it gives back what it allocated.
func (d *Driver) allocateMissing(n *network, ep *endpoint, out *api.EndpointInterface) error {
	owner := addrbook.EndpointOwner(ep.ID)
	var err error
	if !ep.IPv4.IsValid() && len(n.V4) > 0 && n.V4[0].PoolID != "" {
		if ep.IPv4, err = d.cfg.Book.Allocate(n.V4[0].PoolID, owner); err != nil {
			return err
		}
		ep.Allocated = append(ep.Allocated, extraAddr{PoolID: n.V4[0].PoolID, Addr: ep.IPv4})
		out.Address = ep.IPv4.String()
	}
	if !ep.IPv6.IsValid() && len(n.V6) > 0 && n.V6[0].PoolID != "" {
		if ep.IPv6, err = d.cfg.Book.Allocate(n.V6[0].PoolID, owner); err != nil {
			d.releaseAll(ep)
			return err
		}
		ep.Allocated = append(ep.Allocated, extraAddr{PoolID: n.V6[0].PoolID, Addr: ep.IPv6})
		out.AddressIPv6 = ep.IPv6.String()
	}
	return nil
}

// recordEndpoint records ep, with one address from every other IPv6 pool
// of n committed together with the record: one commit for the lot.
func (d *Driver) recordEndpoint(n *network, ep *endpoint) error {
	var extraPools []string
	for _, p := range n.V6 {
		if p.PoolID != "" && !(ep.IPv6.IsValid() && p.Prefix.Contains(ep.IPv6.Addr())) {
			extraPools = append(extraPools, p.PoolID)
		}
	}
	// In a sticky network, under the container's name (sticky.go).
	name := d.stickyName(n, ep)
	// One commit for the lot: the extra addresses, the endpoint's record
	// and its claim in the address book. On failure nothing of it remains.
	err := d.cfg.Book.Update(func(tx *addrbook.Tx) error {
		extra, err := tx.AllocateEachNamed(extraPools, addrbook.EndpointOwner(ep.ID), name)
		if err != nil {
			return err
		}
		ep.Extra = ep.Extra[:0]
		for i, a := range extra {
			ep.Extra = append(ep.Extra, extraAddr{PoolID: extraPools[i], Addr: a})
		}
		tx.Claim(ep.claim())
		return put(tx, bucketEndpoints, ep.ID, ep)
	})
	switch {
	case err == nil:
		return nil
	case len(extraPools) > 0:
		// Not ours to release: the book took them back.
		ep.Extra = nil
		return fmt.Errorf("extra IPv6 addresses for endpoint %s: %w", short(ep.ID), err)
	}
	return fmt.Errorf("record endpoint %s in the state file: %w", ep.ID, err)
}

func optionalPrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, nil
	}
	return netip.ParsePrefix(s)
}

// allocated lists, by pool, the addresses dualstack allocated for ep.
func (ep *endpoint) allocated() map[string][]netip.Addr {
	addrs := map[string][]netip.Addr{}
	for _, x := range append(append([]extraAddr{}, ep.Allocated...), ep.Extra...) {
		addrs[x.PoolID] = append(addrs[x.PoolID], x.Addr.Addr())
	}
	return addrs
}

// releaseAll gives back every address dualstack allocated for ep.
func (d *Driver) releaseAll(ep *endpoint) {
	if err := d.cfg.Book.Update(func(tx *addrbook.Tx) error { return tx.ReleaseEach(ep.allocated()) }); err != nil {
		d.log.WithField("endpoint", short(ep.ID)).WithField("addresses", prefixes(ep.addresses())).WithError(err).Warn("release the endpoint's addresses")
	}
}

// DeleteEndpoint removes the veth pair, releases the extra addresses and
// forgets the endpoint. An unknown endpoint or a missing link is success.
func (d *Driver) DeleteEndpoint(req *api.DeleteEndpointRequest) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[req.EndpointID]
	if !ok {
		return nil
	}
	return d.deleteEndpoint(ep)
}

func (d *Driver) deleteEndpoint(ep *endpoint) error {
	d.joins.cancel(ep.ID)
	published := len(ep.Published) > 0
	if err := d.unpublish(ep); err != nil {
		return err
	}
	ep.Sandbox = ""
	if published {
		// Recorded at once: should a step below fail, the next start must
		// not publish again for an address Docker may give to another
		// container.
		if err := save(d.cfg.DB, "endpoint "+ep.ID, func(tx state.Tx) error { return put(tx, bucketEndpoints, ep.ID, ep) }); err != nil {
			return err
		}
	}
	// An endpoint's network is there while it is: New loads no endpoint of
	// an unknown network, and a network deletes its endpoints first.
	n := d.networks[ep.NetworkID]
	if err := d.silence(n, ep); err != nil {
		return err
	}
	if err := d.plane(n).deleteEndpoint(n, ep); errors.Is(err, links.ErrNotOwned) {
		d.log.WithField("endpoint", short(ep.ID)).WithError(err).Warn("endpoint deleted; a link of its name that is not its own is left alone")
	} else if err != nil {
		return err
	}
	if err := d.forget(ep); err != nil {
		return err
	}
	d.log.WithField("endpoint", short(ep.ID)).Info("endpoint deleted")
	return nil
}

// forget drops ep's record and gives back the addresses dualstack
// allocated for it, in one commit.
func (d *Driver) forget(ep *endpoint) error {
	err := d.cfg.Book.Update(func(tx *addrbook.Tx) error {
		if err := tx.ReleaseEach(ep.allocated()); err != nil {
			return err
		}
		tx.Unclaim(ep.ID)
		return del(tx, bucketEndpoints, ep.ID)
	})
	if err != nil {
		return fmt.Errorf("forget endpoint %s: %w", short(ep.ID), err)
	}
	delete(d.endpoints, ep.ID)
	return nil
}

// EndpointInfo reports the veth names, the MAC and every address.
func (d *Driver) EndpointInfo(req *api.InfoRequest) (*api.InfoResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ep, ok := d.endpoints[req.EndpointID]
	if !ok {
		return &api.InfoResponse{Value: map[string]string{}}, nil
	}
	return &api.InfoResponse{Value: map[string]string{
		"host_veth":      ep.HostVeth,
		"container_veth": ep.PeerVeth,
		"mac_address":    ep.MAC,
		"addresses":      prefixes(ep.addresses()),
	}}, nil
}
