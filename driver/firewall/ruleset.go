package firewall

import (
	"bufio"
	"bytes"
	"slices"
	"strings"
)

// ruleset is what one family's iptables-save printed: for every chain of
// every table (present even when empty), its rules' specs in order.
type ruleset map[chainKey][]string

// parseSave reads iptables-save output.
func parseSave(out []byte) ruleset {
	rs := ruleset{}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			name, _, _ := strings.Cut(line[1:], " ")
			k := chainKey{table, name}
			if _, ok := rs[k]; !ok {
				rs[k] = []string{}
			}
		case strings.HasPrefix(line, "-A "):
			name, spec, _ := strings.Cut(line[len("-A "):], " ")
			k := chainKey{table, name}
			rs[k] = append(rs[k], spec)
		}
	}
	return rs
}

// snapshot reads both families' rules, with one iptables-save each run at
// the same time; a family whose save failed is missing.
func (fw *Firewall) snapshot() map[Family]ruleset {
	outs := saveAll(saveTarget{fw.backend, IPv4}, saveTarget{fw.backend, IPv6})
	rss := map[Family]ruleset{}
	for i, f := range []Family{IPv4, IPv6} {
		if outs[i] != nil {
			rss[f] = parseSave(outs[i])
		}
	}
	return rss
}

// clean reports whether rs has no chain of dualstack's for family f (and
// so no hook either: iptables refuses a jump to a missing chain): Cleanup
// has nothing to do.
func (rs ruleset) clean(f Family) bool {
	if rs == nil {
		return false
	}
	for _, c := range chains(f) {
		if _, ok := rs[chainKey{c.table, c.chain}]; ok {
			return false
		}
	}
	return true
}

// holds reports whether rs is what Reset would make of it for want: every
// chain of dualstack's exists, ChainForward starts with the skeleton, every
// hook is in its chain, and each of dualstack's chains holds exactly the
// rules of want meant for it, once each. Reset changes nothing then, and
// needs no more than the one iptables-save.
func (rs ruleset) holds(f Family, want []rule) bool {
	if rs == nil {
		return false
	}
	for _, c := range chains(f) {
		if _, ok := rs[chainKey{c.table, c.chain}]; !ok {
			return false
		}
	}
	if !skeletonFirst(rs[chainKey{"filter", ChainForward}]) {
		return false
	}
	for _, h := range hooks(f) {
		if !slices.Contains(rs[chainKey{h.table, h.chain}], strings.Join(h.spec, " ")) {
			return false
		}
	}
	for _, c := range chains(f) {
		stale, missing := chainDiff(c.table, c.chain, rs[chainKey{c.table, c.chain}], want)
		if len(stale) > 0 || len(missing) > 0 {
			return false
		}
	}
	return true
}
