package settings

import (
	"strings"
	"testing"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver/sandboxkey"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDefaults(t *testing.T) {
	s, err := FromEnv(env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if s.LogLevel != logrus.InfoLevel || !s.UplinkAcceptRA || s.StateDir != DefaultStateDir ||
		s.Socket != DefaultSocket || s.MachineIDFile != DefaultMachineIDFile || len(s.DefaultPoolsV4) != 2 ||
		s.NetnsAccess != sandboxkey.Auto || !s.ForwardDrop {
		t.Fatalf("defaults: %+v", s)
	}
}

func TestValues(t *testing.T) {
	s, err := FromEnv(env(map[string]string{"LOG_LEVEL": "debug", "UPLINK_ACCEPT_RA": "false", "DEFAULT_POOLS_V4": "10.9.0.0/16:26", "STATE_DIR": "/tmp/x", "NETNS_ACCESS": "mount", "FORWARD_DROP": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	if s.LogLevel != logrus.DebugLevel || s.UplinkAcceptRA || s.DefaultPoolsV4[0].Size != 26 || s.StateDir != "/tmp/x" || s.NetnsAccess != sandboxkey.Mount || s.ForwardDrop {
		t.Fatalf("got %+v", s)
	}
}

func TestBadValuesAreAllNamed(t *testing.T) {
	_, err := FromEnv(env(map[string]string{"LOG_LEVEL": "loud", "UPLINK_ACCEPT_RA": "maybe", "FIREWALL_BACKEND": "pf", "DEFAULT_POOLS_V4": "10.0.0.0/8:99", "NETNS_ACCESS": "host", "FORWARD_DROP": "always"}))
	if err == nil {
		t.Fatal("bad settings accepted")
	}
	for _, want := range []string{`LOG_LEVEL="loud"`, `UPLINK_ACCEPT_RA="maybe"`, `FIREWALL_BACKEND: firewall backend "pf"`, "DEFAULT_POOLS_V4", `NETNS_ACCESS="host"`, `FORWARD_DROP="always"`, "docker plugin set"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

// TestCluster: the cluster settings, read and checked; none means no
// cluster.
func TestCluster(t *testing.T) {
	s, err := FromEnv(env(nil))
	if err != nil || len(s.ClusterStore) != 0 || len(s.ClusterAddress) != 0 {
		t.Fatalf("no cluster settings: %+v, %v", s, err)
	}
	s, err = FromEnv(env(map[string]string{"CLUSTER_STORE": "https://198.51.100.1:2379, https://etcd.example:2379", "CLUSTER_NODE": "host-1", "CLUSTER_ADDRESS": "198.51.100.2,fd00:1::2"}))
	if err != nil {
		t.Fatal(err)
	}
	if len(s.ClusterStore) != 2 || s.ClusterStore[1] != "https://etcd.example:2379" || s.ClusterNode != "host-1" || len(s.ClusterAddress) != 2 || s.ClusterAddress[1].String() != "fd00:1::2" {
		t.Fatalf("cluster settings: %+v", s)
	}
	_, err = FromEnv(env(map[string]string{"CLUSTER_STORE": "etcd:2379", "CLUSTER_NODE": "a/b", "CLUSTER_ADDRESS": "198.51.100.2,198.51.100.3,nonsense"}))
	for _, want := range []string{`CLUSTER_STORE="etcd:2379"`, `CLUSTER_NODE="a/b"`, "198.51.100.3 is a second address", `CLUSTER_ADDRESS="nonsense"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error does not name %s: %v", want, err)
		}
	}
}

// TestClusterStoreRefusals: CLUSTER_STORE values refused at start, each
// with what is wrong and what to do.
func TestClusterStoreRefusals(t *testing.T) {
	for _, ok := range []string{"http://198.51.100.1:2379", "http://198.51.100.1:2379,http://198.51.100.2:2379", "https://etcd.example:2379, https://198.51.100.2:2379"} {
		if _, err := FromEnv(env(map[string]string{"CLUSTER_STORE": ok, "CLUSTER_NODE": "host-1"})); err != nil {
			t.Errorf("CLUSTER_STORE=%q: %v", ok, err)
		}
	}
	for _, tc := range []struct {
		store string
		want  []string
	}{
		{"http://198.51.100.1:2379,https://198.51.100.2:2379", []string{"CLUSTER_STORE mixes", "http:// endpoints (http://198.51.100.1:2379)", "https:// endpoints (https://198.51.100.2:2379)", "one scheme", "docker plugin set"}},
		{"https://etcd-a:2379, http://etcd-b:2379, https://etcd-c:2379", []string{"(http://etcd-b:2379)", "(https://etcd-a:2379, https://etcd-c:2379)", "CLUSTER_TLS_DIR"}},
		{"etcd:2379", []string{`CLUSTER_STORE="etcd:2379"`, "http:// or https:// URLs"}},
		{"ftp://198.51.100.1:2379", []string{`CLUSTER_STORE="ftp://198.51.100.1:2379"`}},
		{"http://", []string{`CLUSTER_STORE="http://"`}},
	} {
		_, err := FromEnv(env(map[string]string{"CLUSTER_STORE": tc.store, "CLUSTER_NODE": "host-1"}))
		for _, want := range tc.want {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("CLUSTER_STORE=%q: error %v does not say %q", tc.store, err, want)
			}
		}
	}
}

// TestBGP: the BGP settings, read and checked; bad ones turn BGP off
// with the reason but are no error of the plugin's.
func TestBGP(t *testing.T) {
	s, err := FromEnv(env(nil))
	if err != nil || s.BGP != nil || s.BGPError != nil {
		t.Fatalf("no BGP settings: %+v, %v", s, err)
	}
	s, err = FromEnv(env(map[string]string{"BGP_ASN": "65001", "BGP_PEERS": "198.51.100.1:65000,[fd00::1]:65000", "BGP_HOLD_TIME": "9", "BGP_IMPORT_ROUTES": "true", "BGP_PASSWORD": "s3cret", "BGP_MAX_PREFIXES": "50"}))
	if err != nil || s.BGPError != nil {
		t.Fatal(err, s.BGPError)
	}
	if c := s.BGP; c.ASN != 65001 || len(c.Peers) != 2 || c.Peers[1].Address.String() != "fd00::1" || c.HoldTime.Seconds() != 9 || !c.Import || c.Password != "s3cret" || c.RouterID.IsValid() || c.MaxPrefixes != 50 {
		t.Fatalf("BGP settings: %+v", c)
	}
	for _, tc := range []struct {
		env  map[string]string
		want []string
	}{
		{map[string]string{"BGP_ASN": "65001", "BGP_PEERS": "198.51.100.1"}, []string{`BGP_PEERS="198.51.100.1"`, "want ADDRESS:ASN"}},
		{map[string]string{"BGP_ASN": "65001", "BGP_PEERS": "203.0.113.1:3356"}, []string{"public AS 3356", "AS 65001 (BGP_ASN) is private"}},
		{map[string]string{"BGP_ASN": "65001"}, []string{"BGP_PEERS", "no peer"}},
		{map[string]string{"BGP_ASN": "x", "BGP_PEERS": "198.51.100.1:65000", "BGP_ROUTER_ID": "fd00::1", "BGP_HOLD_TIME": "1", "BGP_IMPORT_ROUTES": "yes please", "BGP_MAX_PREFIXES": "0"}, []string{"BGP_ASN", "BGP_ROUTER_ID", "BGP_HOLD_TIME", "BGP_IMPORT_ROUTES", "BGP_MAX_PREFIXES"}},
		{map[string]string{"BGP_PEERS": "198.51.100.1:65000"}, []string{"BGP_PEERS is set but BGP_ASN is empty"}},
	} {
		s, err := FromEnv(env(tc.env))
		if err != nil {
			t.Errorf("%v: bad BGP settings stop the plugin: %v", tc.env, err)
			continue
		}
		if s.BGP != nil || s.BGPError == nil {
			t.Errorf("%v: BGP %+v, error %v; want BGP off with an error", tc.env, s.BGP, s.BGPError)
			continue
		}
		for _, want := range append(tc.want, "BGP is off", "docker plugin set dualstack") {
			if !strings.Contains(s.BGPError.Error(), want) {
				t.Errorf("%v: error does not say %q: %v", tc.env, want, s.BGPError)
			}
		}
	}
}

// TestMetricsAddr: METRICS_ADDR is off by default, takes an address and
// a port, and a bad value is refused by name with what to give.
func TestMetricsAddr(t *testing.T) {
	s, err := FromEnv(env(nil))
	if err != nil || s.MetricsAddr != "" {
		t.Fatalf("default METRICS_ADDR: %q, %v", s.MetricsAddr, err)
	}
	for _, good := range []string{"127.0.0.1:9474", "[::1]:9474", ":9474"} {
		s, err := FromEnv(env(map[string]string{"METRICS_ADDR": good}))
		if err != nil || s.MetricsAddr != good {
			t.Errorf("METRICS_ADDR=%s: %+v, %v", good, s, err)
		}
	}
	for _, bad := range []string{"9474", "127.0.0.1", "127.0.0.1:0", "127.0.0.1:70000", "localhost:9474", "[fe80::1%eth0]:9474"} {
		_, err := FromEnv(env(map[string]string{"METRICS_ADDR": bad}))
		if err == nil || !strings.Contains(err.Error(), `METRICS_ADDR="`+bad+`"`) || !strings.Contains(err.Error(), "127.0.0.1:9474") {
			t.Errorf("METRICS_ADDR=%s: want it refused by name with an example, got %v", bad, err)
		}
	}
}
