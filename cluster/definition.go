package cluster

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Modes and route kinds of a cluster network.
const (
	ModeBridge  = "bridge"
	ModeMacvlan = "macvlan"

	RoutesHostGW = "host-gw"
	RoutesNone   = "none"
	RoutesBGP    = "bgp"
)

// Definition is what makes a cluster network the same network on every
// host: hosts that share a cluster network name must agree on all of it, or
// they would cut its subnets into blocks differently. The first host to
// create the network records it (Store.Define); every other host compares
// its own against it.
//
// Use Canonical before comparing or storing: it sorts and masks, so two
// definitions that mean the same thing are equal field by field.
type Definition struct {
	// Mode is the Docker driver mode, ModeBridge or ModeMacvlan.
	Mode string `json:"mode"`
	// Subnets are the network's subnets, IPv4 and IPv6.
	Subnets []netip.Prefix `json:"subnets"`
	// IPRanges maps a subnet to the part of it that dynamic addresses come
	// from (Docker's --ip-range). Subnets without an entry use all of
	// themselves.
	IPRanges map[netip.Prefix]netip.Prefix `json:"ip_ranges,omitempty"`
	// Gateways maps a subnet to its gateway address.
	Gateways map[netip.Prefix]netip.Addr `json:"gateways,omitempty"`
	// HostBlock4 and HostBlock6 are the prefix lengths of the blocks that
	// hosts lease from the IPv4 and IPv6 subnets (0 when the network has no
	// subnet of that family).
	HostBlock4 int `json:"host_block4"`
	HostBlock6 int `json:"host_block6"`
	// Routes says how hosts reach each other's blocks: RoutesHostGW (a
	// route per block via its holder's address), RoutesBGP (announced to
	// routers) or RoutesNone.
	Routes string `json:"routes"`
	// Options holds the remaining network options that must agree across
	// hosts.
	Options map[string]string `json:"options,omitempty"`

	// DefinedBy and DefinedAt record which node first stored the definition
	// and when. Define sets them; they are not part of the comparison.
	DefinedBy string    `json:"defined_by,omitempty"`
	DefinedAt time.Time `json:"defined_at,omitzero"`
}

// Canonical returns d in its canonical form: prefixes masked, IPv4-mapped
// addresses unmapped, subnets sorted (IPv4 first, then by address and
// length), empty maps nil. It does not modify d.
func (d Definition) Canonical() Definition {
	c := d
	c.Mode = strings.TrimSpace(d.Mode)
	c.Routes = strings.TrimSpace(d.Routes)
	c.Subnets = nil
	for _, s := range d.Subnets {
		c.Subnets = append(c.Subnets, normPrefix(s))
	}
	slices.SortFunc(c.Subnets, comparePrefix)
	c.Subnets = slices.Compact(c.Subnets)
	c.IPRanges = nil
	for s, r := range d.IPRanges {
		if c.IPRanges == nil {
			c.IPRanges = map[netip.Prefix]netip.Prefix{}
		}
		c.IPRanges[normPrefix(s)] = normPrefix(r)
	}
	c.Gateways = nil
	for s, g := range d.Gateways {
		if c.Gateways == nil {
			c.Gateways = map[netip.Prefix]netip.Addr{}
		}
		c.Gateways[normPrefix(s)] = g.Unmap().WithZone("")
	}
	c.Options = nil
	if len(d.Options) > 0 {
		c.Options = maps.Clone(d.Options)
	}
	return c
}

// Validate checks that d (in canonical form) is a usable cluster network
// definition.
func (d Definition) Validate() error {
	switch d.Mode {
	case ModeBridge, ModeMacvlan:
	default:
		return fmt.Errorf("mode %q: want %q or %q", d.Mode, ModeBridge, ModeMacvlan)
	}
	switch d.Routes {
	case RoutesHostGW, RoutesBGP, RoutesNone:
	default:
		return fmt.Errorf("routes %q: want %q, %q or %q", d.Routes, RoutesHostGW, RoutesBGP, RoutesNone)
	}
	if len(d.Subnets) == 0 {
		return fmt.Errorf("no subnet: a cluster network needs at least one")
	}
	var has4, has6 bool
	for i, s := range d.Subnets {
		if !s.IsValid() {
			return fmt.Errorf("subnet %d is not a valid prefix", i+1)
		}
		for _, o := range d.Subnets[:i] {
			if o.Overlaps(s) {
				return fmt.Errorf("subnets %s and %s overlap", o, s)
			}
		}
		if s.Addr().Is4() {
			has4 = true
		} else {
			has6 = true
		}
	}
	// Claim checks every block length from the host block length to a
	// single address in one etcd transaction; etcd allows 128 operations
	// per transaction by default, hence the lower bounds.
	if err := checkHostBlock("host_block4", d.HostBlock4, has4, 8, 32); err != nil {
		return err
	}
	if err := checkHostBlock("host_block6", d.HostBlock6, has6, 32, 128); err != nil {
		return err
	}
	for s, r := range d.IPRanges {
		if !slices.Contains(d.Subnets, s) {
			return fmt.Errorf("ip range %s is given for subnet %s, which is not one of the subnets", r, s)
		}
		if !r.IsValid() || r.Addr().BitLen() != s.Addr().BitLen() || r.Bits() < s.Bits() || !s.Contains(r.Addr()) {
			return fmt.Errorf("ip range %s is not inside its subnet %s", r, s)
		}
	}
	for s, g := range d.Gateways {
		if !slices.Contains(d.Subnets, s) {
			return fmt.Errorf("gateway %s is given for subnet %s, which is not one of the subnets", g, s)
		}
		if !s.Contains(g) {
			return fmt.Errorf("gateway %s is not inside its subnet %s", g, s)
		}
	}
	return nil
}

