// Package sandboxkey finds, from inside the plugin, the container network
// namespaces Docker names by their SandboxKey, whatever the host's mount
// propagation.
//
// A SandboxKey is a path in dockerd's mount namespace (by default
// /var/run/docker/netns/<id>), a file on which dockerd bind-mounts the
// container's network namespace. A managed plugin runs in a mount namespace
// of its own. Through a bind mount of the host's /run it sees the mounts
// dockerd makes after the plugin started only where the host's /run is a
// shared mount, as systemd makes it; hosts without systemd (Alpine and
// OpenRC, Docker-in-Docker, WSL, many minimal VMs) keep their mounts
// private, and the plugin would see an empty file forever.
//
// So the plugin looks the key up inside dockerd's own mount namespace,
// through /proc/<pid>/root (Proc), which needs no mount propagation at all.
// That needs the host's pid namespace (pidhost in config.json), to see
// dockerd, and CAP_SYS_PTRACE, to follow another process's root. The key of
// a Join is looked up in the mount namespace of the process that sent the
// Join (the plugin's socket tells its pid: SO_PEERCRED), dockerd; a key
// recorded earlier (a join resumed at start) in that of the plugin's
// parent, the containerd shim, which lives in dockerd's mount namespace
// (containerd runs beside dockerd, or as its child). Where Proc is not
// possible, Mount maps the key below the plugin's bind mount of the host's
// /run, which works on shared hosts only; Host takes the key as it is, for a
// plugin that runs in the host's mount namespace.
//
// New decides once, at start, and says which mechanism it took and why, or
// why none works and what to do.
package sandboxkey

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/dualstack-net/dualstack/validate"
)

// Mechanism is how the plugin reaches a container's namespace file.
type Mechanism string

const (
	// Auto takes Proc where it works, and Mount otherwise.
	Auto Mechanism = "auto"
	// Proc looks keys up in dockerd's mount namespace, /proc/<pid>/root.
	Proc Mechanism = "proc"
	// Mount maps keys below the plugin's bind mount of the host's /run.
	Mount Mechanism = "mount"
	// Host takes keys as they are: the plugin shares the host's mounts.
	Host Mechanism = "host"
)

// ParseMechanism reads the NETNS_ACCESS setting: auto, proc or mount.
func ParseMechanism(s string) (Mechanism, error) {
	switch m := Mechanism(s); m {
	case Auto, Proc, Mount:
		return m, nil
	}
	return "", fmt.Errorf("%q: want auto (proc where it works, else mount), proc or mount", s)
}

// Remedy says what makes namespaces reachable when no mechanism can.
const Remedy = "install the plugin with the privileges its config.json asks for " +
	"(host pid namespace, CAP_SYS_PTRACE; docker plugin install --grant-all-permissions), " +
	"or make the host's mounts shared (mount --make-rshared /, as systemd does) " +
	"and restart the plugin (docker plugin disable, then enable)"

// Config says where the plugin stands.
type Config struct {
	// Want is the NETNS_ACCESS setting; "" is Auto.
	Want Mechanism
	// HostRun is the host directory (normally /run) the plugin sees at
	// RunMount. RunMount is "" when the plugin does not run in a plugin
	// rootfs: then keys are host paths (Host).
	HostRun, RunMount string
	// Parent is the plugin's parent process (os.Getppid), the containerd
	// shim; 0 when it is outside the plugin's pid namespace.
	Parent int
	// Proc is where procfs is mounted; "" is /proc.
	Proc string
}

// Resolver maps SandboxKeys to paths the plugin can open. It is safe for
// concurrent use.
type Resolver struct {
	cfg     Config
	mech    Mechanism
	detail  string // why mech, for the start line
	problem error  // non-nil: namespaces created from now on cannot be reached
	watches *watchSet
}

// New probes the mechanisms and returns the resolver.
func New(cfg Config) *Resolver {
	if cfg.Want == "" {
		cfg.Want = Auto
	}
	if cfg.Proc == "" {
		cfg.Proc = "/proc"
	}
	r := &Resolver{cfg: cfg, watches: newWatchSet()}
	r.mech, r.detail, r.problem = choose(cfg.Want, r.probe())
	return r
}

