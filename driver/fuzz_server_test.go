package driver

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/firewall"
	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/plugin"
	"github.com/dualstack-net/dualstack/state"
)

// fakePlane is a data plane that touches no kernel: it builds nothing and
// fails nothing, so that the fuzz target exercises the driver's own logic
// (records, allocations, retries, refusals) alone.
type fakePlane struct{}

func (fakePlane) checkFree(*network, map[string]*network) error                  { return nil }
func (fakePlane) prepare(*network, *addrbook.Book) error                         { return nil }
func (fakePlane) createNetwork(*network, map[string]*network) (func(), error)    { return func() {}, nil }
func (fakePlane) deleteNetwork(*network, map[string]*network) error              { return nil }
func (fakePlane) restoreNetwork(*network, bool) error                            { return nil }
func (fakePlane) restoreEndpoint(*network, *endpoint, hostLinks, bool) error     { return nil }
func (fakePlane) createEndpoint(_ *network, ep *endpoint) error                  { ep.HostVeth = "dsvfuzz"; return nil }
func (fakePlane) deleteEndpoint(*network, *endpoint) error                       { return nil }
func (fakePlane) owners(*network) []string                                       { return nil }
func (fakePlane) filter(*network) (firewall.Network, bool)                       { return firewall.Network{}, false }
func (fakePlane) forwards(*network) (v4, v6 bool)                                { return false, false }
func (fakePlane) publishes(*network) bool                                        { return false }
func (fakePlane) lan(*network) string                                            { return "" }
func (fakePlane) open(*network) error                                            { return nil }
func (fakePlane) describe(_ *network, log logrus.FieldLogger) logrus.FieldLogger { return log }
func (fakePlane) routed(*network) bool                                           { return false }
func (fakePlane) define(*network, *cluster.Definition)                           {}
func (fakePlane) putGateways(*network) error                                     { return nil }

