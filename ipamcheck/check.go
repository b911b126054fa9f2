package ipamcheck

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
)

// Kinds of finding.
const (
	// LeakedAddress: an allocation whose owner no endpoint of the
	// plugin's nor of Docker's explains (released by --release).
	LeakedAddress = "leaked-address"
	// LeftLink: a link of dualstack's that no network or endpoint of the
	// plugin uses (released by --release).
	LeftLink = "left-link"
	// OrphanEndpoint: an endpoint of the plugin's that Docker does not know.
	OrphanEndpoint = "orphan-endpoint"
	// EndpointWithoutLink: a bridge endpoint whose host side is gone.
	EndpointWithoutLink = "endpoint-without-link"
	// LeftRoute, LeftRule: a route (released by --release) or policy
	// rule of dualstack's protocols that the plugin does not keep.
	LeftRoute = "left-route"
	LeftRule  = "left-rule"
	// UnbookedAddress: an address Docker gave an endpoint that the
	// address book does not hold.
	UnbookedAddress = "unbooked-address"
	// UnknownPool: a pool whose subnet no network of the plugin's nor of
	// Docker's has: its allocations are not judged.
	UnknownPool = "unknown-pool"
	// ClusterClaim: a block or address the cluster store says this host
	// holds, without a local allocation.
	ClusterClaim = "cluster-claim"
)

// Finding is one thing the check found, with its fix.
type Finding struct {
	Kind   string `json:"kind"`
	Object string `json:"object"`
	Detail string `json:"detail"`
	Fix    string `json:"fix"`
	// Release is what --release releases for it: set for leaked
	// addresses, left links and left routes only.
	Release *Release `json:"release,omitempty"`
}

// Report is what the check found.
type Report struct {
	Findings []Finding `json:"findings"`
	// Warnings are what the check could not see (the plugin's errors, a
	// cluster store that did not answer).
	Warnings []string `json:"warnings,omitempty"`
}

// checker holds what the views say is in use.
type checker struct {
	p  *PluginView
	dv *DockerView
	// held are the addresses endpoints of the plugin's or Docker's have;
	// macs and endpoints their MAC addresses (lower case) and IDs;
	// networks every network ID either knows.
	held      map[netip.Addr]string
	macs      map[string]bool
	endpoints map[string]bool
	networks  map[string]bool
	// subnets are the subnets of Docker's networks with the plugin as
	// IPAM driver, and of the plugin's networks.
	subnets map[netip.Prefix]bool
	// dockerEP names each endpoint Docker knows: container and network.
	dockerEP map[string][2]string
	out      Report
}

// Check compares the plugin's view with Docker's.
func Check(p *PluginView, dv *DockerView) Report {
	c := newChecker(p, dv)
	for _, e := range p.Errors {
		c.out.Warnings = append(c.out.Warnings, "the plugin could not read: "+e)
	}
	if p.ClusterError != "" {
		c.out.Warnings = append(c.out.Warnings, "the cluster store's claims were not compared: "+p.ClusterError)
	}
	c.addresses()
	c.endpointsAndLinks()
	c.routes()
	c.docker()
	c.cluster()
	sort.SliceStable(c.out.Findings, func(i, j int) bool {
		a, b := c.out.Findings[i], c.out.Findings[j]
		return a.Kind < b.Kind || a.Kind == b.Kind && a.Object < b.Object
	})
	if c.out.Findings == nil {
		c.out.Findings = []Finding{}
	}
	return c.out
}

func newChecker(p *PluginView, dv *DockerView) *checker {
	c := &checker{p: p, dv: dv, held: map[netip.Addr]string{}, macs: map[string]bool{}, endpoints: map[string]bool{},
		networks: map[string]bool{}, subnets: map[netip.Prefix]bool{}, dockerEP: map[string][2]string{}}
	for _, n := range p.Networks {
		c.networks[n.ID] = true
		for _, s := range n.Subnets {
			c.subnets[s.Prefix.Masked()] = true
		}
	}
	for _, ep := range p.Endpoints {
		c.endpoints[ep.ID] = true
		c.macs[strings.ToLower(ep.MAC)] = true
		for _, a := range ep.Addresses {
			c.held[a] = "endpoint " + short(ep.ID) + " of the plugin"
		}
	}
	for _, n := range dv.Networks {
		c.networks[n.ID] = true
		for _, cfg := range n.IPAM.Config {
			if s, err := netip.ParsePrefix(cfg.Subnet); err == nil {
				c.subnets[s.Masked()] = true
			}
		}
		for _, e := range n.Containers {
			c.endpoints[e.EndpointID] = true
			c.dockerEP[e.EndpointID] = [2]string{e.Name, n.Name}
			if e.MacAddress != "" {
				c.macs[strings.ToLower(e.MacAddress)] = true
			}
			for _, a := range e.Addresses() {
				c.held[a] = "container " + e.Name + " on network " + n.Name
			}
		}
	}
	return c
}

