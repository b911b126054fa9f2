package driver

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/dualstack-net/dualstack/driver/bridge"
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
)

// IPv6 modes: routed (the default; containers' IPv6 addresses are used as
// they are, and the firewall lets in only replies and published ports) or
// nat (IPv6 leaving the network is masqueraded, as IPv4 is).
const (
	IPv6ModeRouted = "routed"
	IPv6ModeNAT    = "nat"
)

// ModeBridge is the default mode: a Linux bridge and veth pairs.
const ModeBridge = "bridge"

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
}

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
			if v != ModeBridge {
				errs = append(errs, fmt.Sprintf("mode=%q: this release supports mode=bridge only", v))
			}
		case optBridge, optBridgeDocker:
			if err := bridge.ValidateName(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", k, v, err))
			}
			o.Bridge = v
		case optMTU, optMTUDocker:
			mtu, err := strconv.Atoi(v)
			if err != nil || mtu < 68 || mtu > 65535 {
				errs = append(errs, fmt.Sprintf("%s=%q: want an MTU between 68 and 65535", k, v))
			}
			o.MTU = mtu
		case optHairpin:
			b, err := asBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("hairpin=%q: want true or false", v))
			}
			o.Hairpin = b
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
			ra, err := parseAcceptRA(v)
			if err != nil {
				errs = append(errs, err.Error())
			}
			o.AcceptRA = ra
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
		errs = append(errs, fmt.Sprintf("unknown option(s) %s: dualstack bridge networks take -o %s, %s, %s, %s, %s, %s, %s (or Docker's %s, %s, %s, %s)",
			strings.Join(unknown, ", "), optBridge, optMTU, optHairpin, optAcceptRA, optIPv6Mode, optICC, optMasq, optBridgeDocker, optMTUDocker, optICCDocker, optMasqDocker))
	}
	if o.IPv6 && o.MTU != 0 && o.MTU < 1280 {
		errs = append(errs, fmt.Sprintf("mtu=%d: IPv6 needs an MTU of at least 1280", o.MTU))
	}
	if len(errs) > 0 {
		return o, fmt.Errorf("dualstack: bad network options: %s", strings.Join(errs, "; "))
	}
	return o, nil
}

// parseAcceptRA reads the accept_ra option for containers: 0 (default:
// static addresses only), 1 (accept router advertisements) or 2.
func parseAcceptRA(v string) (int, error) {
	switch strings.ToLower(v) {
	case "0", "false", "off", "no":
		return 0, nil
	case "1", "true", "on", "yes":
		return 1, nil
	case "2":
		return 2, nil
	}
	return 0, fmt.Errorf("accept_ra=%q: want 0, 1 or 2", v)
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
