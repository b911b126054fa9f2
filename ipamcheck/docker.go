package ipamcheck

import (
	"net/netip"
	"path"
	"strings"
)

// DockerView is Docker's side: the networks whose network driver or IPAM
// driver is the plugin, and the networks of the plugin's view by ID,
// each with its endpoints (GET /networks/{id} of the Engine API).
type DockerView struct {
	Networks []DockerNetwork `json:"networks"`
}

// DockerNetwork is a network as the Engine API describes it, as far as
// the check reads it.
type DockerNetwork struct {
	ID     string `json:"Id"`
	Name   string `json:"Name"`
	Driver string `json:"Driver"`
	IPAM   struct {
		Driver string `json:"Driver"`
		Config []struct {
			Subnet  string `json:"Subnet"`
			Gateway string `json:"Gateway"`
		} `json:"Config"`
	} `json:"IPAM"`
	// Containers are the network's endpoints, by container ID.
	Containers map[string]DockerEndpoint `json:"Containers"`
}

// DockerEndpoint is a container's endpoint on a network.
type DockerEndpoint struct {
	Name        string `json:"Name"`
	EndpointID  string `json:"EndpointID"`
	MacAddress  string `json:"MacAddress"`
	IPv4Address string `json:"IPv4Address"`
	IPv6Address string `json:"IPv6Address"`
}

// Addresses are the endpoint's addresses, without their lengths.
func (e DockerEndpoint) Addresses() []netip.Addr {
	var out []netip.Addr
	for _, s := range []string{e.IPv4Address, e.IPv6Address} {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Addr())
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, a)
		}
	}
	return out
}

// DefaultPlugin is the plugin reference a driver name ends with when the
// CLI is not told the plugin's name.
const DefaultPlugin = "dualstack"

// Names reports whether driver, a network's driver or IPAM driver as
// Docker shows it, names the plugin: want itself (with or without the
// tag ":latest" Docker adds), or, for want "" (the default), a name whose
// last part without its tag ends with DefaultPlugin: "dualstack",
// "dualstack:latest", "registry:5000/ns/dualstack:1.2-amd64".
func Names(driver, want string) bool {
	if want != "" {
		return driver == want || strings.TrimSuffix(driver, ":latest") == strings.TrimSuffix(want, ":latest")
	}
	base := path.Base(driver)
	if i := strings.LastIndex(base, ":"); i >= 0 {
		base = base[:i]
	}
	return strings.HasSuffix(base, DefaultPlugin)
}
