package plugin

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/docker/go-plugins-helpers/ipam"
	"github.com/docker/go-plugins-helpers/network"
	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver/netapi"
	"github.com/dualstack-net/dualstack/ipamdriver"
)

// fakeIPAM records the requests it gets and answers from fields.
type fakeIPAM struct {
	calls []string
	err   error
	panic bool
}

func (f *fakeIPAM) record(name string, req any) error {
	b, _ := json.Marshal(req)
	f.calls = append(f.calls, name+" "+string(b))
	if f.panic {
		panic("boom")
	}
	return f.err
}

func (f *fakeIPAM) GetCapabilities() (*ipamdriver.Capabilities, error) {
	return &ipamdriver.Capabilities{CapabilitiesResponse: ipam.CapabilitiesResponse{RequiresMACAddress: true}}, f.record("caps", nil)
}
func (f *fakeIPAM) GetDefaultAddressSpaces() (*ipam.AddressSpacesResponse, error) {
	return &ipam.AddressSpacesResponse{LocalDefaultAddressSpace: "local", GlobalDefaultAddressSpace: "global"}, f.record("spaces", nil)
}
func (f *fakeIPAM) RequestPool(r *ipam.RequestPoolRequest) (*ipam.RequestPoolResponse, error) {
	if err := f.record("RequestPool", r); err != nil {
		return nil, err
	}
	return &ipam.RequestPoolResponse{PoolID: "local/" + r.Pool, Pool: r.Pool}, nil
}
func (f *fakeIPAM) ReleasePool(r *ipam.ReleasePoolRequest) error { return f.record("ReleasePool", r) }
func (f *fakeIPAM) RequestAddress(r *ipam.RequestAddressRequest) (*ipam.RequestAddressResponse, error) {
	if err := f.record("RequestAddress", r); err != nil {
		return nil, err
	}
	return &ipam.RequestAddressResponse{Address: "192.0.2.2/24"}, nil
}
func (f *fakeIPAM) ReleaseAddress(r *ipam.ReleaseAddressRequest) error {
	return f.record("ReleaseAddress", r)
}

// fakeNetwork answers every network call: errors for the calls that create
// something, success for the rest.
type fakeNetwork struct{}

var errCreate = errors.New("cannot create: no such network")

func (fakeNetwork) GetCapabilities() (*network.CapabilitiesResponse, error) {
	return &network.CapabilitiesResponse{Scope: network.LocalScope, ConnectivityScope: network.LocalScope}, nil
}
func (fakeNetwork) CreateNetwork(*network.CreateNetworkRequest) error { return errCreate }
func (fakeNetwork) AllocateNetwork(*network.AllocateNetworkRequest) (*network.AllocateNetworkResponse, error) {
	return nil, errCreate
}
func (fakeNetwork) DeleteNetwork(*network.DeleteNetworkRequest) error { return nil }
func (fakeNetwork) FreeNetwork(*network.FreeNetworkRequest) error     { return nil }
func (fakeNetwork) CreateEndpoint(*network.CreateEndpointRequest) (*network.CreateEndpointResponse, error) {
	return nil, errCreate
}
func (fakeNetwork) DeleteEndpoint(*network.DeleteEndpointRequest) error { return nil }
func (fakeNetwork) EndpointInfo(*network.InfoRequest) (*network.InfoResponse, error) {
	return &network.InfoResponse{Value: map[string]string{}}, nil
}
func (fakeNetwork) Join(*network.JoinRequest) (*network.JoinResponse, error) { return nil, errCreate }
func (fakeNetwork) Leave(*network.LeaveRequest) error                        { return nil }
func (fakeNetwork) DiscoverNew(*network.DiscoveryNotification) error         { return nil }
func (fakeNetwork) DiscoverDelete(*network.DiscoveryNotification) error      { return nil }
func (fakeNetwork) ProgramExternalConnectivity(*network.ProgramExternalConnectivityRequest) error {
	return nil
}
func (fakeNetwork) RevokeExternalConnectivity(*network.RevokeExternalConnectivityRequest) error {
	return nil
}