func (c *checker) add(f Finding) { c.out.Findings = append(c.out.Findings, f) }

// addresses finds the leaked addresses of the pools whose network is
// known, and the pools whose network is not.
func (c *checker) addresses() {
	for _, p := range c.p.Pools {
		if p.Network == "" && !c.subnets[p.Subnet.Masked()] {
			if len(p.Allocations) > 0 {
				c.add(Finding{Kind: UnknownPool, Object: "pool " + p.ID,
					Detail: fmt.Sprintf("no network of the plugin's nor of Docker's (with the plugin as driver or IPAM driver) has subnet %s: its %d allocations are not judged", p.Subnet, len(p.Allocations)),
					Fix:    "if a Docker network has the subnet under another driver name, run the check again with --plugin NAME; otherwise its network is gone and the pool is harmless"})
			}
			continue
		}
		for _, a := range p.Allocations {
			if why, ok := c.leaked(a); ok {
				c.add(Finding{Kind: LeakedAddress, Object: fmt.Sprintf("%s in pool %s", a.Address, p.ID), Detail: why,
					Fix:     "dualstack ipam check --release",
					Release: &Release{Addresses: []PoolAddress{{Pool: p.ID, Address: a.Address}}}})
			}
		}
	}
}

// leaked says why allocation a is leaked, if it is.
func (c *checker) leaked(a Allocation) (string, bool) {
	if _, ok := c.held[a.Address]; ok {
		return "", false
	}
	switch a.Kind {
	case "nobody":
		return "allocated with no owner, and no endpoint of the plugin's or Docker's has it", true
	case "mac":
		if c.macs[strings.ToLower(a.ID)] {
			return "", false
		}
		return fmt.Sprintf("allocated to MAC address %s, which no endpoint of the plugin's or Docker's has (a container start whose release never reached the plugin)", a.ID), true
	case "endpoint":
		if c.endpoints[a.ID] {
			return "", false
		}
		return fmt.Sprintf("allocated to endpoint %s, which neither the plugin nor Docker knows", short(a.ID)), true
	case "host-link", "host-address":
		if c.networks[a.ID] {
			return "", false
		}
		return fmt.Sprintf("allocated to the %s of network %s, which neither the plugin nor Docker knows", a.Kind, short(a.ID)), true
	}
	return "", false
}

// endpointsAndLinks finds the plugin's endpoints Docker does not know or
// whose host link is gone, and the links nothing uses.
func (c *checker) endpointsAndLinks() {
	docker := map[string]bool{}
	for _, n := range c.dv.Networks {
		for _, e := range n.Containers {
			docker[e.EndpointID] = true
		}
	}
	have := map[string]bool{}
	for _, l := range c.p.Links {
		have[l.Name] = true
	}
	for _, ep := range c.p.Endpoints {
		obj := fmt.Sprintf("endpoint %s of network %s", short(ep.ID), short(ep.Network))
		if !docker[ep.ID] {
			c.add(Finding{Kind: OrphanEndpoint, Object: obj, Detail: "Docker has no such endpoint: its container is gone, and its delete never reached the plugin",
				Fix: "restart the plugin (docker plugin disable -f dualstack && docker plugin enable dualstack): at its start it forgets endpoints whose links and containers are gone"})
			continue
		}
		if ep.HostLink != "" && !have[ep.HostLink] {
			ce := c.dockerEP[ep.ID]
			c.add(Finding{Kind: EndpointWithoutLink, Object: obj, Detail: fmt.Sprintf("its host link %s is gone: container %s has no connection on network %s", ep.HostLink, ce[0], ce[1]),
				Fix: fmt.Sprintf("docker network disconnect -f %s %s && docker network connect %s %s (or restart the container)", ce[1], ce[0], ce[1], ce[0])})
		}
	}
	for _, l := range c.p.Links {
		if c.p.LinkUser(l.Name, l.Mark) != "" {
			continue
		}
		detail := fmt.Sprintf("a %s named as dualstack names its links, that no network or endpoint of the plugin uses", l.Type)
		if l.Mark != "" {
			detail = fmt.Sprintf("a %s marked as dualstack's %s, which no network or endpoint of the plugin is", l.Type, l.Mark)
		}
		c.add(Finding{Kind: LeftLink, Object: "link " + l.Name, Detail: detail, Fix: "dualstack ipam check --release (or: ip link del " + l.Name + ")",
			Release: &Release{Links: []string{l.Name}}})
	}
}