// facts are what the probe found out.
type facts struct {
	// inRootfs: the plugin runs in a plugin rootfs (RunMount is set).
	inRootfs bool
	// proc is nil when /proc/<parent>/root can be followed, else why not.
	proc error
	// propagation is the run mount's propagation as in mountinfo's
	// optional fields ("master:4", "shared:2", "" for private), or the
	// error reading it.
	propagation    string
	propagationErr error
	runMount       string
}

func (r *Resolver) probe() facts {
	f := facts{inRootfs: r.cfg.RunMount != "", runMount: r.cfg.RunMount}
	if !f.inRootfs {
		return f
	}
	f.proc = r.followable(r.cfg.Parent)
	f.propagation, f.propagationErr = propagation(filepath.Join(r.cfg.Proc, "self/mountinfo"), r.cfg.RunMount)
	return f
}

// followable checks that the plugin can look at pid's mount namespace.
func (r *Resolver) followable(pid int) error {
	if pid <= 0 {
		return errors.New("the plugin does not share the host's pid namespace (pidhost in config.json), so it cannot see dockerd")
	}
	root := r.root(pid)
	if _, err := os.Stat(root + "/"); err != nil {
		if errors.Is(err, os.ErrPermission) {
			return fmt.Errorf("cannot follow %s: %w (the plugin needs CAP_SYS_PTRACE, and no security module may deny it reading dockerd's process)", root, err)
		}
		return fmt.Errorf("cannot follow %s: %w", root, err)
	}
	return nil
}

func (r *Resolver) root(pid int) string {
	return filepath.Join(r.cfg.Proc, fmt.Sprint(pid), "root")
}

// choose picks the mechanism from what the probe found: Proc where it
// works, unless the user asked for Mount; Mount receives new namespaces only
// where the host's /run propagates mounts into the plugin.
func choose(want Mechanism, f facts) (Mechanism, string, error) {
	if !f.inRootfs {
		return Host, "the plugin runs in the host's mount namespace: keys are its own paths", nil
	}
	if want != Mount {
		if f.proc == nil {
			return Proc, "through dockerd's mount namespace (/proc/<pid>/root), whatever the host's mount propagation", nil
		}
		if want == Proc {
			return Proc, "", fmt.Errorf("NETNS_ACCESS=proc: %w; %s", f.proc, Remedy)
		}
	}
	why := "NETNS_ACCESS=mount"
	if want != Mount {
		why = "proc is not possible: " + f.proc.Error()
	}
	switch {
	case f.propagationErr != nil:
		return Mount, "", fmt.Errorf("%s, and the run mount's propagation cannot be read: %w; %s", why, f.propagationErr, Remedy)
	case f.propagation == "":
		return Mount, "", fmt.Errorf("%s, and the run mount %s is private: the host's /run is not a shared mount, "+
			"so the network namespaces dockerd creates from now on never show up in the plugin; %s", why, f.runMount, Remedy)
	}
	return Mount, fmt.Sprintf("through the run mount %s, which receives the host's new mounts (%s); %s", f.runMount, f.propagation, why), nil
}

// propagation reads, from a mountinfo file, the propagation fields of the
// mount at dir: "shared:N", "master:N", both, or "" for a private mount.
func propagation(mountinfo, dir string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fields, found, err := Propagation(f, dir)
	if err != nil {
		return "", err
	}
	if !found {
		return "", fmt.Errorf("%s is not a mount point", dir)
	}
	return fields, nil
}

// Propagation reads a mountinfo text and returns the propagation fields
// of the mount at dir ("shared:N", "master:N", both, or "" for a private
// mount) and whether dir is a mount point at all. The last mount at dir
// is the one on top.
func Propagation(mountinfo io.Reader, dir string) (fields string, found bool, err error) {
	s := bufio.NewScanner(mountinfo)
	s.Buffer(make([]byte, 64<<10), 1<<20)
	for s.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - TYPE ...
		parts := strings.Fields(s.Text())
		if len(parts) < 7 || unescape(parts[4]) != dir {
			continue
		}
		var opt []string
		for _, p := range parts[6:] {
			if p == "-" {
				break
			}
			if strings.HasPrefix(p, "shared:") || strings.HasPrefix(p, "master:") {
				opt = append(opt, p)
			}
		}
		found, fields = true, strings.Join(opt, " ")
	}
	return fields, found, s.Err()
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if c, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(c))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// Mechanism is the mechanism New chose.
func (r *Resolver) Mechanism() Mechanism { return r.mech }

