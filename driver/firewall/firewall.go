// Package firewall owns dualstack's packet-filter rules, in both families,
// through iptables or ip6tables of the backend the host uses (nft or
// legacy, see DetectBackend).
//
// All rules live in dualstack's own chains (DUALSTACK-…), jumped to once
// from the top of filter FORWARD, nat PREROUTING, OUTPUT and POSTROUTING
// and raw PREROUTING. A network contributes its forwarding policy (replies
// in, new connections from outside dropped, icc, internal isolation) and
// its masquerading; a published port contributes a DNAT rule and the
// accept rule that lets the translated connection through. IPv6 is routed
// unless the network asks for NAT, so the filter is what keeps containers'
// IPv6 ports closed.
//
// Rules are written in iptables-save's own form, so Reset can compare the
// rules found in a chain with the wanted ones and fix the difference
// without flushing anything: a restart neither duplicates a rule nor opens
// a gap in the filter.
package firewall

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Firewall programs dualstack's rules. It is not safe for concurrent use;
// the network driver serialises its calls.
type Firewall struct {
	backend Backend
	tables  map[Family]*iptables.IPTables
}

// New returns a Firewall using backend's iptables and ip6tables; an empty
// backend means the one DetectBackend finds.
func New(backend Backend) (*Firewall, error) {
	if backend == "" {
		backend = DetectBackend()
	}
	fw := &Firewall{backend: backend, tables: map[Family]*iptables.IPTables{}}
	for _, f := range []Family{IPv4, IPv6} {
		t, err := iptables.New(iptables.IPFamily(proto(f)), iptables.Path(backend.command(f)))
		if err != nil {
			return nil, fmt.Errorf("firewall: %s (%s backend): %w", backend.command(f), backend, err)
		}
		fw.tables[f] = t
	}
	return fw, nil
}

// Backend reports the backend in use.
func (fw *Firewall) Backend() Backend { return fw.backend }

func proto(f Family) iptables.Protocol {
	if f == IPv6 {
		return iptables.ProtocolIPv6
	}
	return iptables.ProtocolIPv4
}

// each runs fn for both families and joins their errors.
func (fw *Firewall) each(fn func(f Family, t *iptables.IPTables) error) error {
	var errs []error
	for _, f := range []Family{IPv4, IPv6} {
		if err := fn(f, fw.tables[f]); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", fw.backend.command(f), err))
		}
	}
	return errors.Join(errs...)
}

// ensure creates dualstack's chains, the skeleton of ChainForward and the
// hooks, where missing. A hook that exists anywhere in its chain is left
// where it is; a missing one is inserted at the top, ahead of Docker's.
func ensure(f Family, t *iptables.IPTables) error {
	for _, c := range chains(f) {
		ok, err := t.ChainExists(c.table, c.chain)
		if err != nil {
			return err
		}
		if !ok {
			if err := t.NewChain(c.table, c.chain); err != nil {
				return err
			}
		}
	}
	forward, err := listRules(t, "filter", ChainForward)
	if err != nil {
		return err
	}
	if !skeletonFirst(forward) {
		// Out of place: put the whole skeleton back at the top.
		for _, s := range skeleton {
			if err := deleteAll(t, "filter", ChainForward, s); err != nil {
				return err
			}
		}
		for j, s := range skeleton {
			if err := t.Insert("filter", ChainForward, j+1, s...); err != nil {
				return err
			}
		}
	}
	for _, h := range hooks(f) {
		ok, err := t.Exists(h.table, h.chain, h.spec...)
		if err != nil {
			return err
		}
		if !ok {
			if err := t.Insert(h.table, h.chain, 1, h.spec...); err != nil {
				return err
			}
		}
	}
	return nil
}

// deleteAll deletes every copy of a rule.
func deleteAll(t *iptables.IPTables, table, chain string, spec []string) error {
	for {
		ok, err := t.Exists(table, chain, spec...)
		if err != nil || !ok {
			return err
		}
		if err := t.Delete(table, chain, spec...); err != nil {
			return err
		}
	}
}

// EnsureHooks puts back chains and jumps that someone removed, for
// instance a firewall manager that flushed the tables.
func (fw *Firewall) EnsureHooks() error {
	return fw.each(ensure)
}

