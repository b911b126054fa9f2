package portmap

import (
	"encoding/json"
	"testing"
)

// FuzzPortmap feeds Parse arbitrary JSON as the portmap option: it must
// never panic, and what it accepts must be publishable.
func FuzzPortmap(f *testing.F) {
	for _, s := range []string{
		`[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]`,
		`[{"Proto":17,"Port":53,"HostIP":"::","HostPort":0}]`,
		`[{"Proto":132,"Port":80,"HostIP":"127.0.0.1","HostPort":8000,"HostPortEnd":8010}]`,
		`[{"Proto":6,"Port":80,"HostIP":"::ffff:192.0.2.1"}]`,
		`null`, `{}`, `[1]`, `[{"Proto":"tcp"}]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var v interface{}
		if json.Unmarshal(data, &v) != nil {
			return
		}
		bs, err := Parse(map[string]interface{}{Option: v})
		if err != nil {
			return
		}
		for _, b := range bs {
			if b.Proto != "tcp" && b.Proto != "udp" && b.Proto != "sctp" {
				t.Fatalf("accepted protocol %q", b.Proto)
			}
			if b.Port == 0 || (b.HostPortEnd != 0 && b.HostPortEnd <= b.HostPort) {
				t.Fatalf("accepted %+v", b)
			}
			if b.HostIP.IsValid() && b.HostIP.Is4In6() {
				t.Fatalf("host IP %s not unmapped", b.HostIP)
			}
			if first, last := Candidates(b); first == 0 || last < first {
				t.Fatalf("candidates %d-%d for %+v", first, last, b)
			}
		}
	})
}
