// Package netapi holds the parts of Docker's remote network driver API
// (docker.networkdriver/1.0) that go-plugins-helpers' network package
// lacks: fields current engines read and the helpers' types do not carry.
// The plugin's mux encodes them as they are; the driver fills them.
package netapi

import api "github.com/docker/go-plugins-helpers/network"

// InterfaceName names the interface to move into the container: SrcName on
// the host, renamed in the container to DstName when set, else to
// DstPrefix and a number (eth0, eth1, ...). Moby honours DstName since
// v2.0.0-beta.24 (moby 406bdd8c82); Engine 20.10 ignores it.
type InterfaceName struct {
	SrcName   string
	DstPrefix string
	DstName   string `json:",omitempty"`
}

// JoinResponse is the answer to /NetworkDriver.Join, as Docker's remote
// driver reads it.
type JoinResponse struct {
	InterfaceName         InterfaceName
	Gateway               string
	GatewayIPv6           string
	StaticRoutes          []*api.StaticRoute
	DisableGatewayService bool
}

// Helpers returns r as go-plugins-helpers' type, which has no DstName.
func (r *JoinResponse) Helpers() *api.JoinResponse {
	return &api.JoinResponse{
		InterfaceName:         api.InterfaceName{SrcName: r.InterfaceName.SrcName, DstPrefix: r.InterfaceName.DstPrefix},
		Gateway:               r.Gateway,
		GatewayIPv6:           r.GatewayIPv6,
		StaticRoutes:          r.StaticRoutes,
		DisableGatewayService: r.DisableGatewayService,
	}
}
