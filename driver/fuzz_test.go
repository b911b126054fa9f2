package driver

import (
	"encoding/json"
	"testing"
)

// FuzzParseOptions feeds arbitrary CreateNetwork options (as Docker's JSON
// decodes them) to the option parser: it never panics, and what it accepts
// is a usable configuration.
func FuzzParseOptions(f *testing.F) {
	f.Add(`{"com.docker.network.enable_ipv6":true,"com.docker.network.generic":{"bridge":"br0","mtu":"1500"}}`)
	f.Add(`{"com.docker.network.generic":{"accept_ra":"2","hairpin":"true","mode":"bridge"}}`)
	f.Add(`{"com.docker.network.internal":"yes","com.docker.network.generic":[]}`)
	f.Add(`{"com.docker.network.generic":{"com.docker.network.driver.mtu":1280}}`)
	f.Fuzz(func(t *testing.T, raw string) {
		var opts map[string]interface{}
		if json.Unmarshal([]byte(raw), &opts) != nil {
			return
		}
		o, err := parseOptions("0123456789abcdef", opts)
		if err != nil {
			return
		}
		if o.Bridge == "" || len(o.Bridge) > 15 || o.AcceptRA < 0 || o.AcceptRA > 2 || (o.MTU != 0 && (o.MTU < 68 || o.MTU > 65535)) {
			t.Fatalf("accepted unusable options %+v from %s", o, raw)
		}
	})
}
