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

// countRules counts the rules (not chains or policies) that b's
// iptables-save and ip6tables-save print.
func (b Backend) countRules() int {
	n := 0
	for _, f := range []Family{IPv4, IPv6} {
		out, err := b.save(f)
		if err != nil {
			continue
		}
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
	if BackendLegacy.countRules() > BackendNFT.countRules() {
		return BackendLegacy
	}
	return BackendNFT
}