func checkHostBlock(name string, bits int, used bool, min, max int) error {
	if !used {
		if bits != 0 {
			return fmt.Errorf("%s is %d but the network has no subnet of that family: leave it 0", name, bits)
		}
		return nil
	}
	if bits < min || bits > max {
		return fmt.Errorf("%s is %d: want a prefix length between %d and %d", name, bits, min, max)
	}
	return nil
}

// HostBlock is the host block length for the family of p.
func (d Definition) HostBlock(p netip.Prefix) int {
	if p.Addr().Is4() {
		return d.HostBlock4
	}
	return d.HostBlock6
}

// Diff lists, in a stable order, how d ("here") differs from o ("in the
// cluster"), one human-readable line per difference, for example
// `host_block4: 26 here, 24 in the cluster` or
// `subnet fd00:2::/64: here but not in the cluster`. Both are compared in
// canonical form; DefinedBy and DefinedAt are ignored. Nil means equal.
func (d Definition) Diff(o Definition) []string {
	d, o = d.Canonical(), o.Canonical()
	var out []string
	differ := func(what, here, there string) {
		if here != there {
			out = append(out, fmt.Sprintf("%s: %s here, %s in the cluster", what, orNone(here), orNone(there)))
		}
	}
	differ("mode", d.Mode, o.Mode)
	for _, s := range mergedSubnets(d.Subnets, o.Subnets) {
		inD, inO := slices.Contains(d.Subnets, s), slices.Contains(o.Subnets, s)
		switch {
		case inD && !inO:
			out = append(out, fmt.Sprintf("subnet %s: here but not in the cluster", s))
			continue
		case inO && !inD:
			out = append(out, fmt.Sprintf("subnet %s: in the cluster but not here", s))
			continue
		}
		differ("ip range of "+s.String(), prefixString(d.IPRanges, s), prefixString(o.IPRanges, s))
		differ("gateway of "+s.String(), addrString(d.Gateways, s), addrString(o.Gateways, s))
	}
	differ("host_block4", blockString(d.HostBlock4), blockString(o.HostBlock4))
	differ("host_block6", blockString(d.HostBlock6), blockString(o.HostBlock6))
	differ("routes", d.Routes, o.Routes)
	keys := slices.Sorted(maps.Keys(d.Options))
	for k := range o.Options {
		if _, ok := d.Options[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		dv, inD := d.Options[k]
		ov, inO := o.Options[k]
		switch {
		case inD && !inO:
			out = append(out, fmt.Sprintf("option %s: %q here but not in the cluster", k, dv))
		case inO && !inD:
			out = append(out, fmt.Sprintf("option %s: %q in the cluster but not here", k, ov))
		case dv != ov:
			out = append(out, fmt.Sprintf("option %s: %q here, %q in the cluster", k, dv, ov))
		}
	}
	return out
}

// Equal reports whether d and o define the same network.
func (d Definition) Equal(o Definition) bool { return len(d.Diff(o)) == 0 }

// Summary is a one-line description for status output, for example
// `bridge, routes host-gw, 10.10.0.0/16 in /26 blocks (gateway 10.10.0.1),
// fd00:10::/64 in /80 blocks`.
func (d Definition) Summary() string {
	d = d.Canonical()
	parts := []string{d.Mode, "routes " + orNone(d.Routes)}
	for _, s := range d.Subnets {
		p := fmt.Sprintf("%s in /%d blocks", s, d.HostBlock(s))
		var extra []string
		if r, ok := d.IPRanges[s]; ok {
			extra = append(extra, "ip range "+r.String())
		}
		if g, ok := d.Gateways[s]; ok {
			extra = append(extra, "gateway "+g.String())
		}
		if len(extra) > 0 {
			p += " (" + strings.Join(extra, ", ") + ")"
		}
		parts = append(parts, p)
	}
	for _, k := range slices.Sorted(maps.Keys(d.Options)) {
		parts = append(parts, k+"="+d.Options[k])
	}
	return strings.Join(parts, ", ")
}

// MismatchError is Define's answer when the cluster store holds a
// different definition for the network.
type MismatchError struct {
	Network     string
	DefinedBy   string   // the node that first stored the cluster's definition
	Differences []string // Definition.Diff of ours against the cluster's
	Cluster     Definition
}

func (e *MismatchError) Error() string {
	by := e.DefinedBy
	if by == "" {
		by = "unknown"
	}
	return fmt.Sprintf("cluster network %q is defined differently in the cluster store (first defined by node %s): %s: create the network with the cluster's definition, or use another cluster name",
		e.Network, by, strings.Join(e.Differences, "; "))
}

func comparePrefix(a, b netip.Prefix) int {
	if a.Addr().BitLen() != b.Addr().BitLen() {
		return a.Addr().BitLen() - b.Addr().BitLen()
	}
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

func mergedSubnets(a, b []netip.Prefix) []netip.Prefix {
	all := slices.Concat(a, b)
	slices.SortFunc(all, comparePrefix)
	return slices.Compact(all)
}

func prefixString(m map[netip.Prefix]netip.Prefix, k netip.Prefix) string {
	if v, ok := m[k]; ok {
		return v.String()
	}
	return ""
}

func addrString(m map[netip.Prefix]netip.Addr, k netip.Prefix) string {
	if v, ok := m[k]; ok {
		return v.String()
	}
	return ""
}

func blockString(bits int) string {
	if bits == 0 {
		return ""
	}
	return fmt.Sprint(bits)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
