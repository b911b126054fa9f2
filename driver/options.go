package driver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

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
	optNDPProxy     = "ndp_proxy"
	optDelegated    = "delegated_prefix"
	// optDelegatedSubnet is the network's subnet ID in the prefix.
	optDelegatedSubnet = "delegated_subnet"
	// optSticky keeps a container's addresses for its name; optStickyHold
	// is for how long after it goes.
	optSticky     = "sticky_addresses"
	optStickyHold = "sticky_hold"
)

// defaultStickyHold is how long a sticky network keeps a container's
// addresses after it goes, unless sticky_hold says otherwise.
const defaultStickyHold = 24 * time.Hour

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
	// GatewayMode4 and GatewayMode6 are Docker's gateway modes as given
	// (gateway_mode_ipv4, gateway_mode_ipv6), "" when not given: today's
	// behaviour, as in records written before the options existed.
	// Trusted (trusted_host_interfaces) is Docker's ":"-separated list of
	// host interfaces. See gatewaymode.go.
	GatewayMode4 string `json:"gatewayMode4,omitempty"`
	GatewayMode6 string `json:"gatewayMode6,omitempty"`
	Trusted      string `json:"trusted,omitempty"`

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
	// hostBlocks), and ClusterRoutes how hosts reach each other's blocks
	// (bridge mode: host-gw, the default, or none).
	Cluster       string `json:"cluster,omitempty"`
	HostBlock4    int    `json:"hostBlock4,omitempty"`
	HostBlock6    int    `json:"hostBlock6,omitempty"`
	ClusterRoutes string `json:"clusterRoutes,omitempty"`

	// Announce (announce=true, bridge) has the host's BGP speaker announce
	// the network's subnets: routed IPv6 on one host behind a router.
	Announce bool `json:"announce,omitempty"`

	// NDPProxy (ndp_proxy=IF, bridge) has the host answer on IF, for the
	// containers' addresses, the neighbour solicitations of IF's link:
	// the network's IPv6 subnets are parts of IF's on-link prefix.
	NDPProxy string `json:"ndpProxy,omitempty"`

	// Delegated (delegated_prefix=IF, bridge) gives the network a /64 of
	// the prefix IF's router delegates by DHCPv6, and each container a
	// global address in it (delegated.go). DelegatedSubnet is the
	// network's subnet ID in the prefix as given, in decimal; "" when not
	// given (the network's DelegatedID is the ID chosen then).
	Delegated       string `json:"delegated,omitempty"`
	DelegatedSubnet string `json:"delegatedSubnet,omitempty"`

	// Sticky (sticky_addresses=true) has the network's pools keep a
	// container's addresses for its name, StickyHold after it goes
	// (addrbook's sticky pools).
	Sticky     bool          `json:"sticky,omitempty"`
	StickyHold time.Duration `json:"stickyHold,omitempty"`
}

// ra is how containers handle router advertisements.
func (o netOptions) ra() sandbox.RA { return sandbox.RA{Accept: o.AcceptRA, SLAAC: o.SLAAC} }

// parseOptions reads the options of network id in three steps, as
// Docker's own bridge driver does: parse reads each option given into its
// field of netOptions by its entry in optionTable (unknown keys refused);
// validate judges each value read; conflicts checks the options against
// each other. Every problem is reported at once.
func parseOptions(id string, raw map[string]interface{}) (netOptions, error) {
	o := netOptions{Mode: ModeBridge, IPv4: true, IPv6Mode: IPv6ModeRouted}
	if len(id) >= 12 {
		o.Bridge = bridgePrefix + id[:12]
	}
	errs := parseFlags(&o, raw)
	generic, err := genericOptions(raw[optGeneric])
	if err != nil {
		errs = append(errs, err.Error())
	}
	given, unknown := parse(&o, generic)
	errs = append(errs, validateGiven(given)...)
	errs = append(errs, modeProblems(o.Mode, given, unknown)...)
	errs = append(errs, gatewayModes(&o, given)...)
	errs = append(errs, conflicts(o)...)
	settle(&o)
	if len(errs) > 0 {
		return o, fmt.Errorf("bad network options: %s", strings.Join(errs, "; "))
	}
	return o, nil
}

// given is one -o option of a request as parse read it.
type given struct {
	key, value string
	opt        *option
	// read is the options as the value left them: its field holds the
	// value, whichever of an option's two names was given last.
	read netOptions
	err  error // why the value is refused
}

// parseFlags reads the options Docker sends itself (--ipv6, --internal):
// booleans, or strings of them.
func parseFlags(o *netOptions, raw map[string]interface{}) []string {
	var errs []string
	for i := range optionTable {
		opt := &optionTable[i]
		v, ok := raw[opt.key]
		if opt.flag == "" || !ok {
			continue
		}
		var text string // a value of another type: refused by parse
		switch x := v.(type) {
		case bool:
			text = strconv.FormatBool(x)
		case string:
			text = x
		}
		if err := opt.parse(o, text); err != nil {
			errs = append(errs, fmt.Sprintf("%s=%v: %v", opt.key, v, err))
		}
	}
	return errs
}

// parse reads each -o option into o, in the order of their keys, and
// returns them with the keys optionTable does not know.
func parse(o *netOptions, generic map[string]string) (read []given, unknown []string) {
	for _, k := range sortedKeys(generic) {
		opt, ok := optionByKey[k]
		if !ok {
			unknown = append(unknown, k)
			continue
		}
		g := given{key: k, value: generic[k], opt: opt}
		g.err = opt.parse(o, g.value)
		g.read = *o
		read = append(read, g)
	}
	return read, unknown
}

