// Package settings reads the plugin's settings. A managed plugin receives
// them as environment variables declared in config.json and changed with
// `docker plugin set dualstack NAME=value`.
package settings

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/validate"
)

// Settings are the plugin's settings, parsed and checked.
type Settings struct {
	// LogLevel is LOG_LEVEL: panic, fatal, error, warn, info, debug or trace.
	LogLevel logrus.Level
	// DefaultPoolsV4 is DEFAULT_POOLS_V4.
	DefaultPoolsV4 []addrbook.DefaultPool
	// UplinkAcceptRA is UPLINK_ACCEPT_RA: whether dualstack may set
	// accept_ra=2 on host interfaces when it turns on IPv6 forwarding.
	UplinkAcceptRA bool
	// StateDir is STATE_DIR, where the state file lives.
	StateDir string
	// Socket is SOCKET, the path of the plugin's unix socket.
	Socket string
	// MachineIDFile is MACHINE_ID_FILE, read to derive the host's ULA prefix.
	MachineIDFile string
	// HostRun is HOST_RUN, the host path of config.json's run mount, below
	// which Docker keeps container network namespaces.
	HostRun string
	// FirewallBackend is FIREWALL_BACKEND: auto (""), nft or legacy.
	FirewallBackend firewall.Backend
	// ForwardDrop is FORWARD_DROP: whether dualstack sets filter FORWARD's
	// policy to DROP in a family when it turns forwarding on there.
	ForwardDrop bool
	// NetnsAccess is NETNS_ACCESS: how the plugin reaches container
	// network namespaces (auto, proc or mount).
	NetnsAccess sandboxkey.Mechanism
	// ClusterStore is CLUSTER_STORE: the etcd endpoints of the cluster
	// store (http:// or https:// URLs); none: this host is in no cluster.
	ClusterStore []string
	// ClusterNode is CLUSTER_NODE, this host's name in the cluster (the
	// hostname by default).
	ClusterNode string
	// ClusterAddress is CLUSTER_ADDRESS: the host's addresses, at most one
	// per family, through which the other hosts reach its blocks. Empty:
	// the source address of the route to the first store endpoint.
	ClusterAddress []netip.Addr
	// ClusterTLSDir is CLUSTER_TLS_DIR, the directory of the store's
	// client certificate (cert.pem, key.pem) and CA (ca.pem), for https://
	// endpoints: by default cluster-tls in the state mount, so the host
	// directory is <state.source>/cluster-tls.
	ClusterTLSDir string
	// BGP is the BGP speaker's configuration (BGP_*), nil when BGP_ASN is
	// empty or BGPError is set. The router ID, when BGP_ROUTER_ID is
	// empty, and the next hops are the caller's to fill in.
	BGP *bgp.Config
	// MetricsAddr is METRICS_ADDR: the address (host:port) of the HTTP
	// server of GET /metrics and GET /health; empty: none.
	MetricsAddr string
	// BGPError is what is wrong with the BGP settings. Unlike the other
	// settings it does not stop the plugin: BGP is off and the plugin
	// says why, in its log and in `dualstack cluster status`.
	BGPError error
}

// Defaults for settings that config.json does not expose.
const (
	DefaultStateDir      = "/var/lib/dualstack"
	DefaultSocket        = "/run/docker/plugins/dualstack.sock"
	DefaultMachineIDFile = "/etc/machine-id"
	DefaultHostRun       = "/run"
	// RunMount is where config.json mounts HostRun in the plugin.
	RunMount = "/host/run"
	// DefaultClusterTLSDir is the cluster-tls directory of the state
	// mount.
	DefaultClusterTLSDir = DefaultStateDir + "/cluster-tls"
)

