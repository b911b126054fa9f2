package addrbook

import (
	"net"
	"strings"
)

// Kind is what holds an address.
type Kind uint8

// The kinds of owner. The state file keeps an owner as its String, the
// form earlier versions wrote, so that a state file reads the same across
// upgrades.
const (
	// Nobody: an address requested with nothing to say whose it is.
	Nobody Kind = iota
	// MAC: an endpoint's address that Docker asked for, keyed by the MAC
	// address Docker sends with the request (ID, as Docker sent it).
	MAC
	// Endpoint: an address dualstack allocated itself for endpoint ID
	// (the extra IPv6 addresses, a primary address Docker did not give).
	Endpoint
	// HostLink: an address of network ID's host link (macvlan host_link).
	HostLink
	// HostAddress: an address the host itself has in network ID's subnet.
	HostAddress
	// Gateway: a network's gateway the user gave (--gateway).
	Gateway
	// AutoGateway: a network's gateway the address book picked itself.
	AutoGateway
	// OnLink: an address of an on-link pool that another node of the
	// link holds (ID: the host interface), found by the pool's Screen.
	OnLink
	// Sticky: an address of a sticky pool kept for container name ID
	// after its endpoint went, until its reservation ends (sticky.go).
	Sticky
	// Other: an owner string this version does not know, kept as it is.
	Other
)

// Owner is who holds an address: a kind and, for most kinds, an ID.
type Owner struct {
	Kind Kind
	ID   string
}

// Owners of each kind.
func MACOwner(mac string) Owner               { return Owner{MAC, mac} }
func EndpointOwner(endpointID string) Owner   { return Owner{Endpoint, endpointID} }
func HostLinkOwner(networkID string) Owner    { return Owner{HostLink, networkID} }
func HostAddressOwner(networkID string) Owner { return Owner{HostAddress, networkID} }
func OnLinkOwner(link string) Owner           { return Owner{OnLink, link} }
func StickyOwner(name string) Owner           { return Owner{Sticky, name} }

// prefixes are the stored forms of the kinds with an ID.
var prefixes = map[Kind]string{Endpoint: "endpoint:", HostLink: "host-link:", HostAddress: "host-address:", OnLink: "on-link:", Sticky: "sticky:"}

// String is the owner as the state file keeps it.
func (o Owner) String() string {
	switch o.Kind {
	case Nobody:
		return ""
	case Gateway:
		return "gateway"
	case AutoGateway:
		return "gateway:auto"
	case MAC, Other:
		return o.ID
	}
	return prefixes[o.Kind] + o.ID
}

// ParseOwner reads an owner as the state file keeps it.
func ParseOwner(s string) Owner {
	switch s {
	case "":
		return Owner{}
	case "gateway":
		return Owner{Kind: Gateway}
	case "gateway:auto":
		return Owner{Kind: AutoGateway}
	}
	for k, p := range prefixes {
		if id, ok := strings.CutPrefix(s, p); ok {
			return Owner{k, id}
		}
	}
	if _, err := net.ParseMAC(s); err == nil {
		return Owner{MAC, s}
	}
	return Owner{Other, s}
}

// gateway reports whether o is a network's gateway.
func (o Owner) gateway() bool { return o.Kind == Gateway || o.Kind == AutoGateway }
