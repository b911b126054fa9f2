// Package firewall keeps the packet filter from dropping a dualstack
// network's traffic. Hosts where dockerd turned forwarding on have a FORWARD
// policy of DROP, and bridged traffic crosses FORWARD when br_netfilter is
// loaded, so containers of a dualstack bridge could not even reach each
// other. dualstack accepts its own networks' traffic in a chain of its own,
// DUALSTACK-FORWARD, jumped to first from FORWARD, in both families.
//
// This is the part of the firewall the bridge needs: traffic inside a
// network, out of it (unless it is internal) and the replies. Masquerading,
// the routed IPv6 filter and published ports come with the firewall proper.
package firewall

import (
	"fmt"
	"strings"

	"github.com/coreos/go-iptables/iptables"
)

// Chain is dualstack's chain in the filter table.
const Chain = "DUALSTACK-FORWARD"

// Network is what the rules of one network depend on.
type Network struct {
	Bridge   string
	Internal bool
}

// Rules programs the filter tables of both families.
type Rules struct {
	tables []*iptables.IPTables
}

// New finds iptables and ip6tables.
func New() (*Rules, error) {
	var r Rules
	for _, proto := range []iptables.Protocol{iptables.ProtocolIPv4, iptables.ProtocolIPv6} {
		t, err := iptables.NewWithProtocol(proto)
		if err != nil {
			return nil, fmt.Errorf("firewall: %w", err)
		}
		r.tables = append(r.tables, t)
	}
	return &r, nil
}

// rules returns the rule specs of n.
func rules(n Network) [][]string {
	out := [][]string{{"-i", n.Bridge, "-o", n.Bridge, "-j", "ACCEPT"}}
	if !n.Internal {
		out = append(out,
			[]string{"-i", n.Bridge, "!", "-o", n.Bridge, "-j", "ACCEPT"},
			[]string{"-o", n.Bridge, "-m", "conntrack", "--ctstate", "RELATED,ESTABLISHED", "-j", "ACCEPT"})
	}
	return out
}

func family(t *iptables.IPTables) string {
	if t.Proto() == iptables.ProtocolIPv6 {
		return "ip6tables"
	}
	return "iptables"
}

// ensureChain creates the chain and the jump to it at the top of FORWARD.
func ensureChain(t *iptables.IPTables) error {
	ok, err := t.ChainExists("filter", Chain)
	if err != nil {
		return err
	}
	if !ok {
		if err := t.NewChain("filter", Chain); err != nil {
			return err
		}
	}
	// The jump must come before Docker's own rules and its DROP policy.
	rules, err := t.List("filter", "FORWARD")
	if err != nil {
		return err
	}
	if len(rules) > 1 && rules[1] == "-A FORWARD -j "+Chain {
		return nil
	}
	_ = t.DeleteIfExists("filter", "FORWARD", "-j", Chain)
	return t.Insert("filter", "FORWARD", 1, "-j", Chain)
}

// Add accepts n's traffic. It is idempotent.
func (r *Rules) Add(n Network) error {
	for _, t := range r.tables {
		if err := ensureChain(t); err != nil {
			return fmt.Errorf("firewall: %s: %w", family(t), err)
		}
		for _, spec := range rules(n) {
			if err := t.AppendUnique("filter", Chain, spec...); err != nil {
				return fmt.Errorf("firewall: accept traffic of bridge %s: %w", n.Bridge, err)
			}
		}
	}
	return nil
}

// Remove deletes n's rules; missing rules are fine.
func (r *Rules) Remove(n Network) error {
	var errs []string
	for _, t := range r.tables {
		if ok, _ := t.ChainExists("filter", Chain); !ok {
			continue
		}
		for _, spec := range rules(n) {
			if err := t.DeleteIfExists("filter", Chain, spec...); err != nil {
				errs = append(errs, err.Error())
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("firewall: remove rules of bridge %s: %s", n.Bridge, strings.Join(errs, "; "))
	}
	return nil
}

// Reset makes the chain hold exactly the rules of networks, so that
// restarts never duplicate a rule.
func (r *Rules) Reset(networks []Network) error {
	for _, t := range r.tables {
		if err := ensureChain(t); err != nil {
			return fmt.Errorf("firewall: %s: %w", family(t), err)
		}
		if err := t.ClearChain("filter", Chain); err != nil {
			return fmt.Errorf("firewall: %s: %w", family(t), err)
		}
	}
	for _, n := range networks {
		if err := r.Add(n); err != nil {
			return err
		}
	}
	return nil
}
