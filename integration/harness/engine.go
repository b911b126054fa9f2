//go:build integration

package harness

import (
	"bytes"
	"context"
	"debug/buildinfo"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Engine is the dockerd the suite runs against: the one at DOCKER_HOST when
// it answers, or a private one started in its own network namespace, with
// its own data-root, exec-root and socket, so that nothing the tests create
// reaches the host's network.
//
// DUALSTACK_ENGINE chooses the private engine:
//   - docker.io (the default): Debian's dockerd (Engine 20.10), which starts
//     its own containerd;
//   - moby: the current Moby dockerd and its runc, built into a cache by
//     engines/build-moby.sh, with Debian's containerd started
//     beside it in the same network namespace (restart restarts dockerd
//     only, as on a host where containerd is a service of its own).
type Engine struct {
	External bool
	Kind     string // DUALSTACK_ENGINE: docker.io or moby
	// Root is DUALSTACK_ROOT, how mounts propagate in a private engine's
	// mount namespace (see in-netns.sh): private (the default, as on hosts
	// without systemd) or shared (as on systemd hosts).
	Root string
	// DockerFirewall is the engine's --firewall-backend (moby,
	// DUALSTACK_DOCKER_FIREWALL): "" for its default, iptables.
	DockerFirewall string
	Netns          string // network namespace of a private engine
	Dir            string // data-root, socket, log and plugin state live here
	// execRoot is dockerd's exec-root, below /run as on a host.
	execRoot string
	Host     string // DOCKER_HOST value
	args     []string
	env      []string // dockerd's and containerd's environment
	cmd      *exec.Cmd
	logFile  *os.File
	ctrd     *containerd // moby: the containerd dockerd uses
}

// containerd is a containerd the harness runs for dockerd (moby engine).
type containerd struct {
	args    []string
	sock    string
	cmd     *exec.Cmd
	exited  chan error
	logFile *os.File
}

const (
	EngineDockerIO = "docker.io"
	engineMoby     = "moby"
	rootPrivate    = "private"
	RootShared     = "shared"
	// mobyVersion is the Moby release build-moby.sh builds (MOBY_VERSION
	// overrides both).
	mobyVersion = "v2.0.0-beta.24"
)

// MobyBinDir is where build-moby.sh puts dockerd and runc.
func MobyBinDir() string {
	cache := os.Getenv("DUALSTACK_ENGINE_CACHE")
	if cache == "" {
		home, _ := os.UserHomeDir()
		cache = filepath.Join(home, ".cache", "dualstack-engines")
	}
	v := os.Getenv("MOBY_VERSION")
	if v == "" {
		v = mobyVersion
	}
	return filepath.Join(cache, "moby-"+v, "bin")
}

const netnsPrefix = "dsit-"

// runPrefix starts the exec-root of every private engine: /run/dsit/<pid>.
const runPrefix = "/run/dsit"

// startEngine returns the engine to test against.
func startEngine() (*Engine, error) {
	if h := os.Getenv("DOCKER_HOST"); h != "" {
		if err := exec.Command("docker", "version").Run(); err == nil {
			dir, err := os.MkdirTemp("", "dualstack-it-")
			if err != nil {
				return nil, err
			}
			return &Engine{External: true, Host: h, Dir: dir}, nil
		}
		return nil, fmt.Errorf("DOCKER_HOST=%s does not answer `docker version`: unset it to use a private engine", h)
	}
	kind := os.Getenv("DUALSTACK_ENGINE")
	if kind == "" {
		kind = EngineDockerIO
	}
	if kind != EngineDockerIO && kind != engineMoby {
		return nil, fmt.Errorf("DUALSTACK_ENGINE=%s: want %s or %s", kind, EngineDockerIO, engineMoby)
	}
	root := os.Getenv("DUALSTACK_ROOT")
	if root == "" {
		root = rootPrivate
	}
	if root != rootPrivate && root != RootShared {
		return nil, fmt.Errorf("DUALSTACK_ROOT=%s: want %s or %s", root, rootPrivate, RootShared)
	}
	cleanStale()
	return newEngine(kind, root, strconv.Itoa(os.Getpid()))
}

// newEngine starts a private engine of kind, with its mount namespace
// made as root says, in network namespace dsit-ID (ID starts with the test
// process's pid, see cleanStale).
func newEngine(kind, root, id string) (*Engine, error) {
	dockerd := "dockerd"
	// in-netns.sh makes the engine's mount namespace as root says.
	env := append(os.Environ(), "DUALSTACK_ROOT="+root)
	if kind == engineMoby {
		bin := MobyBinDir()
		for _, b := range []string{"dockerd", "runc"} {
			if _, err := os.Stat(filepath.Join(bin, b)); err != nil {
				return nil, fmt.Errorf("DUALSTACK_ENGINE=moby: %v: run engines/build-moby.sh (or make integration-moby)", err)
			}
		}
		if _, err := exec.LookPath("containerd"); err != nil {
			return nil, fmt.Errorf("DUALSTACK_ENGINE=moby needs containerd: apt-get install containerd")
		}
		dockerd = filepath.Join(bin, "dockerd")
		// The cache first, so that containerd's shims run its runc.
		env = append(env, "PATH="+bin+":"+os.Getenv("PATH"))
	}
	dir, err := os.MkdirTemp("", "dualstack-it-")
	if err != nil {
		return nil, err
	}
	e := &Engine{
		Kind:     kind,
		Root:     root,
		Netns:    netnsPrefix + id,
		Dir:      dir,
		execRoot: filepath.Join(runPrefix, id),
		Host:     "unix://" + filepath.Join(dir, "docker.sock"),
		env:      env,
	}
	inNetns := filepath.Join(Repo, "engines/in-netns.sh")
	e.args = []string{
		inNetns, e.Netns,
		dockerd,
		"--data-root", filepath.Join(dir, "data"),
		"--exec-root", e.execRoot,
		"--pidfile", filepath.Join(dir, "docker.pid"),
		"-H", e.Host,
		"--live-restore",
	}
	if kind == engineMoby {
		if e.ctrd, err = newContainerd(inNetns, e.Netns, dir, env); err != nil {
			return e, err
		}
		// runc from the cache is built without seccomp.
		e.args = append(e.args, "--containerd", e.ctrd.sock, "--seccomp-profile=unconfined")
		// DUALSTACK_DOCKER_FIREWALL=nftables: Docker's own rules in
		// nftables instead of iptables, next to dualstack's.
		if fb := os.Getenv("DUALSTACK_DOCKER_FIREWALL"); fb != "" {
			e.args = append(e.args, "--firewall-backend="+fb)
			e.DockerFirewall = fb
		}
	}
	if e.logFile, err = os.Create(filepath.Join(dir, "dockerd.log")); err != nil {
		return e, err
	}
	if e.ctrd != nil {
		if err := e.ctrd.start(); err != nil {
			return e, err
		}
	}
	if e.DockerFirewall == "nftables" {
		// Docker's nftables backend leaves forwarding to the host's
		// administrator, and refuses to start without it.
		if out, err := exec.Command("ip", "netns", "exec", e.Netns, "sysctl", "-qw", "net.ipv4.ip_forward=1").CombinedOutput(); err != nil {
			return e, fmt.Errorf("enable IPv4 forwarding for Docker's nftables backend: %v: %s", err, out)
		}
	}
	if err := e.start(); err != nil {
		return e, err
	}
	e.printVersions()
	return e, nil
}

// printVersions says which dockerd, containerd and runc a moby engine runs
// (main prints the client's and the engine's versions for both kinds).
func (e *Engine) printVersions() {
	if e.Kind != engineMoby {
		return
	}
	// `go install` leaves dockerd's own version unset ("library-import"):
	// its module version says which release it is.
	dv := "dockerd (version unknown)"
	if bi, err := buildinfo.ReadFile(e.args[2]); err == nil {
		dv = fmt.Sprintf("dockerd %s %s (%s)", bi.Main.Path, bi.Main.Version, bi.GoVersion)
	}
	cv, _ := exec.Command("containerd", "--version").Output()
	rv, _ := exec.Command(filepath.Join(MobyBinDir(), "runc"), "--version").Output()
	fmt.Printf("engine moby: %s; %s; %s\n", dv, strings.TrimSpace(string(cv)),
		strings.TrimSpace(strings.SplitN(string(rv), "\n", 2)[0])+" (no seccomp)")
}

// newContainerd prepares a containerd with its root, state, socket and
// config in dir/containerd, to run in netns.
func newContainerd(inNetns, netns, dir string, env []string) (*containerd, error) {
	cdir := filepath.Join(dir, "containerd")
	if err := os.MkdirAll(cdir, 0o711); err != nil {
		return nil, err
	}
	c := &containerd{sock: filepath.Join(cdir, "containerd.sock")}
	// A config of its own: not /etc/containerd/config.toml, no CRI, no
	// debug or metrics listeners.
	config := filepath.Join(cdir, "config.toml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q
`, filepath.Join(cdir, "root"), filepath.Join(cdir, "state"), c.sock, c.sock+".ttrpc")), 0o644); err != nil {
		return nil, err
	}
	c.args = []string{inNetns, netns, "containerd",
		"--config", config,
		"--root", filepath.Join(cdir, "root"),
		"--state", filepath.Join(cdir, "state"),
		"--address", c.sock,
	}
	var err error
	if c.logFile, err = os.Create(filepath.Join(dir, "containerd.log")); err != nil {
		return nil, err
	}
	c.cmd = exec.Command(c.args[0], c.args[1:]...)
	c.cmd.Env = env
	return c, nil
}

// start starts containerd and waits until it answers on its socket.
func (c *containerd) start() error {
	c.cmd.Stdout, c.cmd.Stderr = c.logFile, c.logFile
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		return fmt.Errorf("start containerd: %w", err)
	}
	c.exited = make(chan error, 1)
	go func() { c.exited <- c.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-c.exited:
			c.exited <- err
			return fmt.Errorf("containerd exited during start (%v); its log:\n%s", err, tail(c.logFile.Name(), 40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, "ctr", "--address", c.sock, "version").Run()
		cancel()
		if err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("containerd did not answer within 60s; its log:\n%s", tail(c.logFile.Name(), 40))
}

// stop stops containerd with SIGTERM (SIGKILL after 30s). The shims, and
// the containers they hold, keep running: close kills them with the netns.
func (c *containerd) stop() {
	if c.cmd == nil || c.cmd.Process == nil || c.exited == nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		c.exited <- err
	case <-time.After(30 * time.Second):
		_ = c.cmd.Process.Kill()
	}
	c.logFile.Close()
}

func (e *Engine) start() error {
	if e.External {
		return nil
	}
	e.cmd = exec.Command(e.args[0], e.args[1:]...)
	e.cmd.Env = e.env
	e.cmd.Stdout, e.cmd.Stderr = e.logFile, e.logFile
	e.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := e.cmd.Start(); err != nil {
		return fmt.Errorf("start dockerd: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- e.cmd.Wait() }()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			return fmt.Errorf("dockerd exited during start (%v); its log:\n%s", err, e.logTail(40))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		err := exec.CommandContext(ctx, "docker", "-H", e.Host, "info").Run()
		cancel()
		if err == nil {
			go func() { <-exited }()
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("dockerd did not answer within 60s; its log:\n%s", e.logTail(40))
}

// stop stops dockerd with SIGTERM (SIGKILL after 60s) and waits for it.
func (e *Engine) stop() error {
	if e.External || e.cmd == nil || e.cmd.Process == nil {
		return nil
	}
	pid := e.PID()
	if pid == 0 {
		return nil
	}
	_ = syscall.Kill(pid, syscall.SIGTERM)
	for i := 0; i < 600 && ProcessAlive(pid); i++ {
		time.Sleep(100 * time.Millisecond)
	}
	if ProcessAlive(pid) {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		return fmt.Errorf("dockerd (pid %d) ignored SIGTERM for 60s and was killed", pid)
	}
	return nil
}

// Restart stops dockerd and starts it again, with the same arguments.
func (e *Engine) Restart() error {
	if e.External {
		return fmt.Errorf("cannot restart an external engine")
	}
	if err := e.stop(); err != nil {
		return err
	}
	return e.start()
}

// RestartWith restarts dockerd with or without --live-restore (without it,
// dockerd stops the containers when it stops, and starts those with a
// restart policy when it starts); the setting stays for later restarts.
func (e *Engine) RestartWith(liveRestore bool) error {
	var args []string
	for _, a := range e.args {
		if a != "--live-restore" {
			args = append(args, a)
		}
	}
	if liveRestore {
		args = append(args, "--live-restore")
	}
	e.args = args
	return e.Restart()
}

// DataRoot is a private engine's --data-root, where installed plugins
// are (an external engine's is the user's to know).
func (e *Engine) DataRoot() string { return filepath.Join(e.Dir, "data") }

// PID is dockerd's process ID, from its pidfile.
func (e *Engine) PID() int {
	b, err := os.ReadFile(filepath.Join(e.Dir, "docker.pid"))
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	return pid
}

// close stops a private engine and removes everything it left: its
// processes, network namespace and directory.
func (e *Engine) close() {
	if e.External {
		os.RemoveAll(e.Dir)
		return
	}
	_ = e.stop()
	if e.ctrd != nil {
		e.ctrd.stop()
	}
	// containerd and shims started by dockerd live in the same netns.
	killNetns(e.Netns)
	deleteNetns(e.Netns)
	if e.logFile != nil {
		e.logFile.Close()
	}
	unmountBelow(e.Dir)
	os.RemoveAll(e.Dir)
	unmountBelow(e.execRoot)
	os.RemoveAll(e.execRoot)
	_ = os.Remove(runPrefix) // the last one out
}

func (e *Engine) logTail(n int) string {
	return tail(filepath.Join(e.Dir, "dockerd.log"), n)
}

// tail returns the last n lines of a file.
func tail(file string, n int) string {
	b, _ := os.ReadFile(file)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// keepLog copies the dockerd log (the plugin's output included) out of the
// directory that close removes, to a file named after the suite, and says
// where.
func (e *Engine) keepLog() {
	b, err := os.ReadFile(filepath.Join(e.Dir, "dockerd.log"))
	if err != nil {
		return
	}
	dst := filepath.Join(os.TempDir(), "dualstack-it-"+suite()+"-dockerd.log")
	if os.WriteFile(dst, b, 0o644) == nil {
		fmt.Printf("dockerd log kept in %s\n", dst)
	}
	if b, err := os.ReadFile(filepath.Join(e.Dir, "containerd.log")); err == nil {
		dst := filepath.Join(os.TempDir(), "dualstack-it-"+suite()+"-containerd.log")
		if os.WriteFile(dst, b, 0o644) == nil {
			fmt.Printf("containerd log kept in %s\n", dst)
		}
	}
}

// suite is the name of the suite's test binary (local.test: local).
func suite() string { return strings.TrimSuffix(filepath.Base(os.Args[0]), ".test") }

// PluginLog returns the plugin's lines from the dockerd log.
func (e *Engine) PluginLog() string {
	b, _ := os.ReadFile(filepath.Join(e.Dir, "dockerd.log"))
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "plugin=") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// ProcessAlive reports whether pid is a process, and no zombie.
func ProcessAlive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !bytes.Contains(b, []byte(") Z "))
}

// AllPIDs lists every process.
func AllPIDs() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	for _, ent := range entries {
		if pid, err := strconv.Atoi(ent.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// NetnsPIDs lists the processes whose network namespace is the named one.
func NetnsPIDs(ns string) []int {
	target, err := os.Readlink("/run/netns/" + ns)
	if err != nil {
		fi, err := os.Stat("/run/netns/" + ns)
		if err != nil {
			return nil
		}
		target = fmt.Sprintf("net:[%d]", fi.Sys().(*syscall.Stat_t).Ino)
	}
	var pids []int
	for _, pid := range AllPIDs() {
		if l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/net", pid)); err == nil && l == target {
			pids = append(pids, pid)
		}
	}
	return pids
}

func killNetns(ns string) {
	for i := 0; i < 50; i++ {
		pids := NetnsPIDs(ns)
		if len(pids) == 0 {
			return
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// deleteNetns removes a private engine's network and mount namespaces.
func deleteNetns(ns string) {
	_ = exec.Command(filepath.Join(Repo, "engines/in-netns.sh"), "--delete", ns).Run()
}

// unmountBelow lazily unmounts whatever is still mounted under dir in this
// mount namespace.
func unmountBelow(dir string) {
	b, _ := os.ReadFile("/proc/self/mounts")
	lines := strings.Split(string(b), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		f := strings.Fields(lines[i])
		if len(f) > 1 && strings.HasPrefix(f[1], dir+"/") {
			_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
		}
	}
}

// cleanStale removes private engines, and cluster test beds, left by
// earlier runs that were killed before they could clean up (a `go test
// -timeout` panic, say).
func cleanStale() {
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		engineNS := strings.HasPrefix(f[0], netnsPrefix)
		bedNS := slices.ContainsFunc([]string{fabricNSPrefix, routerNSPrefix, etcdNSPrefix, onLinkRouterNSPrefix, onLinkNeighbourNSPrefix, delegationRouterNSPrefix}, func(p string) bool { return strings.HasPrefix(f[0], p) })
		if !engineNS && !bedNS {
			continue
		}
		// dsit-PID, or dsit-PID-NAME for the further hosts of a run; the
		// bed's own: dsfab-PID, dsrtr-PID, dsetcd-PID, and the on-link
		// bed's dsndr-PID and dsndn-PID, the delegation bed's dspdr-PID.
		_, id, _ := strings.Cut(f[0], "-")
		pidPart, _, _ := strings.Cut(id, "-")
		pid, err := strconv.Atoi(pidPart)
		if err == nil && ProcessAlive(pid) && pid != os.Getpid() {
			continue // another live test run
		}
		killNetns(f[0])
		if bedNS {
			// A bed's hub or etcd: no mount namespace, no exec-root.
			_ = exec.Command("ip", "netns", "del", f[0]).Run()
			continue
		}
		deleteNetns(f[0])
		if err == nil {
			root := filepath.Join(runPrefix, id)
			unmountBelow(root)
			os.RemoveAll(root)
		}
	}
}
