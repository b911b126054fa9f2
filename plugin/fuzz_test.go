package plugin

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/state"
)

// realIPAM returns dualstack's IPAM driver on a state file in dir, closed
// when tb ends, and a logger that discards.
func realIPAM(tb testing.TB, dir string) (*ipamdriver.Driver, logrus.FieldLogger) {
	tb.Helper()
	db, err := state.Open(dir, time.Second)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	log := logrus.New()
	log.SetOutput(io.Discard)
	book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "test", Log: log})
	if err != nil {
		tb.Fatal(err)
	}
	return ipamdriver.New(book, nil), log
}

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

	id, log := realIPAM(f, f.TempDir())
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
