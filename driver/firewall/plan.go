package firewall

import (
	"bufio"
	"bytes"
	"fmt"
	"slices"
	"strings"
)

type chainKey struct{ table, chain string }

// saved is what one family's iptables-save printed: every chain of every
// table (present even when empty) with its rules' specs in order, and the
// built-in chains' policies.
type saved struct {
	rules    map[chainKey][]string
	policies map[chainKey]string
}

// parseSave reads iptables-save output.
func parseSave(out []byte) saved {
	sv := saved{rules: map[chainKey][]string{}, policies: map[chainKey]string{}}
	table := ""
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) == 0 {
				continue
			}
			k := chainKey{table, f[0]}
			if _, ok := sv.rules[k]; !ok {
				sv.rules[k] = []string{}
			}
			if len(f) > 1 && f[1] != "-" {
				sv.policies[k] = f[1]
			}
		case strings.HasPrefix(line, "-A "):
			name, spec, _ := strings.Cut(line[len("-A "):], " ")
			k := chainKey{table, name}
			sv.rules[k] = append(sv.rules[k], spec)
		}
	}
	return sv
}

// host reads what the host's own rules tell of Docker.
func (sv saved) host() Host {
	var h Host
	h.DockerUser = slices.Contains(sv.rules[chainKey{"filter", "FORWARD"}], "-j DOCKER-USER")
	seen := map[string]bool{}
	for k, rules := range sv.rules {
		if k.table != "filter" {
			continue
		}
		for _, r := range rules {
			f := strings.Fields(r)
			// "-o BR ... -j DOCKER" (FORWARD on Engine 20.10, DOCKER-BRIDGE
			// on current engines) and "-o BR -j DROP" in
			// DOCKER-ISOLATION-STAGE-2 name Docker's bridges.
			if len(f) < 4 || f[0] != "-o" || f[len(f)-2] != "-j" {
				continue
			}
			target := f[len(f)-1]
			if target == "DOCKER" || (k.chain == "DOCKER-ISOLATION-STAGE-2" && target == "DROP") {
				seen[f[1]] = true
			}
		}
	}
	for b := range seen {
		h.DockerBridges = append(h.DockerBridges, b)
	}
	slices.Sort(h.DockerBridges)
	return h
}

// plan returns the iptables-restore --noflush input that makes family f of
// the host whose rules are sv hold exactly want (from Rules) and its hooks,
// with FORWARD policy DROP if drop; "" when it holds them already. Without
// wanted chains, it removes the hooks and chains of dualstack's that sv
// holds. Declaring one of dualstack's chains (":NAME - [0:0]") creates or
// flushes it; the built-in chains are never declared, except FORWARD to set
// its policy, which does not flush it.
func plan(f Family, want []chain, sv saved, drop bool) string {
	var b strings.Builder
	for _, table := range tables(f) {
		var decl, body []string
		if len(want) == 0 {
			// Removal: flush, unhook, delete.
			var gone []string
			for _, c := range chainNames(f) {
				if _, ok := sv.rules[chainKey{table, c.name}]; ok && c.table == table {
					decl = append(decl, ":"+c.name+" - [0:0]")
					gone = append(gone, "-X "+c.name)
				}
			}
			for _, h := range hooks(f) {
				if h.table == table {
					for range count(sv.rules[chainKey{h.table, h.chain}], h.spec) {
						body = append(body, "-D "+h.chain+" "+h.spec)
					}
				}
			}
			body = append(body, gone...)
		} else {
			for _, c := range want {
				if have, ok := sv.rules[chainKey{c.table, c.name}]; c.table != table || ok && slices.Equal(have, c.rules) {
					continue
				}
				decl = append(decl, ":"+c.name+" - [0:0]")
				for _, r := range c.rules {
					body = append(body, "-A "+c.name+" "+r)
				}
			}
			if table == "filter" && drop && sv.policies[chainKey{"filter", "FORWARD"}] != "DROP" {
				decl = append(decl, ":FORWARD DROP [0:0]")
			}
			for _, h := range hooks(f) {
				if h.table == table {
					body = append(body, h.fix(sv.rules[chainKey{h.table, h.chain}])...)
				}
			}
		}
		if len(decl) == 0 && len(body) == 0 {
			continue
		}
		fmt.Fprintf(&b, "*%s\n", table)
		for _, l := range append(decl, body...) {
			b.WriteString(l + "\n")
		}
		b.WriteString("COMMIT\n")
	}
	return b.String()
}

func count(rules []string, spec string) int {
	n := 0
	for _, r := range rules {
		if r == spec {
			n++
		}
	}
	return n
}

// fix returns the restore lines that put hook h in place in its built-in
// chain, whose rules are rules: none when it is there once, where it
// belongs; else every copy is deleted and one inserted where it belongs.
func (h hook) fix(rules []string) []string {
	n := count(rules, h.spec)
	pos, at := 1, -1
	if h.afterDockerUser {
		var rest []string
		for i, r := range rules {
			if r == h.spec {
				at = i
				continue
			}
			rest = append(rest, r)
		}
		if i := slices.Index(rest, "-j DOCKER-USER"); i >= 0 {
			pos = i + 2
		}
	}
	if n == 1 && (!h.afterDockerUser || at == pos-1) {
		return nil
	}
	var out []string
	for range n {
		out = append(out, "-D "+h.chain+" "+h.spec)
	}
	return append(out, fmt.Sprintf("-I %s %d %s", h.chain, pos, h.spec))
}
