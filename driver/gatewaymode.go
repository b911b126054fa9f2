package driver

import (
	"errors"
	"fmt"
	"strings"

	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/validate"
)

// Docker's gateway modes and trusted host interfaces (bridge networks),
// under dualstack's short names and Docker's own.
const (
	optGwMode4        = "gateway_mode_ipv4"
	optGwMode4Docker  = "com.docker.network.bridge.gateway_mode_ipv4"
	optGwMode6        = "gateway_mode_ipv6"
	optGwMode6Docker  = "com.docker.network.bridge.gateway_mode_ipv6"
	optTrusted        = "trusted_host_interfaces"
	optTrustedDocker  = "com.docker.network.bridge.trusted_host_interfaces"
	gwModeNAT         = "nat"
	gwModeUnprotected = "nat-unprotected"
	gwModeRouted      = "routed"
	gwModeIsolated    = "isolated"
)

var gatewayModeNames = []string{gwModeNAT, gwModeUnprotected, gwModeRouted, gwModeIsolated}

var errWantGatewayMode = errors.New("want nat, nat-unprotected, routed or isolated (Docker's gateway modes)")

// checkGatewayMode judges a family's gateway mode as read.
func checkGatewayMode(mode string) error {
	return oneOf(mode, errWantGatewayMode.Error(), gatewayModeNames...)
}

// parseTrusted reads trusted_host_interfaces: host interface names
// separated by ":", as Docker takes them; they need not exist yet.
func parseTrusted(o *netOptions, v string) error {
	o.Trusted = v
	return nil
}

func checkTrusted(o *netOptions) error {
	for _, name := range o.trusted() {
		if err := validate.InterfaceName(name); err != nil {
			return fmt.Errorf("host interface %q: %w (separate names with ':')", name, err)
		}
	}
	return nil
}

// trusted lists the trusted host interfaces.
func (o netOptions) trusted() []string {
	if o.Trusted == "" {
		return nil
	}
	return strings.Split(o.Trusted, ":")
}

// familyMode is what a family's gateway mode makes of a network: its
// containers' addresses reached directly at published ports (routed),
// at every port (unprotected), or no gateway at all (isolated).
type familyMode struct {
	routed, unprotected, isolated bool
}

// gatewayMode is the family's mode (v6: IPv6) as its option says; a
// network without the option (and a record written before it existed)
// has the zero familyMode, today's behaviour, which ipv6_mode and
// ip_masquerade decide.
func (o netOptions) gatewayMode(v6 bool) familyMode {
	mode := o.GatewayMode4
	if v6 {
		mode = o.GatewayMode6
	}
	return familyMode{
		routed:      mode == gwModeRouted,
		unprotected: mode == gwModeUnprotected,
		isolated:    mode == gwModeIsolated,
	}
}

// gatewayModes maps Docker's gateway modes onto dualstack's model, the
// one place that does: IPv4 nat is ip_masquerade (the default), routed
// turns masquerading off, nat-unprotected keeps it; IPv6 nat and
// nat-unprotected are ipv6_mode=nat, routed is ipv6_mode=routed (the
// default). It refuses the combinations that contradict each other; given
// are the options read, which tell an explicit ip_masquerade or ipv6_mode
// from a default.
func gatewayModes(o *netOptions, given []given) []string {
	if o.Mode != ModeBridge {
		return nil // the options are refused: macvlan networks do not take them
	}
	explicit := map[string]string{}
	for _, g := range given {
		if g.err == nil {
			explicit[g.opt.key] = g.value
		}
	}
	var errs []string
	if m := o.GatewayMode4; m != "" {
		masq, set := explicit[optMasq]
		errs = append(errs, refusals(optGwMode4+"="+m, []refusal{
			{m == gwModeRouted && set && !o.NoMasquerade, fmt.Sprintf("routed IPv4 keeps the containers' addresses, and ip_masquerade=%s masquerades them; drop ip_masquerade", masq)},
		})...)
		if m == gwModeRouted {
			o.NoMasquerade = true
		}
	}
	if m := o.GatewayMode6; m != "" {
		want := IPv6ModeNAT
		if m == gwModeRouted || m == gwModeIsolated {
			want = IPv6ModeRouted
		}
		v6mode, set := explicit[optIPv6Mode]
		errs = append(errs, refusals(optGwMode6+"="+m, []refusal{
			{set && m != gwModeIsolated && o.IPv6Mode != want, fmt.Sprintf("it is ipv6_mode=%s in dualstack's words, and ipv6_mode=%s says otherwise; drop ipv6_mode", want, v6mode)},
		})...)
		if !set {
			o.IPv6Mode = want
		}
	}
	for _, f := range []struct{ key, mode string }{{optGwMode4, o.GatewayMode4}, {optGwMode6, o.GatewayMode6}} {
		if f.mode != gwModeIsolated {
			continue
		}
		errs = append(errs, refusals(f.key+"="+f.mode, []refusal{
			{!o.Internal, "gateway mode 'isolated' can only be used for an internal network: add --internal, or choose another mode"},
			{o.Announce, "an isolated family has no gateway, and announce=true routes the subnets to the host; drop announce"},
		})...)
	}
	for _, name := range o.trusted() {
		errs = append(errs, refusals(optTrusted+"="+o.Trusted, []refusal{
			{name == o.Bridge && name != "", fmt.Sprintf("%s is the network's own bridge: containers' traffic comes in there anyway; drop it from the list", name)},
		})...)
	}
	return errs
}

// gatewayFilter adds what n's gateway modes and trusted interfaces ask of
// the firewall.
func gatewayFilter(o netOptions, fn *firewall.Network) {
	v4, v6 := o.gatewayMode(false), o.gatewayMode(true)
	fn.Routed4 = v4.routed
	fn.Unprotected4 = v4.unprotected
	fn.Unprotected6 = v6.unprotected
	fn.Isolated4, fn.Isolated6 = v4.isolated, v6.isolated
	fn.Trusted = o.trusted()
}

// GwAllocCheck answers Moby's /NetworkDriver.GwAllocCheck, asked before
// CreateNetwork with the same options: for which families Docker must not
// reserve a gateway address. An isolated family has none, nor a network
// without IPv4; a macvlan network's router is outside the host, and only a
// gateway the user names (--gateway) exists. The options are parsed as
// CreateNetwork parses them, and refused with the same message; nothing
// else is done. Engine 20.10 never asks: CreateNetwork gives back the
// addresses it reserved (prepare).
func (d *Driver) GwAllocCheck(options map[string]interface{}) (skip4, skip6 bool, err error) {
	o, err := parseOptions("", options)
	if err != nil {
		return false, false, err
	}
	if o.Mode == ModeMacvlan {
		return true, true, nil
	}
	return !o.IPv4 || o.gatewayMode(false).isolated, o.gatewayMode(true).isolated, nil
}
