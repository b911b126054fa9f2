package main

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/dualstack-net/dualstack/ipamcheck"
)

// serveUnix serves h on a unix socket in dir and returns its path.
func serveUnix(t *testing.T, dir, name string, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(dir, name)
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return sock
}

// fakePlugin answers the view of testdata's plugin, as far as network n1
// goes, with one leaked address until it is released.
type fakePlugin struct {
	mu       sync.Mutex
	released []ipamcheck.Release
}

func (f *fakePlugin) view() *ipamcheck.PluginView {
	f.mu.Lock()
	defer f.mu.Unlock()
	allocs := []ipamcheck.Allocation{{Address: netip.MustParseAddr("198.51.100.1"), Kind: "gateway"}, {Address: netip.MustParseAddr("198.51.100.2"), Kind: "mac", ID: "02:42:c6:33:64:02"}}
	if len(f.released) == 0 {
		allocs = append(allocs, ipamcheck.Allocation{Address: netip.MustParseAddr("198.51.100.9"), Kind: "mac", ID: "02:42:c6:33:64:09"})
	}
	return &ipamcheck.PluginView{
		Networks:  []ipamcheck.Network{{ID: "n1", Mode: "bridge", Links: []string{"ds-n1"}, Subnets: []ipamcheck.Subnet{{Prefix: netip.MustParsePrefix("198.51.100.0/24"), Pool: "local/198.51.100.0/24"}}}},
		Endpoints: []ipamcheck.Endpoint{{ID: "e1", Network: "n1", MAC: "02:42:c6:33:64:02", Addresses: []netip.Addr{netip.MustParseAddr("198.51.100.2")}, HostLink: "dsve1", Owner: "endpoint:e1"}},
		Pools:     []ipamcheck.Pool{{ID: "local/198.51.100.0/24", Subnet: netip.MustParsePrefix("198.51.100.0/24"), Network: "n1", Allocations: allocs}},
		Links:     []ipamcheck.Link{{Name: "ds-n1", Type: "bridge"}, {Name: "dsve1", Type: "veth"}},
	}
}

func (f *fakePlugin) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(ipamcheck.ViewPath, func(w http.ResponseWriter, r *http.Request) { _ = json.NewEncoder(w).Encode(f.view()) })
	mux.HandleFunc(ipamcheck.ReleasePath, func(w http.ResponseWriter, r *http.Request) {
		var req ipamcheck.Release
		_ = json.NewDecoder(r.Body).Decode(&req)
		f.mu.Lock()
		f.released = append(f.released, req)
		f.mu.Unlock()
		_ = json.NewEncoder(w).Encode(ipamcheck.Released{Addresses: req.Addresses, Links: req.Links})
	})
	return mux
}

// fakeDocker has network n1 with e1's container, and a network of
// another driver.
func fakeDocker() http.Handler {
	n1 := `{"Id":"n1","Name":"web","Driver":"dualstack:latest","IPAM":{"Driver":"dualstack:latest","Config":[{"Subnet":"198.51.100.0/24"}]},` +
		`"Containers":{"c1":{"Name":"web-1","EndpointID":"e1","MacAddress":"02:42:c6:33:64:02","IPv4Address":"198.51.100.2/24"}}}`
	mux := http.NewServeMux()
	mux.HandleFunc("/networks", func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write([]byte(`[{"Id":"n1","Name":"web","Driver":"dualstack:latest","IPAM":{"Driver":"dualstack:latest"}},{"Id":"n2","Name":"bridge","Driver":"bridge","IPAM":{"Driver":"default"}}]`))
	})
	mux.HandleFunc("/networks/n1", func(w http.ResponseWriter, r *http.Request) { _, _ = w.Write([]byte(n1)) })
	mux.HandleFunc("/networks/n2", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "not asked for", http.StatusTeapot) })
	return mux
}

// TestIPAMCommand: the check prints the leak with its fix and exits 1;
// --release releases exactly it and exits 0; a check after finds nothing.
func TestIPAMCommand(t *testing.T) {
	releaseWait = 0
	dir := t.TempDir()
	plugin := &fakePlugin{}
	sock := serveUnix(t, dir, "plugin.sock", plugin.handler())
	docker := "unix://" + serveUnix(t, dir, "docker.sock", fakeDocker())
	run := func(args ...string) (string, int) {
		var out, errOut bytes.Buffer
		code := ipamCommand(append([]string{"check", "--socket", sock, "--docker-host", docker}, args...), &out, &errOut)
		return out.String() + errOut.String(), code
	}
	out, code := run()
	if code != 1 || !strings.Contains(out, "leaked-address: 198.51.100.9 in pool local/198.51.100.0/24\n") || !strings.Contains(out, "fix: dualstack ipam check --release") {
		t.Fatalf("check: exit %d:\n%s", code, out)
	}
	out, code = run("--release")
	if code != 0 || !strings.Contains(out, "1 found, all released") {
		t.Fatalf("check --release: exit %d:\n%s", code, out)
	}
	if len(plugin.released) != 1 || len(plugin.released[0].Addresses) != 1 || plugin.released[0].Addresses[0].Address.String() != "198.51.100.9" || len(plugin.released[0].Links) != 0 {
		t.Fatalf("released %+v, want exactly 198.51.100.9", plugin.released)
	}
	out, code = run("--json")
	var report ipamcheck.Report
	if err := json.Unmarshal([]byte(out), &report); code != 0 || err != nil || len(report.Findings) != 0 {
		t.Fatalf("check --json after the release: exit %d, %v:\n%s", code, err, out)
	}
	if _, code := run("--docker-host", "ssh://host"); code != 2 {
		t.Fatalf("an unusable --docker-host: exit %d, want 2", code)
	}
	if code := ipamCommand([]string{"verify"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 2 {
		t.Fatalf("dualstack ipam verify: exit %d, want 2", code)
	}
}