func newTestServer(t *testing.T, id IPAM) *httptest.Server {
	t.Helper()
	log := logrus.New()
	log.SetOutput(io.Discard)
	ts := httptest.NewServer(New(fakeNetwork{}, id, log))
	t.Cleanup(ts.Close)
	return ts
}

func post(t *testing.T, ts *httptest.Server, path, body string) (int, map[string]any) {
	t.Helper()
	resp, err := http.Post(ts.URL+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	data, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatalf("%s: reply is not a JSON object: %q", path, data)
	}
	return resp.StatusCode, out
}

func TestActivateAnnouncesBothAPIs(t *testing.T) {
	ts := newTestServer(t, &fakeIPAM{})
	status, out := post(t, ts, "/Plugin.Activate", "")
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	got, _ := json.Marshal(out["Implements"])
	if string(got) != `["NetworkDriver","IpamDriver"]` {
		t.Fatalf("Implements = %s", got)
	}
}

func TestRoutesEveryIPAMPath(t *testing.T) {
	f := &fakeIPAM{}
	ts := newTestServer(t, f)
	cases := []struct {
		path, body, wantCall string
		wantKey, wantVal     string
	}{
		{"/IpamDriver.GetCapabilities", "null", "caps", "RequiresMACAddress", "true"},
		{"/IpamDriver.GetDefaultAddressSpaces", "", "spaces", "LocalDefaultAddressSpace", `"local"`},
		{"/IpamDriver.RequestPool", `{"AddressSpace":"local","Pool":"2001:db8::/64","V6":true}`,
			`RequestPool {"AddressSpace":"local","Pool":"2001:db8::/64","SubPool":"","Options":null,"V6":true}`, "PoolID", `"local/2001:db8::/64"`},
		{"/IpamDriver.ReleasePool", `{"PoolID":"p"}`, `ReleasePool {"PoolID":"p"}`, "", ""},
		{"/IpamDriver.RequestAddress", `{"PoolID":"p","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`,
			`RequestAddress {"PoolID":"p","Address":"","Options":{"RequestAddressType":"com.docker.network.gateway"}}`, "Address", `"192.0.2.2/24"`},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"p","Address":"192.0.2.2"}`, `ReleaseAddress {"PoolID":"p","Address":"192.0.2.2"}`, "", ""},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			f.calls = nil
			status, out := post(t, ts, c.path, c.body)
			if status != http.StatusOK {
				t.Fatalf("status %d: %v", status, out)
			}
			if len(f.calls) != 1 || !strings.HasPrefix(f.calls[0], c.wantCall) {
				t.Fatalf("driver calls %q, want %q", f.calls, c.wantCall)
			}
			if _, hasErr := out["Err"]; hasErr {
				t.Fatalf("success carries Err: %v", out)
			}
			if c.wantKey != "" {
				got, _ := json.Marshal(out[c.wantKey])
				if string(got) != c.wantVal {
					t.Fatalf("%s = %s, want %s", c.wantKey, got, c.wantVal)
				}
			}
		})
	}
}

func TestIPAMCapabilitiesDeclareReplay(t *testing.T) {
	ts := newTestServer(t, &fakeIPAM{})
	_, out := post(t, ts, "/IpamDriver.GetCapabilities", "")
	if v, ok := out["RequiresRequestReplay"]; !ok || v != false {
		t.Fatalf("RequiresRequestReplay must be sent explicitly as false, got %v", out)
	}
}

func TestNetworkDriverPaths(t *testing.T) {
	ts := newTestServer(t, &fakeIPAM{})
	cases := []struct {
		path    string
		status  int
		wantErr bool
	}{
		{"/NetworkDriver.GetCapabilities", 200, false},
		{"/NetworkDriver.CreateNetwork", 500, true},
		{"/NetworkDriver.AllocateNetwork", 500, true},
		{"/NetworkDriver.DeleteNetwork", 200, false},
		{"/NetworkDriver.FreeNetwork", 200, false},
		{"/NetworkDriver.CreateEndpoint", 500, true},
		{"/NetworkDriver.DeleteEndpoint", 200, false},
		{"/NetworkDriver.EndpointOperInfo", 200, false},
		{"/NetworkDriver.Join", 500, true},
		{"/NetworkDriver.Leave", 200, false},
		{"/NetworkDriver.DiscoverNew", 200, false},
		{"/NetworkDriver.DiscoverDelete", 200, false},
		{"/NetworkDriver.ProgramExternalConnectivity", 200, false},
		{"/NetworkDriver.RevokeExternalConnectivity", 200, false},
	}
	for _, c := range cases {
		status, out := post(t, ts, c.path, `{"NetworkID":"n1"}`)
		if status != c.status {
			t.Errorf("%s: status %d, want %d (%v)", c.path, status, c.status, out)
		}
		if msg, _ := out["Err"].(string); c.wantErr != (msg != "") {
			t.Errorf("%s: Err = %q", c.path, msg)
		}
	}
	_, out := post(t, ts, "/NetworkDriver.CreateNetwork", `{"NetworkID":"n1"}`)
	if msg := out["Err"].(string); msg != "dualstack: "+errCreate.Error() {
		t.Fatalf("CreateNetwork error should reach Docker verbatim, after the plugin's name: %q", msg)
	}
	_, caps := post(t, ts, "/NetworkDriver.GetCapabilities", "")
	if caps["Scope"] != network.LocalScope {
		t.Fatalf("scope = %v", caps["Scope"])
	}
}

func TestBadRequests(t *testing.T) {
	f := &fakeIPAM{}
	ts := newTestServer(t, f)
	cases := []struct {
		name, path, body string
		status           int
		want             string
	}{
		{"unknown path", "/IpamDriver.Nope", "{}", 404, "does not implement /IpamDriver.Nope"},
		{"unclean path", "//IpamDriver.RequestPool", "{}", 404, "does not implement //IpamDriver.RequestPool"},
		{"malformed", "/IpamDriver.RequestPool", "{nope", 400, "malformed request body for /IpamDriver.RequestPool"},
		{"truncated", "/IpamDriver.RequestAddress", `{"PoolID":"p","Addr`, 400, "truncated JSON"},
		{"wrong type", "/IpamDriver.RequestPool", `{"V6":"yes"}`, 400, "malformed"},
		{"trailing data", "/IpamDriver.ReleasePool", `{"PoolID":"p"} {}`, 400, "trailing data"},
		{"array", "/NetworkDriver.Join", `[1,2]`, 400, "malformed"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, out := post(t, ts, c.path, c.body)
			if status != c.status {
				t.Fatalf("status %d, want %d", status, c.status)
			}
			if msg, _ := out["Err"].(string); !strings.Contains(msg, c.want) {
				t.Fatalf("Err = %q, want it to contain %q", msg, c.want)
			}
		})
	}
	if len(f.calls) != 0 {
		t.Fatalf("bad requests reached the driver: %q", f.calls)
	}
}

