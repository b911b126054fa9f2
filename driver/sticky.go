package driver

import (
	"errors"
	"net/netip"
)

// Sticky networks (sticky_addresses=true): the address book keeps a
// container's addresses for its name (addrbook's sticky pools). Docker
// sends the name to the IPAM with each address it asks for; the driver
// tells the book which pools are sticky, and allocates an endpoint's
// addresses in the other IPv6 subnets under the name of its address in
// Docker's, so that every subnet is sticky.

// stickyPools makes n's pools in dualstack's IPAM sticky, as its options
// ask; a sticky network with no such pool is refused.
func (d *Driver) stickyPools(n *network) error {
	if !n.Options.Sticky {
		return nil
	}
	ids := n.poolIDs()
	if len(ids) == 0 {
		return errors.New("bad network options: sticky_addresses=true: dualstack's IPAM keeps the addresses, and another IPAM driver holds the network's subnets: add --ipam-driver dualstack:latest, or drop sticky_addresses")
	}
	for _, id := range ids {
		if err := d.cfg.Book.SetSticky(id, n.Options.StickyHold); err != nil {
			return err
		}
	}
	return nil
}

// stickyName is the container name whose reservation ep's address in one
// of n's pools is, if n is sticky; "" otherwise.
func (d *Driver) stickyName(n *network, ep *endpoint) string {
	if !n.Options.Sticky {
		return ""
	}
	for _, p := range n.pools() {
		for _, a := range []netip.Prefix{ep.IPv4, ep.IPv6} {
			if p.PoolID == "" || !a.IsValid() || !p.Prefix.Contains(a.Addr()) {
				continue
			}
			if name := d.cfg.Book.StickyName(p.PoolID, a.Addr()); name != "" {
				return name
			}
		}
	}
	return ""
}
