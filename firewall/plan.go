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
			for _, b := range dockerBridges(k.chain, r) {
				seen[b] = true
			}
		}
	}
	for b := range seen {
		h.DockerBridges = append(h.DockerBridges, b)
	}
	slices.Sort(h.DockerBridges)
	return h
}

// dockerBridges returns the bridges of Docker's networks that rule r of
// filter chain c names: every output interface ("-o BR", "! -o BR") of a
// rule in one of Docker's chains (DOCKER, DOCKER-FORWARD, DOCKER-BRIDGE,
// DOCKER-CT, DOCKER-INTERNAL, DOCKER-ISOLATION-STAGE-1 and -2, whatever
// the engine's version names them), and in FORWARD those of rules that
// jump to one of them (Engine 20.10's "-o BR -j DOCKER"). Every network
// Docker makes has such a rule, --internal ones ("! -s SUBNET -o BR -j
// DROP") and bridges with a custom name included: Docker names only its
// bridges as output interfaces (a trusted host interface is an input
// interface). DOCKER-USER is the user's, and names whatever the user
// likes; a rule of another manager's in FORWARD ("-i br0 -o br0 -j
// ACCEPT" on a host whose LAN is a bridge) names no Docker network.
func dockerBridges(c, r string) []string {
	docker := strings.HasPrefix(c, "DOCKER") && c != "DOCKER-USER"
	f := strings.Fields(r)
	var out []string
	target := ""
	for i := 0; i+1 < len(f); i++ {
		switch f[i] {
		case "-o":
			// A wildcard (docker+) names no one bridge.
			if !strings.HasSuffix(f[i+1], "+") {
				out = append(out, f[i+1])
			}
		case "-j":
			target = f[i+1]
		}
	}
	if docker || c == "FORWARD" && strings.HasPrefix(target, "DOCKER") && target != "DOCKER-USER" {
		return out
	}
	return nil
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
