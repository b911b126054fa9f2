package driver

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/validate"
)

// option is one network option, a row of optionTable: the key of -o
// key=value, Docker's name for the same option, the modes that take it,
// how its value is read and judged, and its row in docs/options.md.
type option struct {
	key string
	// alias is Docker's generic name for the option ("" when it has
	// none): either key works, and both are read alike.
	alias string
	// modes are the network modes that take the option.
	modes []string
	// flag is the option of docker network create that sets it (Markdown,
	// for the docs), for the options Docker sends itself: every mode takes
	// those, and some engines repeat them among the -o options.
	flag string
	// needs is the option without which conflicts refuses this one, for
	// the docs ("with `cluster`").
	needs string

	// parse reads a value into its field of o: its syntax (a boolean, a
	// number). check judges the value read (a range, a set, a name); nil
	// when parse says all. An error of either is the reason the value is
	// refused, reported as key="value": reason.
	parse func(o *netOptions, v string) error
	check func(o *netOptions) error

	// The option's row in docs/options.md (Markdown): the values it
	// takes, its default and what it does.
	values, def, help string
}

// takes reports whether networks of mode take the option.
func (opt *option) takes(mode string) bool {
	return opt.flag != "" || slices.Contains(opt.modes, mode)
}

// The reasons a value is refused, where several options share one.
var (
	errWantBool = errors.New("want true or false")
	errWantMTU  = errors.New("want an MTU between 68 and 65535")
	errWantHold = errors.New("want a duration of at least 1m, such as 90m or 48h")
)

// Macvlan modes (macvlan_mode).
var macvlanModes = []string{"bridge", "private", "vepa", "passthru"}

var bothModes = []string{ModeBridge, ModeMacvlan}