func TestDriverErrorsAndPanics(t *testing.T) {
	f := &fakeIPAM{err: errors.New("address 192.0.2.9 is already in use in pool 192.0.2.0/24")}
	ts := newTestServer(t, f)
	status, out := post(t, ts, "/IpamDriver.RequestAddress", `{"PoolID":"p","Address":"192.0.2.9"}`)
	if status != http.StatusInternalServerError || out["Err"] != "dualstack: "+f.err.Error() {
		t.Fatalf("status %d, reply %v: want 500 and the driver's message verbatim, after the plugin's name", status, out)
	}
	f.err, f.panic = nil, true
	status, out = post(t, ts, "/IpamDriver.ReleasePool", `{"PoolID":"p"}`)
	if status != http.StatusInternalServerError || !strings.Contains(out["Err"].(string), "internal error") {
		t.Fatalf("panic: status %d, reply %v", status, out)
	}
	f.panic = false
	if status, _ := post(t, ts, "/IpamDriver.ReleasePool", `{"PoolID":"p"}`); status != http.StatusOK {
		t.Fatalf("server did not survive a panic: status %d", status)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	ts := newTestServer(t, &fakeIPAM{})
	resp, err := http.Get(ts.URL + "/IpamDriver.GetCapabilities")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: status %d", resp.StatusCode)
	}
}

