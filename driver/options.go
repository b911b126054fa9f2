package driver

import (
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/dualstack-net/dualstack/driver/sandbox"
	"github.com/dualstack-net/dualstack/validate"
)

// Option keys Docker sets on CreateNetwork.
const (
	optGeneric    = "com.docker.network.generic"
	optEnableIPv6 = "com.docker.network.enable_ipv6"
	optEnableIPv4 = "com.docker.network.enable_ipv4"
	optInternal   = "com.docker.network.internal"
)

// Network options (-o), in short form and under Docker's own names.
const (
	optMode         = "mode"
	optBridge       = "bridge"
	optBridgeDocker = "com.docker.network.bridge.name"
	optMTU          = "mtu"
	optMTUDocker    = "com.docker.network.driver.mtu"
	optHairpin      = "hairpin"
	optAcceptRA     = "accept_ra"
	optIPv6Mode     = "ipv6_mode"
	optICC          = "icc"
	optICCDocker    = "com.docker.network.bridge.enable_icc"
	optMasq         = "ip_masquerade"
	optMasqDocker   = "com.docker.network.bridge.enable_ip_masquerade"
	optParent       = "parent"
	optMacvlanMode  = "macvlan_mode"
	optHostLink     = "host_link"
	optHostOverlap  = "host_overlap"
	optCluster      = "cluster"
	optHostBlock4   = "host_block4"
	optHostBlock6   = "host_block6"
	optClusterRoute = "cluster_routes"
	optAnnounce     = "announce"
)

// Options each mode takes (besides Docker's own).
var modeOptions = map[string][]string{
	ModeBridge:  {optBridge, optMTU, optHairpin, optAcceptRA, optIPv6Mode, optICC, optMasq, optBridgeDocker, optMTUDocker, optICCDocker, optMasqDocker, optHostOverlap, optCluster, optHostBlock4, optHostBlock6, optClusterRoute, optAnnounce},
	ModeMacvlan: {optParent, optMacvlanMode, optHostLink, optMTU, optMTUDocker, optAcceptRA, optHostOverlap, optCluster, optHostBlock4, optHostBlock6},
}

// Macvlan modes (macvlan_mode).
var macvlanModes = []string{"bridge", "private", "vepa", "passthru"}

// IPv6 modes: routed (the default; containers' IPv6 addresses are used as
// they are, and the firewall lets in only replies and published ports) or
// nat (IPv6 leaving the network is masqueraded, as IPv4 is).
const (
	IPv6ModeRouted = "routed"
	IPv6ModeNAT    = "nat"
)

// The network modes: ModeBridge, the default, is a Linux bridge and veth
// pairs; ModeMacvlan puts containers on a host interface's LAN.
const (
	ModeBridge  = "bridge"
	ModeMacvlan = "macvlan"
)

// netOptions are a network's parsed options.
type netOptions struct {
	Mode     string `json:"mode"`
	Bridge   string `json:"bridge"`
	MTU      int    `json:"mtu,omitempty"`
	Hairpin  bool   `json:"hairpin,omitempty"`
	AcceptRA int    `json:"acceptRA"`
	Internal bool   `json:"internal,omitempty"`
	IPv4     bool   `json:"ipv4"`
	IPv6     bool   `json:"ipv6"`
	// IPv6Mode is IPv6ModeRouted or IPv6ModeNAT; records written before
	// the option existed have "", which is routed.
	IPv6Mode string `json:"ipv6Mode,omitempty"`
	// NoICC (icc=false) keeps containers of the network from reaching each
	// other; NoMasquerade (ip_masquerade=false) leaves IPv4 unmasqueraded.
	// Negated so that the zero value is Docker's default.
	NoICC        bool `json:"noICC,omitempty"`
	NoMasquerade bool `json:"noMasquerade,omitempty"`
	// SLAAC (accept_ra=slaac) lets router advertisements add addresses.
	SLAAC bool `json:"slaac,omitempty"`

	// Macvlan mode: the parent interface, the macvlan mode and whether the
	// host gets a shim interface on the network.
	Parent      string `json:"parent,omitempty"`
	MacvlanMode string `json:"macvlanMode,omitempty"`
	HostLink    bool   `json:"hostLink,omitempty"`

	// HostOverlap (host_overlap=true) lets the network's subnets overlap
	// a network connected on a host interface: for those who route it on
	// purpose.
	HostOverlap bool `json:"hostOverlap,omitempty"`

	// Cluster (cluster=NAME) makes the network one cluster network across
	// the hosts of the cluster store; HostBlock4 and HostBlock6 are the
	// lengths of each host's blocks (0: the default for the subnet, see
	// hostBlock), and ClusterRoutes how hosts reach each other's blocks
	// (bridge mode: host-gw, the default, or none).
	Cluster       string `json:"cluster,omitempty"`
	HostBlock4    int    `json:"hostBlock4,omitempty"`
	HostBlock6    int    `json:"hostBlock6,omitempty"`
	ClusterRoutes string `json:"clusterRoutes,omitempty"`

	// Announce (announce=true, bridge) has the host's BGP speaker announce
	// the network's subnets: routed IPv6 on one host behind a router.
	Announce bool `json:"announce,omitempty"`
}