// Describe says, for the start line, how namespaces are reached.
func (r *Resolver) Describe() string { return r.detail }

// Problem is why namespaces created from now on cannot be reached, with
// the remedy, or nil.
func (r *Resolver) Problem() error { return r.problem }

// Namespace is a container's network namespace as the plugin reaches it.
type Namespace struct {
	// Key is Docker's SandboxKey, a path in dockerd's mount namespace.
	Key string
	// Path is where the plugin opens it.
	Path string
	// mounts is the mountinfo file whose changes can make Path appear.
	mounts string
	how    Mechanism
	r      *Resolver
}

// Resolve maps key, a path in the mount namespace of the process pid
// (dockerd, which sent the request that holds the key; 0 when not known).
// The namespace need not exist yet (Engine 20.10 mounts it only when the
// container starts); an error means it never can be reached, and says why
// and what to do.
func (r *Resolver) Resolve(key string, pid int) (Namespace, error) {
	if err := validate.SandboxKey(key); err != nil {
		return Namespace{}, err
	}
	if r.problem != nil {
		return Namespace{}, fmt.Errorf("cannot reach the container's network namespace %s: %w", key, r.problem)
	}
	ns := Namespace{Key: key, how: r.mech, r: r, mounts: filepath.Join(r.cfg.Proc, "self/mountinfo")}
	switch r.mech {
	case Host:
		ns.Path = filepath.Clean(key)
	case Mount:
		host := filepath.Clean(key)
		if rest, ok := strings.CutPrefix(host, "/var/run/"); ok {
			host = "/run/" + rest
		}
		hostRun := filepath.Clean(r.cfg.HostRun)
		rest, ok := strings.CutPrefix(host, hostRun+"/")
		if !ok {
			return Namespace{}, fmt.Errorf("the container's network namespace %s is outside %s, the host directory the plugin mounts: "+
				"mount dockerd's exec-root into the plugin (docker plugin set dualstack:latest run.source=DIR HOST_RUN=DIR), "+
				"or grant the plugin its config's privileges so that it finds namespaces in dockerd's mount namespace", key, hostRun)
		}
		ns.Path = filepath.Join(r.cfg.RunMount, rest)
	case Proc:
		if pid <= 0 {
			pid = r.cfg.Parent
		}
		if err := r.followable(pid); err != nil {
			return Namespace{}, fmt.Errorf("cannot reach the container's network namespace %s in dockerd's mount namespace: %w", key, err)
		}
		root := r.root(pid)
		// Symlinks on the way (/var/run is one) resolve inside dockerd's
		// root, not the plugin's.
		p, err := securejoin.SecureJoin(root, key)
		if err != nil {
			return Namespace{}, fmt.Errorf("look up the container's network namespace %s below %s: %w", key, root, err)
		}
		ns.Path = p
		ns.mounts = filepath.Join(r.cfg.Proc, fmt.Sprint(pid), "mountinfo")
	}
	return ns, nil
}

// Hint says, for an error line, why a namespace that is not there may not
// have appeared, and what to do.
func (ns Namespace) Hint() string {
	switch ns.how {
	case Mount:
		return fmt.Sprintf("the plugin looks for it at %s, through its bind mount of the host's %s, "+
			"which shows new namespaces only if the host's /run is a shared mount; if the container runs, %s",
			ns.Path, ns.r.cfg.HostRun, Remedy)
	case Proc:
		return fmt.Sprintf("it is not mounted in dockerd's mount namespace (the plugin looks at %s): "+
			"the container has not started yet, or its start failed", ns.Path)
	}
	return fmt.Sprintf("nothing is mounted at %s: the container has not started yet, or its start failed", ns.Path)
}