// routes finds the routes and rules of dualstack's protocols the plugin
// does not keep.
func (c *checker) routes() {
	for _, r := range c.p.Routes {
		if r.Wanted {
			continue
		}
		spec := r.Dst.String()
		if r.Type != "" {
			spec = r.Type + " " + spec
		}
		if r.Via.IsValid() {
			spec += " via " + r.Via.String()
		}
		if r.Dev != "" {
			spec += " dev " + r.Dev
		}
		spec += fmt.Sprintf(" proto %d", r.Protocol)
		c.add(Finding{Kind: LeftRoute, Object: "route " + spec, Detail: "a route of dualstack's protocols that the plugin does not keep",
			Fix: "dualstack ipam check --release (or: ip route del " + spec + ")", Release: &Release{Routes: []RouteSpec{{Dst: r.Dst, Protocol: r.Protocol}}}})
	}
	for _, r := range c.p.Rules {
		c.add(Finding{Kind: LeftRule, Object: fmt.Sprintf("%s rule priority %d table %d proto %d", r.Family, r.Priority, r.Table, r.Protocol),
			Detail: "a policy rule of dualstack's protocols: dualstack makes none",
			Fix:    fmt.Sprintf("ip -%c rule del priority %d", r.Family[3], r.Priority)})
	}
}

// docker finds the addresses of Docker's endpoints, on networks with the
// plugin as IPAM driver, that the address book does not hold.
func (c *checker) docker() {
	booked := map[netip.Addr]bool{}
	var pools []netip.Prefix
	for _, p := range c.p.Pools {
		pools = append(pools, p.Subnet)
		for _, a := range p.Allocations {
			booked[a.Address] = true
		}
	}
	for _, n := range c.dv.Networks {
		if !c.ipamNetwork(n, pools) {
			continue
		}
		for _, e := range n.Containers {
			for _, a := range e.Addresses() {
				if booked[a] {
					continue
				}
				c.add(Finding{Kind: UnbookedAddress, Object: fmt.Sprintf("%s of container %s on network %s", a, e.Name, n.Name),
					Detail: "Docker gave the container this address, but the plugin's address book does not hold it: it may hand it to another container",
					Fix:    fmt.Sprintf("docker restart %s (Docker then asks the plugin for its address again)", e.Name)})
			}
		}
	}
}

// ipamNetwork reports whether the plugin is n's IPAM driver: one of its
// pools has one of n's subnets.
func (c *checker) ipamNetwork(n DockerNetwork, pools []netip.Prefix) bool {
	for _, cfg := range n.IPAM.Config {
		s, err := netip.ParsePrefix(cfg.Subnet)
		if err != nil {
			continue
		}
		for _, p := range pools {
			if p == s.Masked() {
				return true
			}
		}
	}
	return false
}

// cluster finds what the cluster store says this host holds that no
// local pool has.
func (c *checker) cluster() {
	for _, h := range c.p.Cluster {
		var found bool
		for _, p := range c.p.Pools {
			if p.Cluster != h.Network {
				continue
			}
			if h.Block.IsValid() && contains(p.Blocks, h.Block) || h.Address.IsValid() && allocated(p, h.Address) {
				found = true
			}
		}
		if found {
			continue
		}
		obj, what := fmt.Sprintf("block %s of cluster network %s", h.Block, h.Network), "block"
		if h.Address.IsValid() {
			obj, what = fmt.Sprintf("address %s of cluster network %s", h.Address, h.Network), "address"
		}
		c.add(Finding{Kind: ClusterClaim, Object: obj, Detail: fmt.Sprintf("the cluster store says this host holds the %s, but no local pool has it", what),
			Fix: "restart the plugin (docker plugin disable -f dualstack && docker plugin enable dualstack): at its start it compares its blocks with the store's; dualstack cluster status shows the store's view"})
	}
}

func contains(ps []netip.Prefix, p netip.Prefix) bool {
	for _, q := range ps {
		if q == p {
			return true
		}
	}
	return false
}

func allocated(p Pool, a netip.Addr) bool {
	for _, x := range p.Allocations {
		if x.Address == a {
			return true
		}
	}
	return false
}

// Releasable is what --release releases of r: its leaked addresses,
// left links and left routes, nothing else.
func (r Report) Releasable() Release {
	var out Release
	for _, f := range r.Findings {
		if f.Release != nil {
			out.Addresses = append(out.Addresses, f.Release.Addresses...)
			out.Links = append(out.Links, f.Release.Links...)
			out.Routes = append(out.Routes, f.Release.Routes...)
		}
	}
	return out
}

// Empty reports whether rel releases nothing.
func (rel Release) Empty() bool {
	return len(rel.Addresses) == 0 && len(rel.Links) == 0 && len(rel.Routes) == 0
}
