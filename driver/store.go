package driver

import (
	"encoding/json"
	"fmt"
	"net/netip"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver/portmap"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/state"
)

// Layout of the network driver's buckets in the state file:
//
//	driver/networks/<network ID>    network as JSON
//	driver/endpoints/<endpoint ID>  endpoint as JSON
const (
	bucketDriver    = "driver"
	bucketNetworks  = "networks"
	bucketEndpoints = "endpoints"
)

// pool is one subnet of a network.
type pool struct {
	Space   string       `json:"space"`
	Prefix  netip.Prefix `json:"prefix"`
	Gateway netip.Prefix `json:"gateway"` // gateway address with the subnet's length; invalid if none
	// PoolID is the dualstack IPAM pool, when dualstack's IPAM holds the
	// subnet; empty for another IPAM driver's pool.
	PoolID string `json:"poolID,omitempty"`
}

// network is what is persisted of a network.
type network struct {
	ID      string     `json:"id"`
	Options netOptions `json:"options"`
	V4      []pool     `json:"v4,omitempty"`
	V6      []pool     `json:"v6,omitempty"` // sorted by prefix
	// CreatedParent (macvlan) says dualstack created the parent (IF.VID)
	// and removes it when the last network on it goes.
	CreatedParent bool `json:"createdParent,omitempty"`
	// ShimAddrs (macvlan, host_link) are the host link's addresses.
	ShimAddrs []extraAddr `json:"shimAddrs,omitempty"`
	// HostAddrs are addresses the host itself has in the network's
	// subnets, held in its pools so that no container gets one.
	HostAddrs []extraAddr `json:"hostAddrs,omitempty"`
	// DelegatedID (delegated_prefix) is the network's subnet ID in the
	// delegated prefix, given or chosen at creation.
	DelegatedID uint64 `json:"delegatedID,omitempty"`

	// blockGateways (a routed cluster network) are the gateways of the
	// blocks the host holds, with the blocks' lengths: the bridge's
	// addresses, in place of Docker's gateways. Read from the IPAM.
	blockGateways []netip.Prefix
}

// pools lists the network's subnets, IPv4 first.
func (n *network) pools() []pool {
	return append(append([]pool{}, n.V4...), n.V6...)
}

// poolIDs lists the pools of the network that dualstack's IPAM holds.
func (n *network) poolIDs() []string {
	var out []string
	for _, p := range n.pools() {
		if p.PoolID != "" {
			out = append(out, p.PoolID)
		}
	}
	return out
}

// gateways lists the gateways Docker gave the network's subnets.
func (n *network) gateways() []netip.Prefix {
	var out []netip.Prefix
	for _, p := range n.pools() {
		if p.Gateway.IsValid() {
			out = append(out, p.Gateway)
		}
	}
	return out
}

// extraAddr is an address dualstack allocated for an endpoint in an IPv6
// pool other than the one Docker's address came from.
type extraAddr struct {
	PoolID string       `json:"poolID"`
	Addr   netip.Prefix `json:"addr"`
}

// endpoint is what is persisted of an endpoint.
type endpoint struct {
	ID        string       `json:"id"`
	NetworkID string       `json:"networkID"`
	HostVeth  string       `json:"hostVeth"`
	PeerVeth  string       `json:"peerVeth"`
	MAC       string       `json:"mac"`
	IPv4      netip.Prefix `json:"ipv4"`
	IPv6      netip.Prefix `json:"ipv6"`
	// Allocated lists the primary addresses dualstack allocated itself
	// because Docker gave none; they are released with the endpoint.
	Allocated []extraAddr `json:"allocated,omitempty"`
	Extra     []extraAddr `json:"extra,omitempty"`
	// Ports are the container's port bindings Docker passed.
	Ports []portmap.Binding `json:"ports,omitempty"`
	// Sandbox is the network namespace (SandboxKey) of the container the
	// endpoint has joined, and Published the ports it publishes for it.
	Sandbox   string          `json:"sandbox,omitempty"`
	Published []firewall.Port `json:"published,omitempty"`
	// PublishedOnly is the family Published was limited to, the one the
	// endpoint is the container's gateway of (0: both; see gwpriority.go).
	PublishedOnly firewall.Family `json:"publishedOnly,omitempty"`
	// Ifname is the container's interface name the endpoint asks for
	// (com.docker.network.endpoint.ifname; see ifname.go), "" for Docker's
	// choice.
	Ifname string `json:"ifname,omitempty"`
}

// addresses lists every address of the endpoint's interface.
func (ep *endpoint) addresses() []netip.Prefix {
	var out []netip.Prefix
	for _, a := range []netip.Prefix{ep.IPv4, ep.IPv6} {
		if a.IsValid() {
			out = append(out, a)
		}
	}
	for _, x := range ep.Extra {
		out = append(out, x.Addr)
	}
	return out
}

func driverPath(bucket string) []string { return []string{bucketDriver, bucket} }

// get reads the record id of bucket into v, reporting whether there is one.
func get(tx state.Tx, bucket, id string, v any) (bool, error) {
	data := tx.Get(driverPath(bucket), []byte(id))
	if data == nil {
		return false, nil
	}
	return true, json.Unmarshal(data, v)
}

// records is where the driver's records are written: a transaction of
// the state file, or of the address book (which commits addresses and the
// records that name them together).
type records interface {
	Put(path []string, key, value []byte) error
	Delete(path []string, key []byte) error
}

func put(tx records, bucket, id string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(driverPath(bucket), []byte(id), data)
}

func del(tx records, bucket, id string) error {
	return tx.Delete(driverPath(bucket), []byte(id))
}

// load reads every record of bucket into fn; unreadable records are
// skipped with a warning, so that one bad record cannot keep Docker from
// starting.
func load[T any](db state.Store, bucket string, log logrus.FieldLogger, fn func(id string, v *T)) error {
	return db.View(func(tx state.Tx) error {
		return tx.ForEach(driverPath(bucket), func(k, data []byte) error {
			v := new(T)
			if err := json.Unmarshal(data, v); err != nil {
				log.WithField("record", string(k)).WithError(err).Warnf("skipping unreadable %s record", bucket)
				return nil
			}
			fn(string(k), v)
			return nil
		})
	})
}

// save commits fn's changes, naming what failed.
func save(db state.Store, what string, fn func(tx state.Tx) error) error {
	if err := db.Update(fn); err != nil {
		return fmt.Errorf("record %s in the state file: %w", what, err)
	}
	return nil
}