// TestUnixSocket serves on a real unix socket, as Docker talks to the
// plugin, and replaces a stale socket file left by a killed process.
func TestUnixSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "plugins", "dualstack.sock")
	stale, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	// Closing a unix listener removes its file; simulate a SIGKILL, which
	// leaves the file behind.
	stale.(*net.UnixListener).SetUnlinkOnClose(false)
	stale.Close()

	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatalf("stale socket not replaced: %v", err)
	}
	if _, err := ListenUnix(sock); err == nil || !strings.Contains(err.Error(), "another process") {
		t.Fatalf("second listener on a live socket: err = %v", err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	srv := &http.Server{}
	done := make(chan error, 1)
	go func() { done <- New(fakeNetwork{}, &fakeIPAM{}, log).Serve(context.Background(), srv, l, time.Second) }()
	c := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := c.Post("http://plugin/Plugin.Activate", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "IpamDriver") {
		t.Fatalf("activate over the socket: %s", body)
	}
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Serve after shutdown: %v", err)
	}
}

// joinerFrom records the process each Join came from.
type joinerFrom struct {
	fakeNetwork
	pids chan int
}

func (j joinerFrom) JoinFrom(pid int, req *network.JoinRequest) (*netapi.JoinResponse, error) {
	j.pids <- pid
	return &netapi.JoinResponse{InterfaceName: netapi.InterfaceName{SrcName: "dsc0", DstPrefix: "eth", DstName: "wan0"}}, nil
}

// TestJoinFromTheSocketPeer: a Join served on the unix socket tells the
// driver the process it came from (dockerd, for the plugin).
func TestJoinFromTheSocketPeer(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "dualstack.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	nd := joinerFrom{pids: make(chan int, 10)}
	srv := &http.Server{}
	go New(nd, &fakeIPAM{}, log).Serve(context.Background(), srv, l, time.Second)
	defer srv.Shutdown(context.Background())

	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for i := 0; i < 2; i++ {
		r, err := client.Post("http://plugin/NetworkDriver.Join", "application/json", strings.NewReader(`{"EndpointID":"e"}`))
		if err != nil {
			t.Fatal(err)
		}
		r.Body.Close()
		if r.StatusCode != http.StatusOK {
			t.Fatalf("Join: %s", r.Status)
		}
	}
	for i := 0; i < 2; i++ {
		if pid := <-nd.pids; pid != os.Getpid() {
			t.Fatalf("Join from %d, want this process, %d", pid, os.Getpid())
		}
	}
	// Without a unix socket behind it, the process is not known.
	ts := httptest.NewServer(New(nd, &fakeIPAM{}, log))
	defer ts.Close()
	r, err := http.Post(ts.URL+"/NetworkDriver.Join", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(r.Body)
	r.Body.Close()
	if pid := <-nd.pids; pid != 0 {
		t.Fatalf("Join over TCP from %d, want 0", pid)
	}
	// The interface's name in the container reaches Docker, which reads
	// InterfaceName.DstName (moby's remote driver API).
	if want := `"InterfaceName":{"SrcName":"dsc0","DstPrefix":"eth","DstName":"wan0"}`; !strings.Contains(string(body), want) {
		t.Fatalf("Join answered %s, want %s in it", body, want)
	}
}

// slowNetwork takes its time to create a network, as a commit on a slow
// disk would, and says when it is done.
type slowNetwork struct {
	fakeNetwork
	started chan struct{}
	done    chan struct{}
}

func (s slowNetwork) CreateNetwork(*network.CreateNetworkRequest) error {
	close(s.started)
	time.Sleep(500 * time.Millisecond)
	close(s.done)
	return nil
}

// TestGracefulStop: at SIGTERM (ctx done) a request under way finishes
// and is answered before Serve returns; new connections are refused.
func TestGracefulStop(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "dualstack.sock")
	l, err := ListenUnix(sock)
	if err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(io.Discard)
	nd := slowNetwork{started: make(chan struct{}), done: make(chan struct{})}
	ctx, sigterm := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- New(nd, &fakeIPAM{}, log).Serve(ctx, &http.Server{}, l, 5*time.Second) }()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	answered := make(chan int, 1)
	go func() {
		r, err := client.Post("http://plugin/NetworkDriver.CreateNetwork", "application/json", strings.NewReader(`{"NetworkID":"n"}`))
		if err != nil {
			answered <- 0
			return
		}
		r.Body.Close()
		answered <- r.StatusCode
	}()
	<-nd.started
	sigterm()
	err = <-served
	select {
	case <-nd.done:
	default:
		t.Fatal("Serve returned before the request under way finished")
	}
	if err != nil {
		t.Fatalf("Serve: %v", err)
	}
	if code := <-answered; code != http.StatusOK {
		t.Fatalf("the request under way at SIGTERM got %d, want 200", code)
	}
	if c, err := net.Dial("unix", sock); err == nil {
		c.Close()
		t.Fatal("a new connection was taken after SIGTERM")
	}
}

