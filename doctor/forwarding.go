package doctor

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// checkForwarding: a network that routes a family needs forwarding on in
// it, or its containers reach nothing beyond the host.
func checkForwarding(h Host) []Finding {
	var out []Finding
	for _, fam := range families {
		v, ok := h.Sysctls[fam.forwardKey]
		if !ok || v == "1" {
			continue
		}
		var need []string
		for _, n := range h.Networks {
			if fam.v6 && n.Forward6 || !fam.v6 && n.Forward4 {
				need = append(need, networkName(n))
			}
		}
		if len(need) == 0 {
			continue
		}
		out = append(out, Finding{
			Check: CheckForwarding, Severity: SeverityError, Object: fam.sysctlName,
			Problem: fmt.Sprintf("%s forwarding is off: the containers of dualstack's networks that route %s reach nothing beyond the host (%s)",
				fam.name, fam.name, strings.Join(need, ", ")),
			Fix: fmt.Sprintf("%s -P FORWARD DROP, then sysctl -w %s=1 (dualstack does both when it starts), "+
				"and find what turned it off (a file in /etc/sysctl.d, a firewall manager)", fam.iptables, fam.sysctlName),
		})
	}
	return out
}

// checkAcceptRA: an interface that has its default route from router
// advertisements (proto ra) loses it once the route expires if IPv6
// forwarding is on there and accept_ra is not 2: the kernel ignores
// advertisements on a forwarding interface unless accept_ra is 2.
func checkAcceptRA(h Host) []Finding {
	var out []Finding
	seen := map[string]bool{}
	for _, r := range h.Routes {
		if !r.Dst.Addr().Is6() || r.Dst.Bits() != 0 || r.Proto != unix.RTPROT_RA || r.Dev == "" || seen[r.Dev] {
			continue
		}
		seen[r.Dev] = true
		conf := "net/ipv6/conf/" + r.Dev + "/"
		if h.Sysctls[conf+"forwarding"] != "1" || h.Sysctls[conf+"accept_ra"] == "2" {
			continue
		}
		key := "net.ipv6.conf." + strings.ReplaceAll(r.Dev, ".", "/") + ".accept_ra"
		ra, ok := h.Sysctls[conf+"accept_ra"]
		if !ok {
			ra = "unknown"
		}
		out = append(out, Finding{
			Check: CheckAcceptRA, Severity: SeverityError, Object: r.Dev,
			Problem: fmt.Sprintf("%s has its IPv6 default route from router advertisements, IPv6 forwarding is on and its accept_ra is %s: "+
				"the kernel ignores the advertisements, and the host loses its default route when the route expires", r.Dev, ra),
			Fix: fmt.Sprintf("sysctl -w %s=2 (and in /etc/sysctl.d to keep it), or UPLINK_ACCEPT_RA=true (the default), "+
				"with which dualstack sets it when it turns IPv6 forwarding on", key),
		})
	}
	return out
}

// networkName names a network as `docker network ls` shows it: its ID's
// first 12 characters, with its host link.
func networkName(n Network) string {
	id := n.ID
	if len(id) > 12 {
		id = id[:12]
	}
	if n.Link == "" {
		return "network " + id
	}
	return fmt.Sprintf("network %s (%s)", id, n.Link)
}
