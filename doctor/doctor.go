// Package doctor checks a host the way support would, for `dualstack
// doctor`: each problem it finds comes with the command or setting that
// fixes it.
//
// The checks run inside the plugin (GET /dualstack/doctor on its socket),
// because the plugin sees the host as it matters: its networks, how it
// reaches container network namespaces, the firewall backend it chose.
// They are pure functions of a Host, the facts gathered once per call
// (Gather reads them from the real host), so that every rule is tested
// without root, with fixtures.
package doctor

import (
	"net/netip"

	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/driver"
)

// Finding is one problem, with what fixes it.
type Finding struct {
	Check    string `json:"check"`    // one of the check IDs
	Severity string `json:"severity"` // SeverityError or SeverityWarning
	Object   string `json:"object"`   // what it is about: "/", "FORWARD", "eth0", a route, a network
	Problem  string `json:"problem"`
	Fix      string `json:"fix"` // the command or setting that fixes it
}

// Severities: an error is something that fails or is unsafe; a warning
// something that works today but is fragile.
const (
	SeverityError   = "error"
	SeverityWarning = "warning"
)

// The checks' IDs.
const (
	CheckMountPropagation = "mount-propagation"
	CheckNetnsAccess      = "netns-access"
	CheckIptablesBackend  = "iptables-backend"
	CheckForwardPolicy    = "forward-policy"
	CheckDockerUser       = "docker-user"
	CheckForwarding       = "forwarding"
	CheckAcceptRA         = "accept-ra"
	CheckRouteCollision   = "route-collision"
	CheckClusterStore     = "cluster-store"
	CheckBGPSession       = "bgp-session"
)

// Report is the doctor's answer: the checks it ran and what they found
// (an empty list, never null, on a healthy host).
type Report struct {
	Checks   []string  `json:"checks"`
	Findings []Finding `json:"findings"`
}

// Host is what the checks look at.
type Host struct {
	// Mountinfo is the mountinfo file of a process in dockerd's mount
	// namespace; MountinfoError why it could not be read.
	Mountinfo      string
	MountinfoError string
	// NetnsMechanism is how the plugin reaches container network
	// namespaces (sandboxkey's Mechanism), NetnsProblem why it cannot,
	// with the remedy ("" when it can).
	NetnsMechanism string
	NetnsProblem   string
	// Backend is the iptables backend of dualstack's rules ("nft" or
	// "legacy"; "" when it has no firewall).
	Backend string
	// Saves are iptables-save's outputs, per backend and family; a
	// missing one could not be read.
	Saves map[Save]string
	// NFTables are the nftables tables, as "FAMILY NAME" ("ip
	// docker-bridges").
	NFTables []string
	// Sysctls by name as internal/sysctl takes them
	// ("net/ipv4/ip_forward"); a missing one could not be read.
	Sysctls map[string]string
	// Routes are the main table's routes, both families.
	Routes []Route
	// Links are the host's links by name; a route's link that is not
	// here is taken for a host interface.
	Links map[string]Link
	// Networks are dualstack's networks.
	Networks []Network
	// Cluster is the cluster store's reachability, nil on a host in no
	// cluster.
	Cluster *Cluster
	// BGP is the BGP speaker's status, nil when the host runs no BGP.
	BGP *bgp.Status
}

// Save names one iptables-save output.
type Save struct {
	Backend string // "nft" or "legacy"
	IPv6    bool
}

// Route is one route of the main table.
type Route struct {
	// Dst is the destination; the default route has length 0.
	Dst netip.Prefix
	// Dev is its interface ("" for a route of several next hops none of
	// which is a host interface).
	Dev   string
	Via   netip.Addr
	Proto int
	// Type is the kernel's route type (unix.RTN_UNICAST, ...).
	Type int
}

// Link is what the checks need to know of one of the host's links.
type Link struct {
	// Dualstack: one of dualstack's own links (marked by its alias).
	Dualstack bool
	// ContainerBridge: the bridge of a container network, Docker's
	// whatever its name.
	ContainerBridge bool
}

// Network is one of dualstack's networks.
type Network = driver.DoctorNetwork

// Cluster is what became of asking the cluster store.
type Cluster struct {
	Endpoints []string
	// Error is why the store did not answer, "" when it did.
	Error string
}

// check is one check: its ID, and the findings of h.
type check struct {
	id  string
	run func(h Host) []Finding
}

// checks are the checks in the order they run.
var checks = []check{
	{CheckMountPropagation, checkMountPropagation},
	{CheckNetnsAccess, checkNetnsAccess},
	{CheckIptablesBackend, checkIptablesBackend},
	{CheckForwardPolicy, checkForwardPolicy},
	{CheckDockerUser, checkDockerUser},
	{CheckForwarding, checkForwarding},
	{CheckAcceptRA, checkAcceptRA},
	{CheckRouteCollision, checkRouteCollision},
	{CheckClusterStore, checkClusterStore},
	{CheckBGPSession, checkBGPSession},
}

// Run runs every check that applies to h (the cluster's only on a
// cluster host, BGP's only where BGP runs).
func Run(h Host) Report {
	r := Report{Checks: []string{}, Findings: []Finding{}}
	for _, c := range checks {
		if c.id == CheckClusterStore && h.Cluster == nil || c.id == CheckBGPSession && h.BGP == nil {
			continue
		}
		r.Checks = append(r.Checks, c.id)
		r.Findings = append(r.Findings, c.run(h)...)
	}
	return r
}
