package driver

import (
	"encoding/json"
	"testing"
)

var macvlanModeSet = map[string]struct{}{"bridge": {}, "private": {}, "vepa": {}, "passthru": {}}

// FuzzParseOptions feeds arbitrary CreateNetwork options (as Docker's JSON
// decodes them) to the option parser: it never panics, and what it accepts
// is a usable configuration.
func FuzzParseOptions(f *testing.F) {
	f.Add(`{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"bridge":"br0","mtu":"1500"}}`)
	f.Add(`{"com.docker.network.generic":{"accept_ra":"2","hairpin":"true","mode":"bridge"}}`)
	f.Add(`{"com.docker.network.internal":"yes","com.docker.network.generic":[]}`)
	f.Add(`{"com.docker.network.generic":{"com.docker.network.driver.mtu":1280}}`)
	f.Add(`{"com.docker.network.generic":{"mode":"macvlan","parent":"eth0.10","macvlan_mode":"private","host_link":"true","accept_ra":"slaac"}}`)
	f.Add(`{"com.docker.network.generic":{"ipv6_mode":"nat","icc":"false","ip_masquerade":"false"}}`)
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
			bad = bad || o.Bridge == "" || len(o.Bridge) > 15 || o.Parent != "" || (o.IPv6Mode != IPv6ModeRouted && o.IPv6Mode != IPv6ModeNAT)
		case ModeMacvlan:
			_, known := macvlanModeSet[o.MacvlanMode]
			bad = bad || o.Parent == "" || len(o.Parent) > 15 || !known || o.Bridge != ""
		default:
			bad = true
		}
		if bad {
			t.Fatalf("accepted unusable options %+v from %s", o, raw)
		}
	})
}