// validateGiven judges each value parse read well, and returns the
// problems of both steps, one for each value refused, in the order of
// their keys.
func validateGiven(given []given) []string {
	var errs []string
	for i := range given {
		g := &given[i]
		if g.err == nil && g.opt.check != nil {
			g.err = g.opt.check(&g.read)
		}
		if g.err != nil {
			errs = append(errs, fmt.Sprintf("%s=%q: %v", g.key, g.value, g.err))
		}
	}
	return errs
}

// modeProblems refuses the unknown options and those given that networks
// of mode do not take, naming the options mode takes.
func modeProblems(mode string, given []given, unknown []string) []string {
	var errs []string
	if len(unknown) > 0 {
		errs = append(errs, fmt.Sprintf("unknown option(s) %s: %s networks take -o %s",
			strings.Join(unknown, ", "), mode, strings.Join(modeListing[mode], ", ")))
	}
	allowed, ok := modeListing[mode]
	if !ok {
		return errs // the mode itself is refused
	}
	var wrong []string
	for _, g := range given {
		if !g.opt.takes(mode) {
			wrong = append(wrong, g.key)
		}
	}
	if len(wrong) > 0 {
		errs = append(errs, fmt.Sprintf("option(s) %s: not for mode=%s networks, which take -o %s",
			strings.Join(wrong, ", "), mode, strings.Join(allowed, ", ")))
	}
	return errs
}

// conflicts checks the options of o against each other.
func conflicts(o netOptions) []string {
	var errs []string
	if o.Mode == ModeMacvlan {
		// An internal macvlan network has a parent of its own, with no
		// uplink: its containers reach each other and nothing else.
		if o.Parent == "" && !o.Internal {
			errs = append(errs, "mode=macvlan needs -o parent=IF: the host interface (or IF.VLAN for an 802.1q sub-interface) whose LAN the containers join")
		}
		if o.Internal && o.HostLink {
			errs = append(errs, "host_link=true: an --internal network reaches nothing outside it, the host included; drop one of the two")
		}
	}
	if o.Cluster == "" && (o.HostBlock4 != 0 || o.HostBlock6 != 0 || o.ClusterRoutes != "") {
		errs = append(errs, "host_block4, host_block6 and cluster_routes are options of cluster networks: add -o cluster=NAME")
	}
	if o.Cluster != "" && o.Announce {
		errs = append(errs, "announce=true: a cluster network announces its host's blocks with -o cluster_routes=bgp, not its whole subnets; drop announce=true")
	}
	if o.Cluster != "" && o.Internal {
		errs = append(errs, "cluster=NAME: an --internal network reaches nothing outside its host, so it cannot span hosts; drop one of the two")
	}
	if !o.Sticky && o.StickyHold != 0 {
		errs = append(errs, "sticky_hold is an option of sticky networks: add -o sticky_addresses=true, or drop sticky_hold")
	}
	errs = append(errs, ndpConflicts(o)...)
	errs = append(errs, delegatedConflicts(o)...)
	if o.IPv6 && o.MTU != 0 && o.MTU >= 68 {
		if err := validate.MTU(o.MTU, true); err != nil {
			errs = append(errs, fmt.Sprintf("mtu=%d: IPv6 needs an MTU of at least 1280", o.MTU))
		}
	}
	return errs
}

// ndpConflicts checks ndp_proxy against the other options: its network
// takes part of the link's prefix as it is, so it has IPv6 without NAT,
// reaches outside its host, and stays on this host.
func ndpConflicts(o netOptions) []string {
	if o.NDPProxy == "" {
		return nil
	}
	return refusals("ndp_proxy="+o.NDPProxy, []refusal{
		{!o.IPv6, "needs IPv6: add --ipv6 and an IPv6 --subnet inside the interface's on-link prefix (or --ipam-opt ndp_proxy=IF for a free part of it)"},
		{o.Internal, "an --internal network reaches nothing outside its host, so there is nothing to answer for on the link; drop one of the two"},
		{o.IPv6Mode == IPv6ModeNAT, "ipv6_mode=nat hides the containers' addresses behind the host's, so there is nothing to answer for on the link; drop one of the two"},
		{o.Cluster != "", "a cluster network spans hosts, and the link's router reaches only this one; drop one of the two"},
		{o.Announce, "announce=true has the subnets routed to the host, whereas an on-link prefix is answered for on the link; drop one of the two"},
	})
}

// refusal is one reason to refuse an option, when bad.
type refusal struct {
	bad bool
	why string
}

// refusals lists, each prefixed with what (the option as given), the
// reasons of rs that hold.
func refusals(what string, rs []refusal) []string {
	var errs []string
	for _, r := range rs {
		if r.bad {
			errs = append(errs, what+": "+r.why)
		}
	}
	return errs
}

// settle fills in the defaults that depend on other options.
func settle(o *netOptions) {
	if o.Mode == ModeMacvlan {
		if o.MacvlanMode == "" {
			o.MacvlanMode = "bridge"
		}
		o.Bridge = ""
	}
	if o.Sticky && o.StickyHold == 0 {
		o.StickyHold = defaultStickyHold
	}
	if o.Cluster != "" && o.Mode == ModeBridge && o.ClusterRoutes == "" {
		o.ClusterRoutes = clusterRoutesHostGW
	}
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

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