// TestBodylessRetries: Docker resends a call whose answer a plugin restart
// lost, but without its body (see needsBody). A call that creates
// something is then refused, saying why, without reaching the driver; a
// removal or a call without arguments is served as usual.
func TestBodylessRetries(t *testing.T) {
	f := &fakeIPAM{}
	ts := newTestServer(t, f)
	for _, path := range []string{"/IpamDriver.RequestPool", "/IpamDriver.RequestAddress", "/NetworkDriver.CreateNetwork", "/NetworkDriver.CreateEndpoint", "/NetworkDriver.Join"} {
		for _, body := range []string{"", "null", " \n"} {
			status, out := post(t, ts, path, body)
			msg, _ := out["Err"].(string)
			if status != http.StatusBadRequest || !strings.Contains(msg, path+" arrived without its request") || !strings.Contains(msg, "run the command again") {
				t.Errorf("%s with body %q: status %d, %q; want 400 saying the request is missing and to run the command again", path, body, status, msg)
			}
		}
	}
	if len(f.calls) != 0 {
		t.Fatalf("body-less creations reached the IPAM: %q", f.calls)
	}
	for _, path := range []string{"/IpamDriver.ReleasePool", "/IpamDriver.ReleaseAddress", "/IpamDriver.GetCapabilities", "/NetworkDriver.DeleteNetwork", "/NetworkDriver.DeleteEndpoint", "/NetworkDriver.Leave", "/NetworkDriver.GetCapabilities", "/Plugin.Activate"} {
		if status, out := post(t, ts, path, ""); status != http.StatusOK {
			t.Errorf("%s without a body: status %d, %v; want it served", path, status, out)
		}
	}
	// A default-pool request is a request with a body whose fields are
	// empty: served.
	if status, out := post(t, ts, "/IpamDriver.RequestPool", `{"AddressSpace":"local"}`); status != http.StatusOK {
		t.Errorf("a default-pool request: status %d, %v", status, out)
	}
}

// givingBack is a network driver that hears of give-backs, into the same
// log of calls as the IPAM.
type givingBack struct {
	fakeNetwork
	f *fakeIPAM
}

func (g givingBack) PoolReleased(id string) { g.f.calls = append(g.f.calls, "PoolReleased "+id) }
func (g givingBack) AddressReleased(a netip.Addr) {
	g.f.calls = append(g.f.calls, "AddressReleased "+a.String())
}

