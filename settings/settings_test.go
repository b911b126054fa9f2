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
