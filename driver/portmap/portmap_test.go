package portmap

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/dualstack-net/dualstack/internal/netns"
	"github.com/dualstack-net/dualstack/internal/netnstest"
)

// decode turns JSON as Docker sends it into endpoint options.
func decode(t *testing.T, s string) map[string]interface{} {
	t.Helper()
	var m map[string]interface{}
	if err := json.Unmarshal([]byte(`{"`+Option+`":`+s+`}`), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMain(m *testing.M) { os.Exit(netnstest.Guard(m)) }

func TestParse(t *testing.T) {
	good := []struct {
		json string
		want string
	}{
		// docker run -p 8080:80 -p 127.0.0.1:8081:80 -p [::]:8082:80/udp -p 8000-8010:80 -p 80/sctp
		{`[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080},
		   {"Proto":6,"Port":80,"HostIP":"127.0.0.1","HostPort":8081},
		   {"Proto":17,"Port":80,"HostIP":"::","HostPort":8082},
		   {"Proto":6,"Port":80,"HostPort":8000,"HostPortEnd":8010},
		   {"Proto":132,"Port":80}]`,
			"8080:80/tcp 127.0.0.1:8081:80/tcp [::]:8082:80/udp 8000-8010:80/tcp 0:80/sctp"},
		{`null`, ""},
		{`[]`, ""},
	}
	for _, c := range good {
		bs, err := Parse(decode(t, c.json))
		if err != nil {
			t.Errorf("%s: %v", c.json, err)
			continue
		}
		var got []string
		for _, b := range bs {
			got = append(got, b.String())
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("%s:\ngot  %s\nwant %s", c.json, strings.Join(got, " "), c.want)
		}
	}
	if bs, err := Parse(nil); err != nil || bs != nil {
		t.Errorf("no option: %v, %v", bs, err)
	}
	bad := map[string]string{
		`[{"Proto":1,"Port":80}]`:                                "IP protocol 1",
		`[{"Proto":6,"Port":0}]`:                                 "between 1 and 65535",
		`[{"Proto":6,"Port":80,"HostPort":70000}]`:               "between 1 and 65535",
		`[{"Proto":6,"Port":80,"HostIP":"localhost"}]`:           `bad host IP "localhost"`,
		`[{"Proto":6,"Port":80,"HostPort":90,"HostPortEnd":85}]`: "ends before it starts",
		`{"Proto":6}`: "want a list of port bindings",
	}
	for in, want := range bad {
		if _, err := Parse(decode(t, in)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one naming %q", in, err, want)
		}
	}
}

func TestCandidates(t *testing.T) {
	if f, l := Candidates(Binding{HostPort: 8080}); f != 8080 || l != 8080 {
		t.Errorf("single port: %d-%d", f, l)
	}
	if f, l := Candidates(Binding{HostPort: 8000, HostPortEnd: 8010}); f != 8000 || l != 8010 {
		t.Errorf("range: %d-%d", f, l)
	}
	if f, l := Candidates(Binding{}); f < 1024 || l < f {
		t.Errorf("ephemeral: %d-%d", f, l)
	}
}

// TestReserve holds ports in a throwaway namespace: a held port cannot be
// taken again in its family, the other family is independent, and Close
// frees it.
func TestReserve(t *testing.T) {
	ns := netnstest.New(t)
	ns.IP(t, "link", "set", "lo", "up")
	if err := netns.Do(ns.Path, func() error {
		v4, err := Reserve("tcp", false, netip.Addr{}, 8080)
		if err != nil {
			return err
		}
		if _, err := Reserve("tcp", false, netip.MustParseAddr("127.0.0.1"), 8080); !errors.Is(err, ErrInUse) {
			t.Errorf("127.0.0.1:8080 under a held 0.0.0.0:8080: %v, want ErrInUse", err)
		}
		v6, err := Reserve("tcp", true, netip.IPv6Unspecified(), 8080)
		if err != nil {
			t.Errorf("[::]:8080 with only IPv4 held: %v", err)
		}
		udp, err := Reserve("udp", false, netip.Addr{}, 8080)
		if err != nil {
			t.Errorf("udp 8080 with tcp 8080 held: %v", err)
		}
		for _, r := range []*Reservation{v4, v6, udp} {
			if err := r.Close(); err != nil {
				t.Error(err)
			}
		}
		again, err := Reserve("tcp", false, netip.Addr{}, 8080)
		if err != nil {
			t.Errorf("8080 after Close: %v", err)
		}
		return again.Close()
	}); err != nil {
		t.Fatal(err)
	}
}