// FromEnv reads the settings from the environment via getenv (os.Getenv when
// nil). Every bad value is reported, by name.
func FromEnv(getenv func(string) string) (*Settings, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	get := func(name, def string) string {
		if v := strings.TrimSpace(getenv(name)); v != "" {
			return v
		}
		return def
	}
	var errs []string
	s := &Settings{
		StateDir:      get("STATE_DIR", DefaultStateDir),
		Socket:        get("SOCKET", DefaultSocket),
		MachineIDFile: get("MACHINE_ID_FILE", DefaultMachineIDFile),
		HostRun:       get("HOST_RUN", DefaultHostRun),
	}
	var err error
	if s.LogLevel, err = logrus.ParseLevel(get("LOG_LEVEL", "info")); err != nil {
		errs = append(errs, fmt.Sprintf("LOG_LEVEL=%q: want one of panic, fatal, error, warn, info, debug, trace", getenv("LOG_LEVEL")))
	}
	if s.DefaultPoolsV4, err = addrbook.ParseDefaultPools(get("DEFAULT_POOLS_V4", addrbook.DefaultPoolsV4)); err != nil {
		errs = append(errs, err.Error())
	}
	if s.UplinkAcceptRA, err = strconv.ParseBool(get("UPLINK_ACCEPT_RA", "true")); err != nil {
		errs = append(errs, fmt.Sprintf("UPLINK_ACCEPT_RA=%q: want true or false", getenv("UPLINK_ACCEPT_RA")))
	}
	if s.ForwardDrop, err = strconv.ParseBool(get("FORWARD_DROP", "true")); err != nil {
		errs = append(errs, fmt.Sprintf("FORWARD_DROP=%q: want true or false", getenv("FORWARD_DROP")))
	}
	if s.FirewallBackend, err = firewall.ParseBackend(get("FIREWALL_BACKEND", "auto")); err != nil {
		errs = append(errs, "FIREWALL_BACKEND: "+err.Error())
	}
	if s.NetnsAccess, err = sandboxkey.ParseMechanism(get("NETNS_ACCESS", "auto")); err != nil {
		errs = append(errs, "NETNS_ACCESS="+err.Error())
	}
	if s.MetricsAddr, err = parseMetricsAddr(get("METRICS_ADDR", "")); err != nil {
		errs = append(errs, err.Error())
	}
	errs = append(errs, s.clusterFromEnv(get)...)
	s.BGP, s.BGPError = bgpFromEnv(get)
	if len(errs) > 0 {
		return nil, fmt.Errorf("bad plugin settings (fix with `docker plugin set dualstack NAME=value`): %s", strings.Join(errs, "; "))
	}
	return s, nil
}

// clusterFromEnv reads the cluster settings, returning what is wrong.
func (s *Settings) clusterFromEnv(get func(name, def string) string) []string {
	var errs []string
	schemes := map[string][]string{} // the endpoints by scheme
	for _, e := range strings.Split(get("CLUSTER_STORE", ""), ",") {
		if e = strings.TrimSpace(e); e == "" {
			continue
		}
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Sprintf("CLUSTER_STORE=%q: want etcd endpoints as comma-separated http:// or https:// URLs, such as http://10.0.0.1:2379", e))
			continue
		}
		s.ClusterStore = append(s.ClusterStore, e)
		schemes[u.Scheme] = append(schemes[u.Scheme], e)
	}
	if len(schemes["http"]) > 0 && len(schemes["https"]) > 0 {
		errs = append(errs, fmt.Sprintf("CLUSTER_STORE mixes http:// endpoints (%s) and https:// endpoints (%s): the plugin talks to all the endpoints of the store one way, with TLS (the files in CLUSTER_TLS_DIR) or without; give every endpoint one scheme, the one the store serves (https:// for an etcd with TLS)",
			strings.Join(schemes["http"], ", "), strings.Join(schemes["https"], ", ")))
	}
	hostname, _ := os.Hostname()
	s.ClusterNode = get("CLUSTER_NODE", hostname)
	if len(s.ClusterStore) > 0 || get("CLUSTER_NODE", "") != "" {
		if err := validate.ClusterName(s.ClusterNode); err != nil {
			errs = append(errs, fmt.Sprintf("CLUSTER_NODE=%q: %v", s.ClusterNode, err))
		}
	}
	families := map[bool]bool{}
	for _, a := range strings.Split(get("CLUSTER_ADDRESS", ""), ",") {
		if a = strings.TrimSpace(a); a == "" {
			continue
		}
		addr, err := netip.ParseAddr(a)
		switch {
		case err != nil || addr.Zone() != "" || !addr.IsGlobalUnicast() && !addr.IsPrivate():
			errs = append(errs, fmt.Sprintf("CLUSTER_ADDRESS=%q: want unicast addresses, at most one IPv4 and one IPv6, comma-separated", a))
		case families[addr.Unmap().Is4()]:
			errs = append(errs, fmt.Sprintf("CLUSTER_ADDRESS: %s is a second address of its family: give at most one IPv4 and one IPv6 address", a))
		default:
			families[addr.Unmap().Is4()] = true
			s.ClusterAddress = append(s.ClusterAddress, addr.Unmap())
		}
	}
	s.ClusterTLSDir = get("CLUSTER_TLS_DIR", DefaultClusterTLSDir)
	return errs
}