// optionTable holds every option a network takes, in the order of the
// docs' reference (rendered from it by TestDocsOptions).
var optionTable = []option{{
	key: optMode, modes: bothModes,
	parse: func(o *netOptions, v string) error { o.Mode = v; return nil },
	check: func(o *netOptions) error {
		return oneOf(o.Mode, fmt.Sprintf("want %s (the default) or %s", ModeBridge, ModeMacvlan), ModeBridge, ModeMacvlan)
	},
	values: "`bridge`, `macvlan`", def: "`bridge`",
	help: "the network's data plane: a Linux bridge and veth pairs, or macvlan interfaces on a host interface's LAN ([bridge-macvlan.md](bridge-macvlan.md))",
}, {
	key: optBridge, alias: optBridgeDocker, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) error { o.Bridge = v; return nil },
	check:  func(o *netOptions) error { return validate.InterfaceName(o.Bridge) },
	values: "1 to 15 letters, digits, `_`, `.` or `-`, not starting with `-` (no `+` or `%`, which iptables and the kernel read as patterns), unused",
	def:    "`ds-` + 12 characters of the network ID",
	help:   "the bridge's name",
}, {
	key: optMTU, alias: optMTUDocker, modes: bothModes,
	parse: func(o *netOptions, v string) error {
		var err error
		if o.MTU, err = strconv.Atoi(v); err != nil {
			return errWantMTU
		}
		return nil
	},
	check: func(o *netOptions) error {
		if validate.MTU(o.MTU, false) != nil {
			return errWantMTU
		}
		return nil
	},
	values: "68–65535; 1280 or more with IPv6", def: "bridge: the kernel's default; macvlan: the parent's",
	help: "MTU of the bridge and the veths, or of the containers' macvlan interfaces",
}, {
	key: optHairpin, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) (err error) { o.Hairpin, err = parseBool(v); return err },
	values: "`true`, `false`", def: "`false`",
	help: "hairpin mode on the bridge ports",
}, {
	key: optAcceptRA, modes: bothModes,
	parse:  func(o *netOptions, v string) (err error) { o.AcceptRA, o.SLAAC, err = parseAcceptRA(v); return err },
	values: "`0` (also `false`, `off`, `no`), `1` (also `true`, `on`, `yes`), `2`, `slaac`", def: "`0`",
	help: "router advertisements in containers: `0` static addresses only, `1` routes (the default route) from advertisements, no address, `slaac` routes and SLAAC addresses; `2` (accept even when forwarding) acts as `1` in a container that does not forward. Set in the container's namespace before the interface can see an advertisement. On a macvlan network whose IPv6 subnet has no `--gateway`, the router advertising on the parent is the IPv6 gateway Docker is told of ([bridge-macvlan.md](bridge-macvlan.md#a-gateway-from-router-advertisements))",
}, {
	key: optIPv6Mode, modes: []string{ModeBridge},
	parse: func(o *netOptions, v string) error { o.IPv6Mode = strings.ToLower(v); return nil },
	check: func(o *netOptions) error {
		return oneOf(o.IPv6Mode, fmt.Sprintf("want %s (the default: no NAT, only replies and published ports come in) or %s (masquerade IPv6 as IPv4 is)", IPv6ModeRouted, IPv6ModeNAT), IPv6ModeRouted, IPv6ModeNAT)
	},
	values: "`routed`, `nat` (any case)", def: "`routed`",
	help: "`routed`: containers' IPv6 addresses are used as they are, and only replies and published ports come in; `nat`: IPv6 leaving the network is masqueraded, as IPv4 is ([firewall.md](firewall.md))",
}, {
	key: optICC, alias: optICCDocker, modes: []string{ModeBridge},
	parse: func(o *netOptions, v string) error {
		b, err := parseBool(v)
		o.NoICC = !b
		return err
	},
	values: "`true`, `false`", def: "`true`",
	help: "`false`: containers of the network cannot reach each other, in either family",
}, {
	key: optMasq, alias: optMasqDocker, modes: []string{ModeBridge},
	parse: func(o *netOptions, v string) error {
		b, err := parseBool(v)
		o.NoMasquerade = !b
		return err
	},
	values: "`true`, `false`", def: "`true`",
	help: "`false`: IPv4 leaving the network keeps the container's address (route the subnet to the host)",
}, {
	key: optGwMode4, alias: optGwMode4Docker, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) error { o.GatewayMode4 = strings.ToLower(v); return nil },
	check:  func(o *netOptions) error { return checkGatewayMode(o.GatewayMode4) },
	values: "`nat`, `nat-unprotected`, `routed`, `isolated`", def: "`nat` (as `ip_masquerade` says)",
	help: "Docker's IPv4 gateway mode: `nat` masquerades (the default); `nat-unprotected` masquerades and lets every port of the containers be reached at their addresses from outside; `routed` keeps the containers' addresses and lets published ports be reached at them (dualstack keeps the host port's translation too); `isolated` (only with `--internal`) puts no IPv4 gateway on the bridge. `routed` refused with `ip_masquerade=true` ([firewall.md](firewall.md#dockers-gateway-modes))",
}, {
	key: optGwMode6, alias: optGwMode6Docker, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) error { o.GatewayMode6 = strings.ToLower(v); return nil },
	check:  func(o *netOptions) error { return checkGatewayMode(o.GatewayMode6) },
	values: "`nat`, `nat-unprotected`, `routed`, `isolated`", def: "`routed` (as `ipv6_mode` says)",
	help: "Docker's IPv6 gateway mode: `nat` is `ipv6_mode=nat`; `nat-unprotected` is `nat` with every port of the containers reachable at their addresses from outside; `routed` is `ipv6_mode=routed` (dualstack's default, which keeps the host port's translation too); `isolated` (only with `--internal`) puts no IPv6 gateway on the bridge. Refused with an `ipv6_mode` that says otherwise ([firewall.md](firewall.md#dockers-gateway-modes))",
}, {
	key: optTrusted, alias: optTrustedDocker, modes: []string{ModeBridge},
	parse:  parseTrusted,
	check:  checkTrusted,
	values: "host interface names separated by `:` (they need not exist yet)", def: "none",
	help: "in a family that is masqueraded, what comes in on these host interfaces reaches published ports at the containers' own addresses too; nothing else. Not the network's own bridge ([firewall.md](firewall.md#dockers-gateway-modes))",
}, {
	key: optHostOverlap, modes: bothModes,
	parse:  func(o *netOptions, v string) (err error) { o.HostOverlap, err = parseBool(v); return err },
	values: "`true`, `false`", def: "`false`",
	help: "`true`: the subnets may overlap a network connected on a host interface or a route of the host (for those who route it on purpose); otherwise such a network is refused, naming the interface or the route",
}, {
	key: optAnnounce, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) (err error) { o.Announce, err = parseBool(v); return err },
	values: "`true`, `false`", def: "`false`",
	help: "the host's BGP speaker (`BGP_ASN`) announces the network's subnets: routed IPv6 on one host behind a router. Refused with `cluster` (a cluster network announces its host's blocks with `cluster_routes=bgp`) ([bgp.md](bgp.md))",
}, {
	key: optNDPProxy, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) error { o.NDPProxy = v; return nil },
	check:  func(o *netOptions) error { return validate.InterfaceName(o.NDPProxy) },
	values: "a host interface with an on-link IPv6 prefix (e.g. a VPS's `eth0`)", def: "none; set by itself with `--ipam-opt ndp_proxy=IF`",
	help: "the host answers on IF's link for the containers' IPv6 addresses, which lie in IF's on-link prefix (a VPS's /64): containers get public IPv6 with no routed subnet. The subnets must be parts of that prefix, smaller than it. Refused with `--internal`, `ipv6_mode=nat`, `cluster`, `announce` ([ndp-proxy.md](ndp-proxy.md))",
}, {
	key: optDelegated, modes: []string{ModeBridge},
	parse:  func(o *netOptions, v string) error { o.Delegated = v; return nil },
	check:  func(o *netOptions) error { return validate.InterfaceName(o.Delegated) },
	values: "a host interface whose router delegates prefixes by DHCPv6 (e.g. `eth0`)", def: "none",
	help: "the plugin asks IF's router for a prefix by DHCPv6 prefix delegation (one client per interface) and gives the network a /64 of it: each container gets, besides its addresses in the network's subnets (a ULA subnet, say), a global address in that /64 with the host part of its address in the network's first IPv6 subnet, renumbered when the prefix changes. The IPv6 subnets must be /64 or smaller. Refused with `--internal`, `ipv6_mode=nat`, `cluster`, `announce`, `ndp_proxy` ([delegated-prefix.md](delegated-prefix.md))",
}, {
	key: optDelegatedSubnet, modes: []string{ModeBridge}, needs: optDelegated,
	parse: func(o *netOptions, v string) error {
		id, err := strconv.ParseUint(v, 0, 32)
		if err != nil {
			return errors.New("want a subnet ID: a number, decimal or 0x-hexadecimal (0x1a)")
		}
		o.DelegatedSubnet = strconv.FormatUint(id, 10)
		return nil
	},
	values: "a number, decimal or `0x` hexadecimal", def: "the lowest free from 1, kept",
	help: "the network's subnet ID in the delegated prefix: its /64 is the prefix with these bits after it (with a /56, `0x1a` gives `…:xx1a::/64`); by default the lowest that no other network on the interface has, chosen at creation and kept across restarts and prefix changes",
}, {
	key: optParent, modes: []string{ModeMacvlan},
	parse:  func(o *netOptions, v string) error { o.Parent = v; return nil },
	check:  func(o *netOptions) error { return validate.InterfaceName(o.Parent) },
	values: "an existing host interface, or `IF.VID`", def: "required, except with `--internal`",
	help: "the host interface whose LAN the containers join; `IF.VID` (e.g. `eth0.10`) creates that 802.1q sub-interface if it is missing and removes it with the last network that uses it (needs the `8021q` module). Refused with the reason: a name starting with `-`, the loopback, a Docker network's bridge, one of dualstack's own links, a port of a bridge (give the bridge), a bridge whose ports are only veths ([bridge-macvlan.md](bridge-macvlan.md#macvlan-networks))",
}, {
	key: optMacvlanMode, modes: []string{ModeMacvlan},
	parse: func(o *netOptions, v string) error { o.MacvlanMode = v; return nil },
	check: func(o *netOptions) error {
		return oneOf(o.MacvlanMode, "want one of "+strings.Join(macvlanModes, ", "), macvlanModes...)
	},
	values: "`bridge`, `private`, `vepa`, `passthru`", def: "`bridge`",
	help: "`bridge` (containers reach each other), `private` (they do not), `vepa` (through the switch), `passthru` (one container takes the parent; no other network may share it)",
}, {
	key: optHostLink, modes: []string{ModeMacvlan},
	parse:  func(o *netOptions, v string) (err error) { o.HostLink, err = parseBool(v); return err },
	values: "`true`, `false`", def: "`false`",
	help: "`true`: a macvlan interface (`dsh` + network ID) on the parent in the host, with one address per family from the network's subnets and routes to every subnet, so the host reaches its containers and they reach it; removed with the network. Refused with `--internal`",
}, {
	key: optCluster, modes: bothModes,
	parse:  func(o *netOptions, v string) error { o.Cluster = v; return nil },
	check:  func(o *netOptions) error { return validate.ClusterName(o.Cluster) },
	values: "a cluster name", def: "none (a network of this host only)",
	help: "the cluster network this network is on this host; needs `CLUSTER_STORE`. Refused with `--internal` ([cluster.md](cluster.md))",
}, {
	key: optHostBlock4, modes: bothModes, needs: optCluster,
	parse:  func(o *netOptions, v string) error { return parseBlock(&o.HostBlock4, v, 32, "26") },
	check:  func(o *netOptions) error { return checkBlock(o.HostBlock4, 32, "26") },
	values: "a prefix length, 1–32 (`26` or `/26`)", def: "bridge `/26`, macvlan `/28` (never shorter than the subnet)",
	help: "length of each host's IPv4 blocks",
}, {
	key: optHostBlock6, modes: bothModes, needs: optCluster,
	parse:  func(o *netOptions, v string) error { return parseBlock(&o.HostBlock6, v, 128, "64") },
	check:  func(o *netOptions) error { return checkBlock(o.HostBlock6, 128, "64") },
	values: "a prefix length, 1–128 (`64` or `/64`)", def: "bridge `/64` in subnets of `/56` or shorter, else `/80`; macvlan `/120`",
	help: "length of each host's IPv6 blocks",
}, {
	key: optClusterRoute, modes: []string{ModeBridge}, needs: optCluster,
	parse: func(o *netOptions, v string) error { o.ClusterRoutes = v; return nil },
	check: func(o *netOptions) error {
		return oneOf(o.ClusterRoutes, fmt.Sprintf("want %s (the default: a route to each other host's blocks through its CLUSTER_ADDRESS, hosts on one LAN), %s (the host's blocks are announced to the routers in BGP_PEERS) or %s (the network routes them)", clusterRoutesHostGW, clusterRoutesBGP, clusterRoutesNone),
			clusterRoutesHostGW, clusterRoutesBGP, clusterRoutesNone)
	},
	values: "`host-gw`, `bgp`, `none`", def: "`host-gw`",
	help: "how hosts reach each other's blocks: `host-gw` routes every other host's blocks via its `CLUSTER_ADDRESS` (hosts on one LAN), `bgp` announces this host's blocks to the routers in `BGP_PEERS` ([bgp.md](bgp.md)), `none` leaves routing to the network",
}, {
	key: optSticky, modes: bothModes,
	parse:  func(o *netOptions, v string) (err error) { o.Sticky, err = parseBool(v); return err },
	values: "`true`, `false`", def: "`false`",
	help: "`true`: a container that goes and comes back under the same name (`docker compose up --force-recreate`, a watchtower update) gets the same addresses in every subnet, unless another container holds them then; kept for `sticky_hold` after it goes. Needs an engine that sends container names to IPAM plugins (Docker 29, API 1.52); older engines allocate as without it, with a warning in the plugin's log. A full subnet frees the address kept the longest, and `--ip` takes a kept address; `dualstack sticky` lists the reservations ([sticky-addresses.md](sticky-addresses.md))",
}, {
	key: optStickyHold, modes: bothModes, needs: optSticky,
	parse: func(o *netOptions, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil {
			return errWantHold
		}
		o.StickyHold = d
		return nil
	},
	check: func(o *netOptions) error {
		if o.StickyHold < addrbook.MinStickyHold {
			return errWantHold
		}
		return nil
	},
	values: "a duration of `1m` or more (`90m`, `48h`)", def: "`24h`",
	help: "how long a sticky network keeps a container's addresses after it goes",
}, {
	// Docker's own, in the order parseOptions reads them from the request.
	key: optEnableIPv6, flag: "`--ipv6`",
	parse: func(o *netOptions, v string) error {
		b, err := parseBool(v)
		o.IPv6 = o.IPv6 || b
		return err
	},
	help: "the network has IPv6 subnets",
}, {
	key: optEnableIPv4, flag: "`--ipv4=false` (current engines)",
	parse: func(o *netOptions, v string) (err error) { o.IPv4, err = parseBool(v); return err },
	help:  "`false`: an IPv6-only network (Engine 20.10 always adds an IPv4 pool, which the bridge then carries too)",
}, {
	key: optInternal, flag: "`--internal`",
	parse: func(o *netOptions, v string) error {
		b, err := parseBool(v)
		o.Internal = o.Internal || b
		return err
	},
	help: "no gateway route, nothing outside the network reachable; a macvlan network gets a parent of its own",
}}

