package driver

import (
	"encoding/json"
	"testing"
)

var macvlanModeSet = map[string]struct{}{"bridge": {}, "private": {}, "vepa": {}, "passthru": {}}

// FuzzParseOptions feeds arbitrary CreateNetwork options (as Docker's JSON
// decodes them) to the option parser: it never panics, and what it accepts
// is a usable configuration.
// safeName is the property every interface name that options accept has:
// 1 to 15 characters of A-Z, a-z, 0-9, '_', '.', '-' (no '+' or '%', which
// iptables and the kernel read as patterns), and not "." or "..".
func safeName(name string) bool {
	if name == "" || len(name) > 15 || name == "." || name == ".." {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return false
		}
	}
	return true
}

func FuzzParseOptions(f *testing.F) {
	f.Add(`{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"bridge":"br0","mtu":"1500"}}`)
	f.Add(`{"com.docker.network.generic":{"accept_ra":"2","hairpin":"true","mode":"bridge"}}`)
	f.Add(`{"com.docker.network.internal":"yes","com.docker.network.generic":[]}`)
	f.Add(`{"com.docker.network.generic":{"com.docker.network.driver.mtu":1280}}`)
	f.Add(`{"com.docker.network.generic":{"mode":"macvlan","parent":"eth0.10","macvlan_mode":"private","host_link":"true","accept_ra":"slaac"}}`)
	f.Add(`{"com.docker.network.generic":{"ipv6_mode":"nat","icc":"false","ip_masquerade":"false"}}`)
	f.Add(`{"com.docker.network.generic":{"bridge":"x+"}}`)
	f.Add(`{"com.docker.network.generic":{"bridge":"bars%d"}}`)
	f.Add(`{"com.docker.network.generic":{"mode":"macvlan","parent":"+"}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var opts map[string]interface{}
		if json.Unmarshal([]byte(raw), &opts) != nil {
			return
		}
		o, err := parseOptions("0123456789abcdef", opts)
		if err != nil {
			return
		}
		bad := o.AcceptRA < 0 || o.AcceptRA > 2 || (o.MTU != 0 && (o.MTU < 68 || o.MTU > 65535))
		switch o.Mode {
		case ModeBridge:
			bad = bad || !safeName(o.Bridge) || o.Parent != "" || (o.IPv6Mode != IPv6ModeRouted && o.IPv6Mode != IPv6ModeNAT)
		case ModeMacvlan:
			_, known := macvlanModeSet[o.MacvlanMode]
			bad = bad || !safeName(o.Parent) || !known || o.Bridge != ""
		default:
			bad = true
		}
		if bad {
			t.Fatalf("accepted unusable options %+v from %s", o, raw)
		}
	})
}