// bgpFromEnv reads the BGP settings: nil without BGP_ASN.
func bgpFromEnv(get func(name, def string) string) (*bgp.Config, error) {
	asn := get("BGP_ASN", "")
	if asn == "" {
		for _, name := range []string{"BGP_PEERS", "BGP_ROUTER_ID", "BGP_PASSWORD"} {
			if get(name, "") != "" {
				return nil, fmt.Errorf("BGP is off: %s is set but BGP_ASN is empty: set BGP_ASN to this host's AS (`docker plugin set dualstack BGP_ASN=64512`), or clear %s", name, name)
			}
		}
		return nil, nil
	}
	c := &bgp.Config{Password: get("BGP_PASSWORD", "")}
	var errs []error
	var err error
	if c.ASN, err = bgp.ParseASN(asn); err != nil {
		errs = append(errs, fmt.Errorf("BGP_ASN: %w", err))
	}
	if c.Peers, err = bgp.ParsePeers(get("BGP_PEERS", "")); err != nil {
		errs = append(errs, fmt.Errorf("BGP_PEERS=%q: %w", get("BGP_PEERS", ""), err))
	}
	if id := get("BGP_ROUTER_ID", ""); id != "" {
		if c.RouterID, err = netip.ParseAddr(id); err != nil || !c.RouterID.Is4() {
			errs = append(errs, fmt.Errorf("BGP_ROUTER_ID=%q: want an IPv4 address", id))
		}
	}
	if h := get("BGP_HOLD_TIME", ""); h != "" {
		n, err := strconv.ParseUint(h, 10, 16)
		if err != nil || n < 3 {
			errs = append(errs, fmt.Errorf("BGP_HOLD_TIME=%q: want seconds, 3 to 65535", h))
		}
		c.HoldTime = time.Duration(n) * time.Second
	}
	if c.Import, err = strconv.ParseBool(get("BGP_IMPORT_ROUTES", "false")); err != nil {
		errs = append(errs, fmt.Errorf("BGP_IMPORT_ROUTES=%q: want true or false", get("BGP_IMPORT_ROUTES", "")))
	}
	if m := get("BGP_MAX_PREFIXES", ""); m != "" {
		n, err := strconv.ParseUint(m, 10, 32)
		if err != nil || n == 0 {
			errs = append(errs, fmt.Errorf("BGP_MAX_PREFIXES=%q: want a number of prefixes per family, 1 or more (default %d)", m, bgp.DefaultMaxPrefixes))
		}
		c.MaxPrefixes = uint32(n)
	}
	if len(errs) == 0 && c.RouterID.IsValid() {
		errs = append(errs, c.Validate())
	} else if len(errs) == 0 {
		// The router ID comes later; check the rest.
		c.RouterID = netip.IPv4Unspecified()
		errs = append(errs, c.Validate())
		c.RouterID = netip.Addr{}
	}
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	if len(msgs) > 0 {
		return nil, errors.New("BGP is off: " + strings.Join(msgs, "; ") + " (fix with `docker plugin set dualstack NAME=value`)")
	}
	return c, nil
}

// parseMetricsAddr reads METRICS_ADDR: empty (no metrics server), or an
// IP address (empty: every address of the host) and a port.
func parseMetricsAddr(v string) (string, error) {
	if v == "" {
		return "", nil
	}
	bad := fmt.Errorf("METRICS_ADDR=%q: want ADDRESS:PORT to serve /metrics and /health on, such as 127.0.0.1:9474 or [::1]:9474 (empty: off)", v)
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return "", bad
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "", bad
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return "", bad
		}
	}
	return v, nil
}
