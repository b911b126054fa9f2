package plugin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fuzzPaths are every path the server routes.
var fuzzPaths = []string{
	"/Plugin.Activate",
	"/IpamDriver.GetCapabilities", "/IpamDriver.GetDefaultAddressSpaces", "/IpamDriver.RequestPool",
	"/IpamDriver.ReleasePool", "/IpamDriver.RequestAddress", "/IpamDriver.ReleaseAddress",
	"/NetworkDriver.GetCapabilities", "/NetworkDriver.CreateNetwork", "/NetworkDriver.DeleteNetwork",
	"/NetworkDriver.CreateEndpoint", "/NetworkDriver.DeleteEndpoint", "/NetworkDriver.EndpointOperInfo",
	"/NetworkDriver.Join", "/NetworkDriver.Leave", "/NetworkDriver.ProgramExternalConnectivity",
	"/NetworkDriver.RevokeExternalConnectivity", "/NetworkDriver.DiscoverNew", "/NetworkDriver.AllocateNetwork",
}

// FuzzRequests sends arbitrary bodies to every path, with the real IPAM
// driver behind the server: every answer is a JSON object with a defined
// status, and no input reaches a panic.
func FuzzRequests(f *testing.F) {
	for i := range fuzzPaths {
		f.Add(uint8(i), `{}`)
		f.Add(uint8(i), ``)
		f.Add(uint8(i), `null`)
	}
	f.Add(uint8(3), `{"AddressSpace":"local","Pool":"2001:db8::/64","V6":true}`)
	f.Add(uint8(3), `{"Pool":"192.0.2.0/30","SubPool":"192.0.2.0/31"}`)
	f.Add(uint8(5), `{"PoolID":"local/192.0.2.0/30","Address":"192.0.2.1","Options":{"RequestAddressType":"com.docker.network.gateway"}}`)
	f.Add(uint8(5), `{"PoolID":"local/2001:db8::/64","Options":{"com.docker.network.endpoint.macaddress":"02:42:00:00:00:01"}}`)
	f.Add(uint8(6), `{"PoolID":"local/192.0.2.0/30","Address":"192.0.2.2/30"}`)
	f.Add(uint8(8), `{"NetworkID":"n","Options":{"com.docker.network.generic":{"mtu":"x"}},"IPv6Data":[{"Pool":"fd00::/64"}]}`)

	id, _, log := realIPAM(f, f.TempDir())
	srv := New(fakeNetwork{}, id, log)
	f.Fuzz(func(t *testing.T, path uint8, body string) {
		p := fuzzPaths[int(path)%len(fuzzPaths)]
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, httptest.NewRequest(http.MethodPost, p, strings.NewReader(body)))
		switch w.Code {
		case http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError:
		default:
			t.Fatalf("%s: status %d", p, w.Code)
		}
		var out map[string]any
		if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
			t.Fatalf("%s: reply is not a JSON object: %q", p, w.Body.String())
		}
		if msg, _ := out["Err"].(string); strings.Contains(msg, "internal error") {
			t.Fatalf("%s %q: panicked: %s", p, body, msg)
		}
	})
}