// ra is how containers handle router advertisements.
func (o netOptions) ra() sandbox.RA { return sandbox.RA{Accept: o.AcceptRA, SLAAC: o.SLAAC} }

// parseOptions reads the options of network id. Unknown -o options are
// refused by name; every problem is reported at once.
func parseOptions(id string, raw map[string]interface{}) (netOptions, error) {
	o := netOptions{Mode: ModeBridge, IPv4: true, IPv6Mode: IPv6ModeRouted}
	if len(id) >= 12 {
		o.Bridge = bridgePrefix + id[:12]
	}
	var errs []string
	flag := func(key string) (bool, bool) {
		v, ok := raw[key]
		if !ok {
			return false, false
		}
		b, err := asBool(v)
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s=%v: want true or false", key, v))
		}
		return b, true
	}
	if b, ok := flag(optEnableIPv6); ok {
		o.IPv6 = b
	}
	if b, ok := flag(optEnableIPv4); ok {
		o.IPv4 = b
	}
	if b, ok := flag(optInternal); ok {
		o.Internal = b
	}

	generic, err := genericOptions(raw[optGeneric])
	if err != nil {
		errs = append(errs, err.Error())
	}
	var unknown []string
	for _, k := range sortedKeys(generic) {
		v := generic[k]
		switch k {
		case optMode:
			if v != ModeBridge && v != ModeMacvlan {
				errs = append(errs, fmt.Sprintf("mode=%q: want %s (the default) or %s", v, ModeBridge, ModeMacvlan))
			}
			o.Mode = v
		case optParent:
			if err := validate.InterfaceName(v); err != nil {
				errs = append(errs, fmt.Sprintf("parent=%q: %v", v, err))
			}
			o.Parent = v
		case optMacvlanMode:
			if !slices.Contains(macvlanModes, v) {
				errs = append(errs, fmt.Sprintf("macvlan_mode=%q: want one of %s", v, strings.Join(macvlanModes, ", ")))
			}
			o.MacvlanMode = v
		case optHostLink:
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("host_link=%q: want true or false", v))
			}
			o.HostLink = b
		case optHostOverlap:
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("host_overlap=%q: want true or false", v))
			}
			o.HostOverlap = b
		case optCluster:
			if err := validate.ClusterName(v); err != nil {
				errs = append(errs, fmt.Sprintf("cluster=%q: %v", v, err))
			}
			o.Cluster = v
		case optHostBlock4, optHostBlock6:
			bits, err := strconv.Atoi(strings.TrimPrefix(v, "/"))
			max := 32
			if k == optHostBlock6 {
				max = 128
			}
			if err != nil || bits < 1 || bits > max {
				errs = append(errs, fmt.Sprintf("%s=%q: want a prefix length between 1 and %d, such as %s", k, v, max, map[string]string{optHostBlock4: "26", optHostBlock6: "64"}[k]))
			}
			if k == optHostBlock4 {
				o.HostBlock4 = bits
			} else {
				o.HostBlock6 = bits
			}
		case optClusterRoute:
			if v != clusterRoutesHostGW && v != clusterRoutesBGP && v != clusterRoutesNone {
				errs = append(errs, fmt.Sprintf("cluster_routes=%q: want %s (the default: a route to each other host's blocks through its CLUSTER_ADDRESS, hosts on one LAN), %s (the host's blocks are announced to the routers in BGP_PEERS) or %s (the network routes them)", v, clusterRoutesHostGW, clusterRoutesBGP, clusterRoutesNone))
			}
			o.ClusterRoutes = v
		case optBridge, optBridgeDocker:
			if err := validate.InterfaceName(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", k, v, err))
			}
			o.Bridge = v
		case optMTU, optMTUDocker:
			mtu, err := strconv.Atoi(v)
			if err == nil {
				err = validate.MTU(mtu, false)
			}
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: want an MTU between 68 and 65535", k, v))
			}
			o.MTU = mtu
		case optHairpin:
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("hairpin=%q: want true or false", v))
			}
			o.Hairpin = b
		case optAnnounce:
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("announce=%q: want true or false", v))
			}
			o.Announce = b
		case optIPv6Mode:
			switch strings.ToLower(v) {
			case IPv6ModeRouted:
				o.IPv6Mode = IPv6ModeRouted
			case IPv6ModeNAT:
				o.IPv6Mode = IPv6ModeNAT
			default:
				errs = append(errs, fmt.Sprintf("%s=%q: want %s (the default: no NAT, only replies and published ports come in) or %s (masquerade IPv6 as IPv4 is)", k, v, IPv6ModeRouted, IPv6ModeNAT))
			}
		case optICC, optICCDocker, optMasq, optMasqDocker:
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: want true or false", k, v))
			}
			if k == optICC || k == optICCDocker {
				o.NoICC = !b
			} else {
				o.NoMasquerade = !b
			}
		case optAcceptRA:
			ra, slaac, err := parseAcceptRA(v)
			if err != nil {
				errs = append(errs, err.Error())
			}
			o.AcceptRA, o.SLAAC = ra, slaac
		case optEnableIPv6, optEnableIPv4, optInternal:
			// Some engines repeat these among the driver options.
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: want true or false", k, v))
			}
			switch k {
			case optEnableIPv6:
				o.IPv6 = o.IPv6 || b
			case optEnableIPv4:
				o.IPv4 = b
			case optInternal:
				o.Internal = o.Internal || b
			}
		default:
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		errs = append(errs, fmt.Sprintf("unknown option(s) %s: %s networks take -o %s",
			strings.Join(unknown, ", "), o.Mode, strings.Join(modeOptions[o.Mode], ", ")))
	}
	if allowed, ok := modeOptions[o.Mode]; ok {
		var wrong []string
		for _, k := range sortedKeys(generic) {
			if k != optMode && !slices.Contains(allowed, k) && slices.ContainsFunc(modeOptions[otherMode(o.Mode)], func(x string) bool { return x == k }) {
				wrong = append(wrong, k)
			}
		}
		if len(wrong) > 0 {
			errs = append(errs, fmt.Sprintf("option(s) %s: not for mode=%s networks, which take -o %s",
				strings.Join(wrong, ", "), o.Mode, strings.Join(allowed, ", ")))
		}
	}
	if o.Mode == ModeMacvlan {
		// An internal macvlan network has a parent of its own, with no
		// uplink: its containers reach each other and nothing else.
		if o.Parent == "" && !o.Internal {
			errs = append(errs, "mode=macvlan needs -o parent=IF: the host interface (or IF.VLAN for an 802.1q sub-interface) whose LAN the containers join")
		}
		if o.Internal && o.HostLink {
			errs = append(errs, "host_link=true: an --internal network reaches nothing outside it, the host included; drop one of the two")
		}
		if o.MacvlanMode == "" {
			o.MacvlanMode = "bridge"
		}
		o.Bridge = ""
	}
	if o.Cluster == "" && (o.HostBlock4 != 0 || o.HostBlock6 != 0 || o.ClusterRoutes != "") {
		errs = append(errs, "host_block4, host_block6 and cluster_routes are options of cluster networks: add -o cluster=NAME")
	}
	if o.Cluster != "" && o.Announce {
		errs = append(errs, "announce=true: a cluster network announces its host's blocks with -o cluster_routes=bgp, not its whole subnets; drop announce=true")
	}
	if o.Cluster != "" && o.Mode == ModeBridge && o.ClusterRoutes == "" {
		o.ClusterRoutes = clusterRoutesHostGW
	}
	if o.Cluster != "" && o.Internal {
		errs = append(errs, "cluster=NAME: an --internal network reaches nothing outside its host, so it cannot span hosts; drop one of the two")
	}
	if o.IPv6 && o.MTU != 0 && o.MTU >= 68 {
		if err := validate.MTU(o.MTU, true); err != nil {
			errs = append(errs, fmt.Sprintf("mtu=%d: IPv6 needs an MTU of at least 1280", o.MTU))
		}
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("bad network options: %s", strings.Join(errs, "; "))
	}
	return o, nil
}