// AddNetwork adds n's rules. It is idempotent.
func (fw *Firewall) AddNetwork(n Network) error {
	err := fw.each(func(f Family, t *iptables.IPTables) error {
		if err := ensure(f, t); err != nil {
			return err
		}
		return appendRules(t, networkRules(n, f))
	})
	if err != nil {
		return fmt.Errorf("firewall: add rules of bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// RemoveNetwork deletes n's rules; rules already gone are fine.
func (fw *Firewall) RemoveNetwork(n Network) error {
	err := fw.each(func(f Family, t *iptables.IPTables) error {
		return deleteRules(t, networkRules(n, f))
	})
	if err != nil {
		return fmt.Errorf("firewall: remove rules of bridge %s: %w", n.Bridge, err)
	}
	return nil
}

// AddPorts publishes ports. It is idempotent.
func (fw *Firewall) AddPorts(ports []Port) error {
	for _, p := range ports {
		t := fw.tables[p.Family()]
		// The chains exist while a network does; look only if they don't.
		err := appendRules(t, portRules(p))
		if err != nil {
			if err = ensure(p.Family(), t); err == nil {
				err = appendRules(t, portRules(p))
			}
		}
		if err != nil {
			return fmt.Errorf("firewall: publish %s: %w", p, err)
		}
	}
	return nil
}

// RemovePorts revokes published ports; rules already gone are fine.
func (fw *Firewall) RemovePorts(ports []Port) error {
	var errs []error
	for _, p := range ports {
		if err := deleteRules(fw.tables[p.Family()], portRules(p)); err != nil {
			errs = append(errs, fmt.Errorf("firewall: revoke %s: %w", p, err))
		}
	}
	return errors.Join(errs...)
}

// Rules inside dualstack's chains are found by their text in the
// chain's listing and deleted by number, never with iptables -C or -D and
// a rule spec: ip6tables-legacy (1.8.9) compares rules without their
// matches' data, so -C finds "--dport 8080" when asked for "--dport
// 8082" and -D may delete the wrong rule. Only dualstack writes to its
// chains, and the driver serialises its calls, so numbers are stable
// between listing and deleting. Hooks, in chains others share, are found
// and deleted by spec: each jumps to a chain of dualstack's, and targets
// are compared correctly.

// listRules returns the specs of chain's rules, in order (rule n is at
// index n-1).
func listRules(t *iptables.IPTables, table, chain string) ([]string, error) {
	lines, err := t.List(table, chain)
	if err != nil {
		return nil, err
	}
	var specs []string
	for _, l := range lines {
		if spec, ok := strings.CutPrefix(l, "-A "+chain+" "); ok {
			specs = append(specs, spec)
		}
	}
	return specs, nil
}

type chainKey struct{ table, chain string }

// byChain groups rule specs by chain, keeping their order.
func byChain(rules []rule) ([]chainKey, map[chainKey][]string) {
	var keys []chainKey
	m := map[chainKey][]string{}
	for _, r := range rules {
		k := chainKey{r.table, r.chain}
		if _, ok := m[k]; !ok {
			keys = append(keys, k)
		}
		m[k] = append(m[k], strings.Join(r.spec, " "))
	}
	return keys, m
}

func appendRules(t *iptables.IPTables, rules []rule) error {
	keys, m := byChain(rules)
	for _, k := range keys {
		have, err := listRules(t, k.table, k.chain)
		if err != nil {
			return err
		}
		for _, s := range m[k] {
			if slices.Contains(have, s) {
				continue
			}
			if err := t.Append(k.table, k.chain, strings.Fields(s)...); err != nil {
				return err
			}
			have = append(have, s)
		}
	}
	return nil
}

// deleteByNumber deletes the rules at the given indexes of a listing,
// from the last up so that the numbers of the others stay valid.
func deleteByNumber(t *iptables.IPTables, table, chain string, idx []int) error {
	slices.Sort(idx)
	for i := len(idx) - 1; i >= 0; i-- {
		if err := t.DeleteById(table, chain, idx[i]+1); err != nil {
			return err
		}
	}
	return nil
}

func deleteRules(t *iptables.IPTables, rules []rule) error {
	keys, m := byChain(rules)
	var errs []error
	for _, k := range keys {
		if ok, err := t.ChainExists(k.table, k.chain); err != nil || !ok {
			continue
		}
		have, err := listRules(t, k.table, k.chain)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var idx []int
		for i, s := range have {
			if slices.Contains(m[k], s) {
				idx = append(idx, i)
			}
		}
		if err := deleteByNumber(t, k.table, k.chain, idx); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Reset makes dualstack's chains hold exactly the rules of networks and
// ports, changing only what differs: stale rules go, missing ones come,
// duplicates are removed. With no network at all it removes everything
// (see Cleanup).
func (fw *Firewall) Reset(networks []Network, ports []Port) error {
	if len(networks) == 0 {
		return fw.Cleanup()
	}
	// The usual case (a restart, the periodic check): all in place, seen
	// with one iptables-save per family instead of a listing per chain.
	rss := fw.snapshot()
	return fw.each(func(f Family, t *iptables.IPTables) error {
		want := wanted(f, networks, ports)
		if rss[f].holds(f, want) {
			return nil
		}
		if err := ensure(f, t); err != nil {
			return err
		}
		for _, c := range chains(f) {
			if err := syncChain(t, c.table, c.chain, want); err != nil {
				return fmt.Errorf("%s %s: %w", c.table, c.chain, err)
			}
		}
		return nil
	})
}

// wanted is every rule of family f that networks and ports need.
func wanted(f Family, networks []Network, ports []Port) []rule {
	var want []rule
	for _, n := range networks {
		want = append(want, networkRules(n, f)...)
	}
	for _, p := range ports {
		if p.Family() == f {
			want = append(want, portRules(p)...)
		}
	}
	return want
}

// skeletonFirst reports whether ChainForward's rules (specs, in order)
// start with the skeleton.
func skeletonFirst(forward []string) bool {
	for i, s := range skeleton {
		if len(forward) <= i || forward[i] != strings.Join(s, " ") {
			return false
		}
	}
	return true
}

// chainDiff compares a chain's rules (specs, in order) with the rules of
// want meant for it: the indexes of the rules to delete (not wanted, or a
// duplicate) and the specs to append, in want's order. ChainForward's
// skeleton is neither.
func chainDiff(table, chain string, have []string, want []rule) (stale []int, missing []string) {
	wanted := map[string]bool{}
	var order []string
	for _, r := range want {
		if r.table == table && r.chain == chain {
			s := strings.Join(r.spec, " ")
			if !wanted[s] {
				wanted[s] = true
				order = append(order, s)
			}
		}
	}
	skip := map[string]bool{}
	if chain == ChainForward {
		for _, s := range skeleton {
			skip[strings.Join(s, " ")] = true
		}
	}
	seen := map[string]bool{}
	for i, spec := range have {
		if skip[spec] {
			continue
		}
		if wanted[spec] && !seen[spec] {
			seen[spec] = true
			continue
		}
		stale = append(stale, i)
	}
	for _, s := range order {
		if !seen[s] {
			missing = append(missing, s)
		}
	}
	return stale, missing
}

// syncChain makes chain hold the rules of want that belong to it, plus the
// skeleton for ChainForward.
func syncChain(t *iptables.IPTables, table, chain string, want []rule) error {
	have, err := listRules(t, table, chain)
	if err != nil {
		return err
	}
	stale, missing := chainDiff(table, chain, have, want)
	if err := deleteByNumber(t, table, chain, stale); err != nil {
		return fmt.Errorf("delete stale rules: %w", err)
	}
	for _, s := range missing {
		if err := t.Append(table, chain, strings.Fields(s)...); err != nil {
			return fmt.Errorf("append %q: %w", s, err)
		}
	}
	return nil
}

// Cleanup removes the hooks and every dualstack chain: the state of a host
// without dualstack networks.
func (fw *Firewall) Cleanup() error {
	rss := fw.snapshot()
	err := fw.each(func(f Family, t *iptables.IPTables) error {
		if rss[f].clean(f) {
			return nil // the usual case: a start without networks
		}
		var errs []error
		for _, h := range hooks(f) {
			if ok, _ := t.ChainExists(h.table, h.chain); !ok {
				continue // a table this kernel lacks
			}
			if err := deleteAll(t, h.table, h.chain, h.spec); err != nil {
				errs = append(errs, err)
			}
		}
		// Flush all before deleting any: ChainForward jumps to the others.
		cs := chains(f)
		for _, c := range cs {
			if ok, _ := t.ChainExists(c.table, c.chain); ok {
				if err := t.ClearChain(c.table, c.chain); err != nil {
					errs = append(errs, err)
				}
			}
		}
		for _, c := range cs {
			if ok, _ := t.ChainExists(c.table, c.chain); ok {
				if err := t.DeleteChain(c.table, c.chain); err != nil {
					errs = append(errs, err)
				}
			}
		}
		return errors.Join(errs...)
	})
	if err != nil {
		return fmt.Errorf("firewall: remove dualstack's chains: %w", err)
	}
	return nil
}
