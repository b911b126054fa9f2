package driver

import (
	"bytes"
	"errors"
	"fmt"
	"net"

	"github.com/vishvananda/netlink"

	"github.com/dualstack-net/dualstack/internal/links"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/validate"
)

// Interface names.
//
// A container's interface on a network may be given a name with the
// endpoint option com.docker.network.endpoint.ifname (compose's
// interface_name, `docker run --network name=N,driver-opt=...`), which
// Docker passes in CreateEndpoint's options. dualstack checks it there,
// records it with the endpoint and answers Join with it as the interface's
// DstName: Moby (v2.0.0-beta.24 on) renames the interface to it; Engine
// 20.10 ignores it and names the interface eth0, eth1, ... as before.
// Nothing in the driver finds the container's interface by its name (the
// join watcher and the sandbox code match its MAC), so either works.

// optIfname is Docker's endpoint option for the interface's name.
const optIfname = "com.docker.network.endpoint.ifname"

// endpointIfname reads the interface name opts ask for: "" for none.
func endpointIfname(opts map[string]interface{}) (string, error) {
	v, ok := opts[optIfname]
	if !ok {
		return "", nil
	}
	name, ok := v.(string)
	if !ok {
		return "", fmt.Errorf("option %s is %v, not a string: give the interface's name", optIfname, v)
	}
	if name == "" {
		return "", nil
	}
	err := validate.InterfaceName(name)
	if err == nil && name == "lo" {
		err = errors.New(`interface name "lo" is the container's loopback interface: choose another name`)
	}
	if err != nil {
		return "", fmt.Errorf("option %s (compose interface_name), the container's interface on this network: %w "+
			"(a name is 1 to 15 letters, digits, '_', '.' or '-', not starting with '-')", optIfname, err)
	}
	return name, nil
}

// checkIfnameFree refuses a join whose interface name ep asks for is taken
// in the container's namespace at nsPath (by the interface of another
// network, say): Docker would fail to rename the interface and the
// container would not start. ep's own interface (a retried Join) and a
// namespace not there yet (Engine 20.10, which ignores the name) are fine.
func checkIfnameFree(nsPath string, ep *endpoint) error {
	if ep.Ifname == "" || netns.Check(nsPath) != nil {
		return nil
	}
	mac, _ := net.ParseMAC(ep.MAC)
	var taken bool
	err := netns.Do(nsPath, func() error {
		l, err := netlink.LinkByName(ep.Ifname)
		if links.NotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		taken = !bytes.Equal(l.Attrs().HardwareAddr, mac)
		return nil
	})
	if err != nil {
		return joinFailed(CauseSandbox, fmt.Errorf("endpoint %s: look for interface %s in the container: %w", short(ep.ID), ep.Ifname, err))
	}
	if taken {
		return joinFailed(CauseInterfaceName, fmt.Errorf("endpoint %s: the container already has an interface named %s (%s=%s): "+
			"give each of the container's networks its own interface name (compose interface_name)", short(ep.ID), ep.Ifname, optIfname, ep.Ifname))
	}
	return nil
}