// otherMode is the mode that is not m.
func otherMode(m string) string {
	if m == ModeMacvlan {
		return ModeBridge
	}
	return ModeMacvlan
}

// parseAcceptRA reads the accept_ra option for containers: 0 (default:
// static addresses only), 1 (routes from router advertisements, no
// address), slaac (routes and SLAAC addresses); 2 is kept as 2 (accept
// even when forwarding), which acts as 1 in a container that does not
// forward.
func parseAcceptRA(v string) (ra int, slaac bool, err error) {
	switch strings.ToLower(v) {
	case "0", "false", "off", "no":
		return 0, false, nil
	case "1", "true", "on", "yes":
		return 1, false, nil
	case "2":
		return 2, false, nil
	case "slaac":
		return 1, true, nil
	}
	return 0, false, fmt.Errorf("accept_ra=%q: want 0 (static addresses only), 1 (routes from router advertisements) or slaac (routes and addresses)", v)
}

// genericOptions returns the -o options, which Docker sends as a JSON
// object of strings.
func genericOptions(v interface{}) (map[string]string, error) {
	out := map[string]string{}
	if v == nil {
		return out, nil
	}
	m, ok := v.(map[string]interface{})
	if !ok {
		return out, fmt.Errorf("%s: want an object of options, got %T", optGeneric, v)
	}
	for k, val := range m {
		switch x := val.(type) {
		case string:
			out[k] = x
		case bool, float64:
			out[k] = fmt.Sprint(x)
		default:
			return out, fmt.Errorf("option %s: want a string value, got %T", k, val)
		}
	}
	return out, nil
}

func asBool(v interface{}) (bool, error) {
	switch x := v.(type) {
	case bool:
		return x, nil
	case string:
		return strconv.ParseBool(x)
	}
	return false, fmt.Errorf("not a boolean: %v", v)
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