// FuzzServer sends arbitrary sequences of requests (one "path body" a
// line) through the plugin's server to the real network driver and IPAM,
// with the kernel faked behind the data plane and every namespace beyond
// reach (Join is refused at once). Whatever comes in: no panic, every
// answer a JSON object with a defined status, and never one address held
// by two endpoints.
func FuzzServer(f *testing.F) {
	ns := netnstest.New(f) // the driver's start reads the host's links: a throwaway host
	f.Add("/IpamDriver.RequestPool {\"AddressSpace\":\"local\",\"Pool\":\"192.0.2.0/24\"}\n" +
		"/IpamDriver.RequestPool {\"AddressSpace\":\"local\",\"Pool\":\"fd00:1::/64\",\"V6\":true}\n" +
		"/IpamDriver.RequestPool {\"AddressSpace\":\"local\",\"Pool\":\"fd00:2::/64\",\"V6\":true}\n" +
		"/IpamDriver.RequestAddress {\"PoolID\":\"local/192.0.2.0/24\",\"Options\":{\"RequestAddressType\":\"com.docker.network.gateway\"}}\n" +
		"/NetworkDriver.CreateNetwork {\"NetworkID\":\"0123456789abcdef\",\"Options\":{\"com.docker.network.enable_ipv6\":true},\"IPv4Data\":[{\"AddressSpace\":\"local\",\"Pool\":\"192.0.2.0/24\",\"Gateway\":\"192.0.2.1/24\"}],\"IPv6Data\":[{\"AddressSpace\":\"local\",\"Pool\":\"fd00:1::/64\"},{\"AddressSpace\":\"local\",\"Pool\":\"fd00:2::/64\"}]}\n" +
		"/IpamDriver.RequestAddress {\"PoolID\":\"local/192.0.2.0/24\",\"Options\":{\"com.docker.network.endpoint.macaddress\":\"02:42:c0:00:02:02\"}}\n" +
		"/IpamDriver.RequestAddress {\"PoolID\":\"local/192.0.2.0/24\",\"Options\":{\"com.docker.network.endpoint.macaddress\":\"02:42:c0:00:02:02\"}}\n" +
		"/NetworkDriver.CreateEndpoint {\"NetworkID\":\"0123456789abcdef\",\"EndpointID\":\"e1e1e1e1e1e1e1e1\",\"Interface\":{\"Address\":\"192.0.2.2/24\",\"MacAddress\":\"02:42:c0:00:02:02\"}}\n" +
		"/NetworkDriver.CreateEndpoint {\"NetworkID\":\"0123456789abcdef\",\"EndpointID\":\"e2e2e2e2e2e2e2e2\",\"Interface\":{\"Address\":\"192.0.2.2/24\",\"MacAddress\":\"02:42:c0:00:02:02\"}}\n" +
		"/NetworkDriver.Join {\"NetworkID\":\"0123456789abcdef\",\"EndpointID\":\"e1e1e1e1e1e1e1e1\",\"SandboxKey\":\"/run/docker/netns/x\"}\n" +
		"/NetworkDriver.CreateNetwork {\"NetworkID\":\"0123456789abcdef\",\"Options\":{\"com.docker.network.enable_ipv6\":true},\"IPv4Data\":[{\"AddressSpace\":\"local\",\"Pool\":\"192.0.2.0/24\",\"Gateway\":\"192.0.2.1/24\"}]}\n" +
		"/NetworkDriver.DeleteEndpoint {\"NetworkID\":\"0123456789abcdef\",\"EndpointID\":\"e1e1e1e1e1e1e1e1\"}\n" +
		"/IpamDriver.ReleasePool {\"PoolID\":\"local/fd00:2::/64\"}\n" +
		"/NetworkDriver.DeleteNetwork {\"NetworkID\":\"0123456789abcdef\"}\n")
	f.Add("/NetworkDriver.CreateNetwork {\"NetworkID\":\"n\",\"IPv4Data\":[{\"Pool\":\"0.0.0.0/0\"}]}\n/NetworkDriver.CreateEndpoint {\"NetworkID\":\"n\",\"EndpointID\":\"e\",\"Interface\":{\"MacAddress\":\"01:00:5e:00:00:01\"}}\n")
	f.Add("/NetworkDriver.GwAllocCheck {\"Options\":{\"com.docker.network.internal\":true,\"com.docker.network.generic\":{\"gateway_mode_ipv4\":\"isolated\"}}}\n" +
		"/NetworkDriver.GwAllocCheck {\"Options\":{\"com.docker.network.generic\":{\"trusted_host_interfaces\":\"eth0::+\"}}}\n")
	quietLog := logrus.New()
	quietLog.SetOutput(io.Discard)
	f.Fuzz(func(t *testing.T, script string) {
		dir := t.TempDir()
		err := netns.Do(ns.Path, func() error {
			db, err := state.Open(dir, time.Second)
			if err != nil {
				return err
			}
			defer db.Close()
			book, err := addrbook.New(addrbook.Config{DB: db, MachineID: "fuzz", Log: quietLog})
			if err != nil {
				return err
			}
			// Namespaces are beyond reach: a run mount that is no mount.
			sandboxes := sandboxkey.New(sandboxkey.Config{Want: sandboxkey.Mount, HostRun: "/run", RunMount: dir})
			d, err := newWith(Config{DB: db, Book: book, Log: quietLog, Sandboxes: sandboxes}, map[string]dataplane{ModeBridge: fakePlane{}, ModeMacvlan: fakePlane{}})
			if err != nil {
				return err
			}
			defer d.Close()
			srv := plugin.New(d, ipamdriver.New(book, nil), quietLog)
			for _, line := range strings.Split(script, "\n") {
				path, body, _ := strings.Cut(line, " ")
				if !strings.HasPrefix(path, "/") {
					continue
				}
				req, err := http.NewRequest(http.MethodPost, path, strings.NewReader(body))
				if err != nil {
					continue // not a request line an HTTP server would pass on
				}
				w := httptest.NewRecorder()
				srv.ServeHTTP(w, req)
				switch w.Code {
				case http.StatusOK, http.StatusBadRequest, http.StatusInternalServerError, http.StatusNotFound:
				default:
					t.Fatalf("%s: status %d", path, w.Code)
				}
				var out map[string]any
				if err := json.Unmarshal(w.Body.Bytes(), &out); err != nil {
					t.Fatalf("%s: reply is not a JSON object: %q", path, w.Body.String())
				}
				if msg, _ := out["Err"].(string); strings.Contains(msg, "internal error") {
					t.Fatalf("%s %q: panicked: %s", path, body, msg)
				}
			}
			// Never one address held by two endpoints of a network.
			held := map[string]map[netip.Addr]string{}
			for _, ep := range d.endpoints {
				if held[ep.NetworkID] == nil {
					held[ep.NetworkID] = map[netip.Addr]string{}
				}
				for _, a := range ep.addresses() {
					if other, ok := held[ep.NetworkID][a.Addr()]; ok {
						t.Fatalf("endpoints %s and %s both hold %s", other, ep.ID, a.Addr())
					}
					held[ep.NetworkID][a.Addr()] = ep.ID
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
