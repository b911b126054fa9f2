// Package ipamcheck is `dualstack ipam check`: it compares the plugin's
// view of its addresses and links (its state file, the address book, the
// kernel's links and routes it owns, the cluster store's claims of the
// host) with Docker's (the networks and endpoints of the engine), and
// reports leaks and orphans, each with its fix, as `calicoctl ipam check`
// does. It only compares: the plugin builds its view (GET /dualstack/ipam)
// and releases what the CLI names (POST /dualstack/ipam/release); the CLI
// reads Docker's view from the Engine API.
package ipamcheck

import (
	"fmt"
	"net/netip"
	"strings"
)

// Paths of the operator's calls on the plugin's socket.
const (
	ViewPath    = "/dualstack/ipam"
	ReleasePath = "/dualstack/ipam/release"
)

// PluginView is the plugin's answer to GET /dualstack/ipam.
type PluginView struct {
	Networks  []Network  `json:"networks"`
	Endpoints []Endpoint `json:"endpoints"`
	Pools     []Pool     `json:"pools"`
	// Links are the kernel's links that look like dualstack's: marked as
	// its own (alias "dualstack:OWNER"), or named as it names them.
	Links []Link `json:"links"`
	// Routes are the routes of dualstack's protocols in the main table,
	// Rules the policy rules of those protocols (dualstack makes none).
	Routes []Route `json:"routes"`
	Rules  []Rule  `json:"rules"`
	// Cluster lists what the cluster store says this host holds, for a
	// host in a cluster; ClusterError says why it could not be read.
	Cluster      []ClusterHold `json:"cluster,omitempty"`
	ClusterError string        `json:"clusterError,omitempty"`
	// Errors are what the plugin could not read (the kernel's tables).
	Errors []string `json:"errors,omitempty"`
}

// Network is a network of the plugin's network driver.
type Network struct {
	ID      string   `json:"id"`
	Mode    string   `json:"mode"`
	Bridge  string   `json:"bridge,omitempty"`
	Parent  string   `json:"parent,omitempty"`
	Cluster string   `json:"cluster,omitempty"`
	Subnets []Subnet `json:"subnets"`
	// Links are the names of the links the network has on the host
	// (its bridge, a macvlan network's host link or own parent), Owners
	// the marks they carry.
	Links  []string `json:"links,omitempty"`
	Owners []string `json:"owners,omitempty"`
}

// Subnet is one subnet of a network.
type Subnet struct {
	Prefix  netip.Prefix `json:"prefix"`
	Gateway netip.Addr   `json:"gateway,omitzero"`
	// Pool is the address book's pool, "" for another IPAM driver's.
	Pool string `json:"pool,omitempty"`
}

// Endpoint is an endpoint of the plugin's network driver.
type Endpoint struct {
	ID      string `json:"id"`
	Network string `json:"network"`
	MAC     string `json:"mac"`
	// Addresses are every address of the endpoint, in every subnet.
	Addresses []netip.Addr `json:"addresses"`
	// HostLink is the host side of a bridge endpoint's veth pair ("" for
	// a macvlan child, which lives in its container); PeerLink the
	// container side's name before Docker moves it.
	HostLink string `json:"hostLink,omitempty"`
	PeerLink string `json:"peerLink,omitempty"`
	// Owner is the mark of its links.
	Owner  string `json:"owner"`
	Joined bool   `json:"joined,omitempty"`
}

// Pool is a pool of the address book.
type Pool struct {
	ID     string       `json:"id"`
	Subnet netip.Prefix `json:"subnet"`
	Range  netip.Prefix `json:"range,omitzero"`
	// Network is the plugin's network that holds the pool, if any.
	Network     string         `json:"network,omitempty"`
	Cluster     string         `json:"cluster,omitempty"`
	Blocks      []netip.Prefix `json:"blocks,omitempty"`
	Allocations []Allocation   `json:"allocations"`
}

// Allocation is an allocated address and its owner.
type Allocation struct {
	Address netip.Addr `json:"address"`
	// Kind is the owner's kind (mac, endpoint, gateway, sticky, ...), ID
	// its ID (the MAC address, the endpoint or network ID, the name).
	Kind string `json:"kind"`
	ID   string `json:"id,omitempty"`
}

// Link is a link of the kernel's that looks like dualstack's.
type Link struct {
	Name string `json:"name"`
	Type string `json:"type"`
	// Mark is the owner the link is marked with, "" for none.
	Mark   string `json:"mark,omitempty"`
	Master string `json:"master,omitempty"`
}

// Route is a route of one of dualstack's protocols.
type Route struct {
	Dst      netip.Prefix `json:"dst"`
	Type     string       `json:"type,omitempty"`
	Dev      string       `json:"dev,omitempty"`
	Via      netip.Addr   `json:"via,omitzero"`
	Protocol int          `json:"protocol"`
	// Wanted: the plugin keeps it (a host-gw or learned route it
	// installed, a delegated prefix's unreachable route).
	Wanted bool `json:"wanted"`
}

// Rule is a policy rule of one of dualstack's protocols.
type Rule struct {
	Family   string       `json:"family"`
	Priority int          `json:"priority"`
	Src      netip.Prefix `json:"src,omitzero"`
	Dst      netip.Prefix `json:"dst,omitzero"`
	Table    int          `json:"table"`
	Protocol int          `json:"protocol"`
}

// ClusterHold is a block or an address the cluster store says this host
// holds.
type ClusterHold struct {
	Network string       `json:"network"`
	Block   netip.Prefix `json:"block,omitzero"`
	Address netip.Addr   `json:"address,omitzero"`
}

// Release is POST /dualstack/ipam/release: exactly what to release.
type Release struct {
	Addresses []PoolAddress `json:"addresses,omitempty"`
	Links     []string      `json:"links,omitempty"`
	Routes    []RouteSpec   `json:"routes,omitempty"`
}

// RouteSpec names a route of dualstack's in the main table.
type RouteSpec struct {
	Dst      netip.Prefix `json:"dst"`
	Protocol int          `json:"protocol"`
}

func (r RouteSpec) String() string { return fmt.Sprintf("%s proto %d", r.Dst, r.Protocol) }

// PoolAddress is an address of a pool.
type PoolAddress struct {
	Pool    string     `json:"pool"`
	Address netip.Addr `json:"address"`
}

// Released is the answer to a release: what was released, and what was
// gone already (a release asked again changes nothing).
type Released struct {
	Addresses []PoolAddress `json:"addresses"`
	Links     []string      `json:"links"`
	Routes    []RouteSpec   `json:"routes,omitempty"`
	// Gone names what was gone already: "address A of pool P", "link
	// NAME", "route DST proto N".
	Gone []string `json:"gone,omitempty"`
}

// LinkUser names the network or endpoint of v that uses the link called
// name, marked as mark's (""), or "" when none does.
func (v *PluginView) LinkUser(name, mark string) string {
	for _, n := range v.Networks {
		for _, l := range n.Links {
			if l == name {
				return "network " + short(n.ID)
			}
		}
		for _, o := range n.Owners {
			if mark != "" && o == mark {
				return "network " + short(n.ID)
			}
		}
	}
	for _, ep := range v.Endpoints {
		if ep.HostLink == name || ep.PeerLink == name || mark != "" && ep.Owner == mark {
			return "endpoint " + short(ep.ID)
		}
	}
	return ""
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// RefusedError is a release the plugin refused, changing nothing.
type RefusedError struct {
	Reasons []string
}

func (e *RefusedError) Error() string {
	return "refused, nothing released: " + strings.Join(e.Reasons, "; ")
}