// modeListing is the order in which a refusal lists the options a mode
// takes ("bridge networks take -o bridge, mtu, ..."): the order those
// messages have always had, which no one order of optionTable gives both
// modes. TestOptionTable checks that it names exactly the table's options.
var modeListing = map[string][]string{
	ModeBridge: {optBridge, optMTU, optHairpin, optAcceptRA, optIPv6Mode, optICC, optMasq,
		optBridgeDocker, optMTUDocker, optICCDocker, optMasqDocker,
		optGwMode4, optGwMode6, optTrusted, optGwMode4Docker, optGwMode6Docker, optTrustedDocker,
		optHostOverlap, optCluster, optHostBlock4, optHostBlock6, optClusterRoute, optAnnounce, optNDPProxy,
		optDelegated, optDelegatedSubnet, optSticky, optStickyHold},
	ModeMacvlan: {optParent, optMacvlanMode, optHostLink, optMTU, optMTUDocker, optAcceptRA,
		optHostOverlap, optCluster, optHostBlock4, optHostBlock6, optSticky, optStickyHold},
}

// optionByKey finds an option of optionTable by its key or its alias.
var optionByKey = func() map[string]*option {
	m := map[string]*option{}
	for i := range optionTable {
		opt := &optionTable[i]
		m[opt.key] = opt
		if opt.alias != "" {
			m[opt.alias] = opt
		}
	}
	return m
}()

// parseBool reads a boolean as strconv.ParseBool does.
func parseBool(v string) (bool, error) {
	b, err := strconv.ParseBool(v)
	if err != nil {
		return b, errWantBool
	}
	return b, nil
}

// oneOf refuses v, with reason, unless it is one of allowed.
func oneOf(v, reason string, allowed ...string) error {
	if !slices.Contains(allowed, v) {
		return errors.New(reason)
	}
	return nil
}

// parseBlock reads a host block's prefix length ("26" or "/26") into
// *bits; checkBlock judges it, 1 to max.
func parseBlock(bits *int, v string, max int, example string) error {
	var err error
	if *bits, err = strconv.Atoi(strings.TrimPrefix(v, "/")); err != nil {
		return blockReason(max, example)
	}
	return nil
}

func checkBlock(bits, max int, example string) error {
	if bits < 1 || bits > max {
		return blockReason(max, example)
	}
	return nil
}

func blockReason(max int, example string) error {
	return fmt.Errorf("want a prefix length between 1 and %d, such as %s", max, example)
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
	return 0, false, errors.New("want 0 (static addresses only), 1 (routes from router advertisements) or slaac (routes and addresses)")
}
