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

// save runs iptables-save (or ip6tables-save) of b.
func (b Backend) save(f Family, args ...string) ([]byte, error) {
	return exec.Command(b.command(f)+"-save", args...).Output()
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
// outputs.
func countRules(outs ...[]byte) int {
	n := 0
	for _, out := range outs {
		sc := bufio.NewScanner(bytes.NewReader(out))
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "-A ") {
				n++
			}
		}
	}
	return n
}

// DetectBackend returns the backend that holds more rules now, as
// Kubernetes' iptables-wrapper does; nft when neither holds any (the
// default of current distributions). Listing does not load a legacy
// kernel module, so a host using nft is left as it is.
func DetectBackend() Backend {
	outs := saveAll(saveTarget{BackendLegacy, IPv4}, saveTarget{BackendLegacy, IPv6}, saveTarget{BackendNFT, IPv4}, saveTarget{BackendNFT, IPv6})
	if countRules(outs[0], outs[1]) > countRules(outs[2], outs[3]) {
		return BackendLegacy
	}
	return BackendNFT
}
