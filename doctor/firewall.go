package doctor

import (
	"fmt"
	"slices"
	"strings"
)

// The packet filter: where Docker's rules are, and whether forwarding is
// guarded.

// The iptables backends, as firewall.Backend names them, and Moby's own
// nftables rules (dockerd --firewall-backend=nftables).
const (
	backendNFT      = "nft"
	backendLegacy   = "legacy"
	backendNFTables = "nftables"
)

// chain is one chain of an iptables-save output.
type chain struct {
	policy string   // "ACCEPT", "DROP"; "-" for a user chain
	rules  []string // its rules, without "-A CHAIN "
}

// parseSave reads an iptables-save output: tables by name, their chains
// by name.
func parseSave(text string) map[string]map[string]*chain {
	tables := map[string]map[string]*chain{}
	var table map[string]*chain
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = map[string]*chain{}
			tables[line[1:]] = table
		case table == nil:
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) >= 2 {
				table[f[0]] = &chain{policy: f[1]}
			}
		case strings.HasPrefix(line, "-A "):
			name, rule, _ := strings.Cut(line[3:], " ")
			if c := table[name]; c != nil {
				c.rules = append(c.rules, rule)
			}
		}
	}
	return tables
}

// dockerChains reports whether a parsed save holds Docker's chains
// (DOCKER, DOCKER-USER, DOCKER-FORWARD, ... in filter or nat).
func dockerChains(tables map[string]map[string]*chain) bool {
	for _, t := range []string{"filter", "nat"} {
		for name := range tables[t] {
			if name == "DOCKER" || strings.HasPrefix(name, "DOCKER-") {
				return true
			}
		}
	}
	return false
}

// dockerBackends lists where Docker's rules are: the iptables backends
// holding its chains, and nftables for Moby's own tables.
func dockerBackends(h Host) []string {
	var out []string
	for _, b := range []string{backendLegacy, backendNFT} {
		for _, v6 := range []bool{false, true} {
			if text, ok := h.Saves[Save{b, v6}]; ok && dockerChains(parseSave(text)) {
				out = append(out, b)
				break
			}
		}
	}
	for _, t := range h.NFTables {
		if strings.HasSuffix(t, " docker-bridges") {
			out = append(out, backendNFTables)
			break
		}
	}
	return out
}

// backendInUse is the iptables backend whose FORWARD chain guards the
// host: dualstack's, else the one of Docker's rules, else nft.
func backendInUse(h Host) string {
	if h.Backend != "" {
		return h.Backend
	}
	for _, b := range dockerBackends(h) {
		if b != backendNFTables {
			return b
		}
	}
	return backendNFT
}

// checkIptablesBackend: dualstack's rules must be where Docker's are.
// Both backends filter every packet: one that dualstack's rules accept
// in one is still dropped by Docker's in the other.
func checkIptablesBackend(h Host) []Finding {
	docker := dockerBackends(h)
	if h.Backend == "" || len(docker) == 0 || slices.Contains(docker, h.Backend) ||
		h.Backend == backendNFT && slices.Contains(docker, backendNFTables) {
		return nil
	}
	want := docker[0]
	if want == backendNFTables {
		want = backendNFT
	}
	return []Finding{{
		Check: CheckIptablesBackend, Severity: SeverityError, Object: "iptables-" + h.Backend,
		Problem: fmt.Sprintf("dualstack's rules are in iptables-%s, Docker's in %s: a packet the rules of one accept, those of the other still drop, "+
			"so published ports and the networks' traffic break", h.Backend, strings.Join(docker, " and ")),
		Fix: fmt.Sprintf("docker plugin disable dualstack; docker plugin set dualstack FIREWALL_BACKEND=%s; docker plugin enable dualstack "+
			"(FIREWALL_BACKEND=auto follows the backend that holds the host's rules at each start)", want),
	}}
}

// checkForwardPolicy: with forwarding on in a family, filter FORWARD's
// policy ACCEPT routes anything between the host's interfaces, into the
// containers' networks too. Docker sets it to DROP; so does dualstack
// when it turns forwarding on (FORWARD_DROP=true).
func checkForwardPolicy(h Host) []Finding {
	var out []Finding
	b := backendInUse(h)
	for _, fam := range families {
		if h.Sysctls[fam.forwardKey] != "1" {
			continue
		}
		text, ok := h.Saves[Save{b, fam.v6}]
		if !ok {
			continue
		}
		fwd := parseSave(text)["filter"]["FORWARD"]
		if fwd == nil || fwd.policy != "ACCEPT" || endsInDrop(fwd) {
			continue
		}
		cmd := fam.iptables
		if b == backendLegacy {
			cmd += "-legacy"
		}
		out = append(out, Finding{
			Check: CheckForwardPolicy, Severity: SeverityError, Object: "FORWARD",
			Problem: fmt.Sprintf("%s forwarding is on and the FORWARD policy of %s is ACCEPT: the host routes any traffic between its interfaces, "+
				"from outside into the containers' networks too", fam.name, cmd),
			Fix: fmt.Sprintf("%s -P FORWARD DROP (Docker's and dualstack's rules accept their networks' own traffic); "+
				"FORWARD_DROP=true (the default) has dualstack set it whenever it turns forwarding on", cmd),
		})
	}
	return out
}

// endsInDrop reports whether a chain's last rule drops or rejects
// whatever reaches it, which makes its policy moot.
func endsInDrop(c *chain) bool {
	if len(c.rules) == 0 {
		return false
	}
	last := c.rules[len(c.rules)-1]
	return last == "-j DROP" || last == "-j REJECT" || strings.HasPrefix(last, "-j REJECT ")
}

// checkDockerUser: where Docker's chains are, DOCKER-USER is the user's
// place for rules that come before Docker's and dualstack's. Missing, it
// was flushed by a firewall manager after dockerd started.
func checkDockerUser(h Host) []Finding {
	var out []Finding
	for _, b := range []string{backendLegacy, backendNFT} {
		for _, fam := range families {
			text, ok := h.Saves[Save{b, fam.v6}]
			if !ok {
				continue
			}
			tables := parseSave(text)
			if !dockerChains(tables) || tables["filter"]["DOCKER-USER"] != nil {
				continue
			}
			cmd := fam.iptables + "-" + b
			out = append(out, Finding{
				Check: CheckDockerUser, Severity: SeverityWarning, Object: "DOCKER-USER",
				Problem: fmt.Sprintf("Docker's chains are in %s but its DOCKER-USER chain is missing: something removed it after dockerd started "+
					"(a firewall manager's reload), and with it any rule of yours there", cmd),
				Fix: "restart dockerd (systemctl restart docker), which makes DOCKER-USER again, and have the firewall manager leave Docker's chains alone",
			})
		}
	}
	return out
}

// family is what the checks need of an address family.
type family struct {
	name       string
	v6         bool
	forwardKey string
	iptables   string
	sysctlName string
}

var families = []family{
	{"IPv4", false, "net/ipv4/ip_forward", "iptables", "net.ipv4.ip_forward"},
	{"IPv6", true, "net/ipv6/conf/all/forwarding", "ip6tables", "net.ipv6.conf.all.forwarding"},
}
