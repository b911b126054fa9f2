package firewall

import (
	"bufio"
	"bytes"
	"fmt"
	"os/exec"
	"strings"
)

// Backend is the kernel interface iptables uses: nf_tables ("nft") or the
// legacy xtables ("legacy"). Rules must go where the host's other rules
// (Docker's among them) are: both backends filter packets, and a packet
// accepted by one is still dropped by the other.
type Backend string

// The two backends. The plugin's rootfs carries the tools of both.
const (
	BackendNFT    Backend = "nft"
	BackendLegacy Backend = "legacy"
)

// ParseBackend reads the FIREWALL_BACKEND setting: auto (""), nft or
// legacy.
func ParseBackend(s string) (Backend, error) {
	switch strings.ToLower(s) {
	case "", "auto":
		return "", nil
	case "nft":
		return BackendNFT, nil
	case "legacy":
		return BackendLegacy, nil
	}
	return "", fmt.Errorf("firewall backend %q: want auto, nft or legacy", s)
}

// command is the iptables command of family f for b.
func (b Backend) command(f Family) string {
	name := "iptables"
	if f == IPv6 {
		name = "ip6tables"
	}
	return name + "-" + string(b)
}

// saveTarget is one backend's iptables-save of one family.
type saveTarget struct {
	backend Backend
	family  Family
}

// saveAll runs the iptables-saves of targets at the same time and returns
// their outputs in order (nil where one failed). Each command is started
// from the calling goroutine, so it lists the network namespace of the
// caller's thread, as a sequential run would.
func saveAll(targets ...saveTarget) [][]byte {
	cmds := make([]*exec.Cmd, len(targets))
	outs := make([]bytes.Buffer, len(targets))
	for i, t := range targets {
		cmds[i] = exec.Command(t.backend.command(t.family) + "-save")
		cmds[i].Stdout = &outs[i]
		if cmds[i].Start() != nil {
			cmds[i] = nil
		}
	}
	res := make([][]byte, len(targets))
	for i, c := range cmds {
		if c != nil && c.Wait() == nil {
			res[i] = outs[i].Bytes()
		}
	}
	return res
}

// countRules counts the rules (not chains or policies) in iptables-save
// outputs that are not dualstack's own.
func countRules(outs ...[]byte) int {
	n := 0
	for _, out := range outs {
		sc := bufio.NewScanner(bytes.NewReader(out))
		sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "-A ") && !strings.Contains(l, "DUALSTACK-") {
				n++
			}
		}
	}
	return n
}

// detect returns the backend that holds more of the host's rules now
// (dualstack's own not counted), as Kubernetes' iptables-wrapper does, or
// "" when neither holds any. Listing does not load a legacy kernel module,
// so a host using nft is left as it is.
func detect() Backend {
	outs := saveAll(saveTarget{BackendLegacy, IPv4}, saveTarget{BackendLegacy, IPv6}, saveTarget{BackendNFT, IPv4}, saveTarget{BackendNFT, IPv6})
	legacy, nft := countRules(outs[0], outs[1]), countRules(outs[2], outs[3])
	switch {
	case legacy > nft:
		return BackendLegacy
	case nft > legacy:
		return BackendNFT
	}
	return ""
}

// Choose picks the backend for this start from the FIREWALL_BACKEND
// setting (a backend, or "" for auto) and the one recorded at an earlier
// start ("" if none): the setting when it names one; else the recorded
// one, unless the host's rules have moved to the other backend since; else
// the one that holds the host's rules, nft when neither holds any (the
// default of current distributions). old is the recorded backend when it
// differs from the chosen one: dualstack's rules there must go. why says
// what decided, for the log.
func Choose(setting, recorded Backend) (use, old Backend, why string) {
	return choose(setting, recorded, detect)
}

func choose(setting, recorded Backend, detect func() Backend) (use, old Backend, why string) {
	switch {
	case setting != "":
		use, why = setting, "FIREWALL_BACKEND="+string(setting)
	case recorded == "":
		if use = detect(); use == "" {
			use, why = BackendNFT, "first start; the host holds no rules in either backend: nft, the default of current distributions"
		} else {
			why = "first start; the host's rules are in " + string(use)
		}
	default:
		if host := detect(); host != "" && host != recorded {
			use, why = host, "the host's rules moved from "+string(recorded)+" to "+string(host)
		} else {
			use, why = recorded, "recorded at an earlier start"
		}
	}
	if recorded != "" && recorded != use {
		old = recorded
	}
	return use, old, why
}
