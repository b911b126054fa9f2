package sandboxkey

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseMechanism(t *testing.T) {
	for _, s := range []string{"auto", "proc", "mount"} {
		if m, err := ParseMechanism(s); err != nil || string(m) != s {
			t.Errorf("ParseMechanism(%q) = %q, %v", s, m, err)
		}
	}
	for _, s := range []string{"", "host", "PROC", "bind"} {
		if _, err := ParseMechanism(s); err == nil {
			t.Errorf("ParseMechanism(%q) accepted", s)
		}
	}
}

// TestChoose: which mechanism the plugin takes, on which host, and what it
// says when none can reach namespaces created from now on.
func TestChoose(t *testing.T) {
	noPID := errors.New("the plugin does not share the host's pid namespace")
	cases := []struct {
		name  string
		want  Mechanism
		f     facts
		mech  Mechanism
		fails []string // words the problem must hold; nil: no problem
		says  []string // words the description must hold
	}{
		{"legacy plugin on the host", Auto, facts{}, Host, nil, []string{"host's mount namespace"}},
		{"managed, private host", Auto, facts{inRootfs: true}, Proc, nil, []string{"dockerd's mount namespace"}},
		{"managed, shared host", Auto, facts{inRootfs: true, propagation: "master:7"}, Proc, nil, []string{"whatever the host's mount propagation"}},
		{"no pidhost, shared host", Auto, facts{inRootfs: true, proc: noPID, propagation: "master:7", runMount: "/host/run"}, Mount, nil,
			[]string{"/host/run", "master:7", "pid namespace"}},
		{"no pidhost, private host", Auto, facts{inRootfs: true, proc: noPID, runMount: "/host/run"}, Mount,
			[]string{"pid namespace", "/host/run is private", "never show up", "CAP_SYS_PTRACE", "mount --make-rshared /"}, nil},
		{"mount asked for, private host", Mount, facts{inRootfs: true, runMount: "/host/run"}, Mount,
			[]string{"NETNS_ACCESS=mount", "is private", "mount --make-rshared /"}, nil},
		{"mount asked for, shared host", Mount, facts{inRootfs: true, propagation: "shared:3 master:1", runMount: "/host/run"}, Mount, nil,
			[]string{"NETNS_ACCESS=mount", "shared:3 master:1"}},
		{"proc asked for, not possible", Proc, facts{inRootfs: true, proc: noPID, propagation: "master:7"}, Proc,
			[]string{"NETNS_ACCESS=proc", "pid namespace", "--grant-all-permissions"}, nil},
		{"mountinfo unreadable", Auto, facts{inRootfs: true, proc: noPID, propagationErr: errors.New("/host/run is not a mount point")}, Mount,
			[]string{"cannot be read", "not a mount point"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mech, detail, problem := choose(c.want, c.f)
			if mech != c.mech {
				t.Errorf("mechanism %s, want %s", mech, c.mech)
			}
			if (problem != nil) != (c.fails != nil) {
				t.Fatalf("problem %v, want one: %v", problem, c.fails != nil)
			}
			for _, w := range c.fails {
				if !strings.Contains(problem.Error(), w) {
					t.Errorf("problem %q lacks %q", problem, w)
				}
			}
			for _, w := range c.says {
				if !strings.Contains(detail, w) {
					t.Errorf("description %q lacks %q", detail, w)
				}
			}
		})
	}
}

func TestPropagation(t *testing.T) {
	info := filepath.Join(t.TempDir(), "mountinfo")
	if err := os.WriteFile(info, []byte(`27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 0:22 / /host/run rw,nosuid master:7 - tmpfs tmpfs rw
41 27 0:23 / /host/other rw shared:3 master:1 - tmpfs tmpfs rw
42 27 0:24 / /host/priv rw - tmpfs tmpfs rw
43 27 0:24 / /with\040space rw shared:9 - tmpfs tmpfs rw
44 42 0:25 / /host/priv rw master:2 - tmpfs tmpfs rw
`), 0o644); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]string{
		"/host/run": "master:7", "/host/other": "shared:3 master:1", "/with space": "shared:9",
		"/host/priv": "master:2", // the mount on top counts
		"/":          "",
	} {
		if got, err := propagation(info, dir); err != nil || got != want {
			t.Errorf("propagation(%s) = %q, %v; want %q", dir, got, err, want)
		}
	}
	if _, err := propagation(info, "/nowhere"); err == nil || !strings.Contains(err.Error(), "not a mount point") {
		t.Errorf("propagation of a directory that is no mount point: %v", err)
	}
}

// TestResolveMount: keys below HOST_RUN map below the run mount (/var/run
// is /run); keys elsewhere are refused with what to do.
func TestResolveMount(t *testing.T) {
	r := &Resolver{cfg: Config{HostRun: "/run", RunMount: "/host/run", Proc: "/proc"}, mech: Mount, watches: newWatchSet()}
	for key, want := range map[string]string{
		"/var/run/docker/netns/abc": "/host/run/docker/netns/abc",
		"/run/docker/netns/abc":     "/host/run/docker/netns/abc",
	} {
		ns, err := r.Resolve(key, 0)
		if err != nil || ns.Path != want || ns.Key != key {
			t.Errorf("Resolve(%s) = %+v, %v; want path %s", key, ns, err, want)
		}
	}
	_, err := r.Resolve("/srv/docker/netns/abc", 0)
	if err == nil || !strings.Contains(err.Error(), "run.source=DIR HOST_RUN=DIR") {
		t.Errorf("key outside HOST_RUN: %v", err)
	}
	for _, key := range []string{"", "docker/netns/abc", "/run/docker/netns/../../etc/x"} {
		if _, err := r.Resolve(key, 0); err == nil {
			t.Errorf("Resolve(%q) accepted", key)
		}
	}
}

// TestResolveRefusesWhenUnreachable: with a known problem every key is
// refused at once, with the problem's cause and remedy.
func TestResolveRefusesWhenUnreachable(t *testing.T) {
	_, _, problem := choose(Mount, facts{inRootfs: true, runMount: "/host/run"})
	r := &Resolver{cfg: Config{HostRun: "/run", RunMount: "/host/run"}, mech: Mount, problem: problem, watches: newWatchSet()}
	_, err := r.Resolve("/run/docker/netns/abc", 0)
	if err == nil || !strings.Contains(err.Error(), "/run/docker/netns/abc") || !strings.Contains(err.Error(), Remedy) {
		t.Fatalf("Resolve with a problem: %v", err)
	}
}

func TestResolveProcNeedsAnEngine(t *testing.T) {
	r := &Resolver{cfg: Config{Proc: "/proc"}, mech: Proc, watches: newWatchSet()}
	if _, err := r.Resolve("/run/docker/netns/abc", 0); err == nil || !strings.Contains(err.Error(), "pid namespace") {
		t.Fatalf("Proc without a parent or an engine pid: %v", err)
	}
	if _, err := r.Resolve("/run/docker/netns/abc", 1<<30); err == nil || !strings.Contains(err.Error(), "cannot follow") {
		t.Fatalf("Proc with a pid that does not exist: %v", err)
	}
}
