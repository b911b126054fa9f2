// Package ipamdriver is dualstack's IPAM driver: Docker's
// docker.ipamdriver/1.0 API over the address book (addrbook), which does
// the allocating.
package ipamdriver

import (
	"fmt"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/ndp"
)

// Option keys Docker sets on RequestAddress.
const (
	optRequestType = "RequestAddressType"
	gatewayType    = "com.docker.network.gateway"
	optMACAddress  = "com.docker.network.endpoint.macaddress"
	// optEndpointName is the container's name (no leading /), which
	// Docker sends from API 1.52 (Docker 29): a sticky pool keeps the
	// container's address under it.
	optEndpointName = "com.docker.network.endpoint.name"
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
	// (see addrbook.Book.retry for when a request counts as a retry). Gateway
	// requests are recognised the same way by their type.
	RequiresRequestReplay bool
}

// Driver implements the IPAM API over an address book.
type Driver struct {
	book *addrbook.Book
	// screens probe the links whose on-link prefixes pools are carved
	// from (--ipam-opt ndp_proxy=IF).
	screens *ndp.Screens
}

// New returns the IPAM driver of book; screens are the network driver's
// (nil: its own).
func New(book *addrbook.Book, screens *ndp.Screens) *Driver {
	if screens == nil {
		screens = ndp.NewScreens(logrus.StandardLogger())
	}
	return &Driver{book: book, screens: screens}
}

// GetCapabilities answers /IpamDriver.GetCapabilities.
func (d *Driver) GetCapabilities() (*Capabilities, error) {
	return &Capabilities{CapabilitiesResponse: ipam.CapabilitiesResponse{RequiresMACAddress: true}}, nil
}

// GetDefaultAddressSpaces answers /IpamDriver.GetDefaultAddressSpaces.
func (d *Driver) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{
		LocalDefaultAddressSpace:  addrbook.LocalAddressSpace,
		GlobalDefaultAddressSpace: addrbook.GlobalAddressSpace,
	}, nil
}

// RequestPool answers /IpamDriver.RequestPool: the given subnet (and
// ip-range), or the next free default pool of the requested family; with
// --ipam-opt ndp_proxy=IF, an IPv6 pool is IF's, screened against what
// IF's link holds, and carved from IF's on-link prefix when no subnet is
// given (onlink.go).
func (d *Driver) RequestPool(req *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	preq := addrbook.PoolRequest{Space: req.AddressSpace, Subnet: req.Pool, Range: req.SubPool, V6: req.V6}
	onLink, err := onLinkRequest(req)
	if err != nil {
		return nil, err
	}
	preq.OnLink = onLink
	p, err := d.book.RequestPool(preq)
	if err != nil {
		return nil, err
	}
	if onLink != nil && req.V6 {
		if err := d.book.SetScreen(p.ID, d.screens.For(onLink.Interface)); err != nil {
			return nil, err
		}
	}
	return &ipam.RequestPoolResponse{PoolID: p.ID, Pool: p.Prefix.String(), Data: map[string]string{}}, nil
}

// ReleasePool answers /IpamDriver.ReleasePool. Releasing an unknown pool
// succeeds.
func (d *Driver) ReleasePool(req *ipam.ReleasePoolRequest) error {
	return d.book.ReleasePool(req.PoolID)
}

// RequestAddress answers /IpamDriver.RequestAddress: the gateway, a
// preferred address, or the next address in sequence. The owner is what
// the request says it is for: the network's gateway (the user's, or one
// for the book to pick), else the endpoint whose MAC address Docker sends;
// the container's name, when Docker sends it, is what a sticky pool keeps
// the address for.
func (d *Driver) RequestAddress(req *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	owner := addrbook.ParseOwner(req.Options[optMACAddress])
	if req.Options[optRequestType] == gatewayType {
		owner = addrbook.Owner{Kind: addrbook.Gateway}
		if req.Address == "" {
			owner.Kind = addrbook.AutoGateway
		}
	}
	a, err := d.book.RequestNamedAddress(req.PoolID, req.Address, owner, req.Options[optEndpointName])
	if err != nil {
		return nil, err
	}
	return &ipam.RequestAddressResponse{Address: a.String(), Data: map[string]string{}}, nil
}

// ReleaseAddress answers /IpamDriver.ReleaseAddress. Releasing an address
// that is not held, or from a pool that is gone, succeeds.
func (d *Driver) ReleaseAddress(req *ipam.ReleaseAddressRequest) error {
	addr, err := addrbook.ParseAddr(req.Address)
	if err != nil {
		return fmt.Errorf("invalid address %q to release from pool %s: %v", req.Address, req.PoolID, err)
	}
	return d.book.Release(req.PoolID, addr)
}