// TestGiveBacksReachTheNetworkDriverFirst: a pool or an address Docker
// gives back through the IPAM API reaches the network driver before the
// IPAM lets it go (a network or endpoint Docker gave up on goes with it);
// a malformed address reaches the IPAM alone, which refuses it.
func TestGiveBacksReachTheNetworkDriverFirst(t *testing.T) {
	f := &fakeIPAM{}
	log := logrus.New()
	log.SetOutput(io.Discard)
	ts := httptest.NewServer(New(givingBack{f: f}, f, log))
	t.Cleanup(ts.Close)
	cases := []struct {
		path, body string
		want       []string
	}{
		{"/IpamDriver.ReleasePool", `{"PoolID":"local/p"}`, []string{"PoolReleased local/p", `ReleasePool {"PoolID":"local/p"}`}},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"p","Address":"192.0.2.2/24"}`, []string{"AddressReleased 192.0.2.2", `ReleaseAddress {"PoolID":"p","Address":"192.0.2.2/24"}`}},
		{"/IpamDriver.ReleaseAddress", `{"PoolID":"p","Address":"junk"}`, []string{`ReleaseAddress {"PoolID":"p","Address":"junk"}`}},
	}
	for _, c := range cases {
		f.calls = nil
		if status, out := post(t, ts, c.path, c.body); status != http.StatusOK {
			t.Fatalf("%s: status %d: %v", c.path, status, out)
		}
		if strings.Join(f.calls, "\n") != strings.Join(c.want, "\n") {
			t.Errorf("%s %s: calls %q, want %q", c.path, c.body, f.calls, c.want)
		}
	}
}

// gwFake is a network driver that answers GwAllocCheck: isolated for an
// internal network, and refuses options it does not know.
type gwFake struct {
	fakeNetwork
	got map[string]interface{}
}

func (f *gwFake) GwAllocCheck(options map[string]interface{}) (bool, bool, error) {
	f.got = options
	if _, ok := options["bogus"]; ok {
		return false, false, errors.New("bad network options: bogus")
	}
	internal, _ := options["com.docker.network.internal"].(bool)
	return internal, false, nil
}

// TestGwAllocCheck: a driver that answers GwAllocCheck says so in its
// capabilities, gets Docker's options as sent and answers in Docker's
// words; a refusal reaches Docker; a driver that does not answer it
// declares nothing and the path is unknown.
func TestGwAllocCheck(t *testing.T) {
	log := logrus.New()
	log.SetOutput(io.Discard)
	f := &gwFake{}
	ts := httptest.NewServer(New(f, &fakeIPAM{}, log))
	t.Cleanup(ts.Close)
	_, caps := post(t, ts, "/NetworkDriver.GetCapabilities", "")
	if caps["GwAllocChecker"] != true || caps["Scope"] != network.LocalScope {
		t.Fatalf("capabilities %v: want GwAllocChecker true and the local scope", caps)
	}
	status, out := post(t, ts, "/NetworkDriver.GwAllocCheck", `{"Options":{"com.docker.network.internal":true,"com.docker.network.generic":{"gateway_mode_ipv4":"isolated"}}}`)
	if status != http.StatusOK || out["SkipIPv4"] != true || out["SkipIPv6"] != false {
		t.Fatalf("GwAllocCheck: status %d, %v", status, out)
	}
	if g, _ := f.got["com.docker.network.generic"].(map[string]interface{}); g["gateway_mode_ipv4"] != "isolated" {
		t.Fatalf("the driver got options %v", f.got)
	}
	status, out = post(t, ts, "/NetworkDriver.GwAllocCheck", `{"Options":{"bogus":1}}`)
	if status != http.StatusInternalServerError || out["Err"] != "dualstack: bad network options: bogus" {
		t.Fatalf("a refusal: status %d, %v", status, out)
	}

	plain := newTestServer(t, &fakeIPAM{})
	if _, caps := post(t, plain, "/NetworkDriver.GetCapabilities", ""); caps["GwAllocChecker"] != nil {
		t.Fatalf("a driver without GwAllocCheck declares it: %v", caps)
	}
	if status, _ := post(t, plain, "/NetworkDriver.GwAllocCheck", `{"Options":{}}`); status != http.StatusNotFound {
		t.Fatalf("GwAllocCheck on a driver without it: status %d, want 404", status)
	}
}
