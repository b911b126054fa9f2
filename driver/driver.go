// Package driver is dualstack's network driver (docker.networkdriver/1.0).
//
// This release serves dualstack's IPAM driver to Docker's own network
// drivers; the dualstack bridge and macvlan data planes are not built yet, so
// CreateNetwork refuses with an error that says what to use instead. Calls
// that tear down are idempotent successes, so Docker can always clean up.
package driver

import (
	"errors"

	"github.com/docker/go-plugins-helpers/network"
)

// ErrNotSupported is the answer to calls that need a dualstack network.
var ErrNotSupported = errors.New("the dualstack network driver is not supported yet: " +
	"use dualstack's IPAM with one of Docker's drivers instead, e.g. " +
	"`docker network create -d bridge --ipam-driver dualstack --ipv6 --subnet ...`")

// Driver implements network.Driver.
type Driver struct{}

// New returns the network driver.
func New() *Driver { return &Driver{} }

var _ network.Driver = (*Driver)(nil)

// GetCapabilities reports a local-scope driver.
func (*Driver) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.LocalScope, ConnectivityScope: network.LocalScope}, nil
}

// CreateNetwork refuses: no data plane yet.
func (*Driver) CreateNetwork(*network.CreateNetworkRequest) error { return ErrNotSupported }

// AllocateNetwork is a swarm call; dualstack is local-scope.
func (*Driver) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return nil, ErrNotSupported
}

// DeleteNetwork succeeds: there is nothing to delete.
func (*Driver) DeleteNetwork(*network.DeleteNetworkRequest) error { return nil }

// FreeNetwork succeeds: there is nothing to free.
func (*Driver) FreeNetwork(*network.FreeNetworkRequest) error { return nil }

// CreateEndpoint refuses: no network can exist yet.
func (*Driver) CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return nil, ErrNotSupported
}

// DeleteEndpoint succeeds: there is nothing to delete.
func (*Driver) DeleteEndpoint(*network.DeleteEndpointRequest) error { return nil }

// EndpointInfo reports nothing.
func (*Driver) EndpointInfo(*network.InfoRequest) (*network.InfoResponse, error) {
	return &network.InfoResponse{Value: map[string]string{}}, nil
}

// Join refuses: no endpoint can exist yet.
func (*Driver) Join(*network.JoinRequest) (*network.JoinResponse, error) { return nil, ErrNotSupported }

// Leave succeeds: there is nothing to leave.
func (*Driver) Leave(*network.LeaveRequest) error { return nil }

// DiscoverNew ignores discovery events.
func (*Driver) DiscoverNew(*network.DiscoveryNotification) error { return nil }

// DiscoverDelete ignores discovery events.
func (*Driver) DiscoverDelete(*network.DiscoveryNotification) error { return nil }

// ProgramExternalConnectivity has nothing to program.
func (*Driver) ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error {
	return nil
}

// RevokeExternalConnectivity has nothing to revoke.
func (*Driver) RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error {
	return nil
}
