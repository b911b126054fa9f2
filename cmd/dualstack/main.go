// Command dualstack is the dualstack Docker plugin: a network driver and an
// IPAM driver served on one unix socket.
package main

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/delegation"
	"github.com/dualstack-net/dualstack/doctor"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/kernel"
	"github.com/dualstack-net/dualstack/lifecycle"
	"github.com/dualstack-net/dualstack/plugin"
	"github.com/dualstack-net/dualstack/settings"
	"github.com/dualstack-net/dualstack/state"
)

// The SandboxKey of a Join is a path in dockerd's mount namespace: the
// driver takes the pid of the process each Join comes from.
var _ plugin.JoinerFrom = (*driver.Driver)(nil)

func main() {
	log := logrus.StandardLogger()
	// dockerd logs a managed plugin's stdout at info and its stderr at
	// error, each line with its own timestamp and the plugin's ID.
	log.SetOutput(os.Stdout)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
	if len(os.Args) > 1 {
		if cmd, ok := commands[os.Args[1]]; ok {
			os.Exit(cmd(os.Args[2:]))
		}
	}
	if err := run(log); err != nil {
		log.Fatal(err)
	}
}

func run(log *logrus.Logger) error {
	t := startup{started: time.Now()}
	cfg, err := settings.FromEnv(nil)
	if err != nil {
		return err
	}
	log.SetLevel(cfg.LogLevel)
	ops := startOps(cfg, log)
	defer ops.stop()
	db, err := state.Open(cfg.StateDir, 10*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	t.opened = time.Now()

	store, err := openCluster(cfg, db, ops.metrics, log.WithField("driver", "cluster"))
	if err != nil {
		return err
	}
	if store != nil {
		// Revokes the host's lease: the other hosts see it gone at once.
		defer store.Close()
		log.WithField("store", strings.Join(cfg.ClusterStore, ",")).WithField("node", store.Node()).Info("cluster store")
	}
	speaker, bgpOff := startBGP(cfg, store, log.WithField("driver", "bgp"))
	if speaker != nil {
		// Withdraws the host's routes from the routers at once.
		defer speaker.Stop()
	}
	book, err := newBook(cfg, db, store, log)
	if err != nil {
		return err
	}
	t.ipam = time.Now()
	prefixes, following := newPrefixClients(db, log)
	// Stops the clients without releasing: a restarted plugin renews.
	defer prefixes.Close()
	netDriver, err := newDriver(cfg, db, book, store, speaker, bgpOff, prefixes, log, &t, ops)
	if err != nil {
		return err
	}
	following.Store(netDriver)

	l, err := plugin.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	// docker plugin disable sends SIGTERM, and SIGKILL 10 seconds later.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	t.restored = time.Now()
	defer netDriver.Close()
	loops := lifecycle.Start(ctx, lifecycle.Config{
		Driver: netDriver, Book: book, Store: store,
		Speaker: speaker, Import: speaker != nil && cfg.BGP.Import, Log: log,
	})
	defer loops.Stop()
	t.report(log)
	log.WithField("socket", cfg.Socket).WithField("state", cfg.StateDir).WithField("startup", time.Since(t.started).Round(time.Millisecond)).Info("dualstack serving")
	server := plugin.New(netDriver, ipamdriver.New(book, netDriver.Screens()), log)
	handleIPAM(server, netDriver, store)
	server.HandleOps(doctor.Path, doctor.Handler(doctorGather(cfg, netDriver, store, speaker, bgpOff), log.WithField("driver", "doctor")))
	if crash := crashSeam(os.Getenv, cfg.StateDir, log); crash != nil {
		server.CrashAfter(crash)
	}
	if err := ops.loaded(server, netDriver, book, store, speaker, prefixes, log); err != nil {
		return err
	}
	err = server.Serve(ctx, srv, l, stopGrace)
	log.WithError(err).Info("stopped: every request under way finished")
	return err
}

// newPrefixClients makes the DHCPv6 prefix-delegation clients of
// delegated_prefix networks, which report their leases' changes to the
// driver stored in following once it exists (a change before that is in
// the lease its start holds).
func newPrefixClients(db state.Store, log *logrus.Logger) (*delegation.Clients, *atomic.Pointer[driver.Driver]) {
	following := new(atomic.Pointer[driver.Driver])
	prefixes := delegation.New(delegation.Config{DB: db, Log: log.WithField("driver", "delegation"), OnChange: func(l delegation.Lease) {
		if d := following.Load(); d != nil {
			d.PrefixChanged(l)
		}
	}})
	return prefixes, following
}

// startup is when each step of the start ended, for the log.
type startup struct {
	started, opened, ipam, firewall, restored time.Time
}

func (t *startup) report(log logrus.FieldLogger) {
	log.WithFields(logrus.Fields{
		"open_took": t.opened.Sub(t.started), "ipam_took": t.ipam.Sub(t.opened),
		"firewall_took": t.firewall.Sub(t.ipam), "driver_took": t.restored.Sub(t.firewall),
		"resume_took": time.Since(t.restored),
	}).Debug("startup steps")
}

// newBook loads the address book, which leases blocks from store (nil: no
// cluster).
func newBook(cfg *settings.Settings, db state.Store, store *cluster.Store, log *logrus.Logger) (*addrbook.Book, error) {
	var leases addrbook.Leases
	if store != nil {
		leases = store
	}
	machineID, err := os.ReadFile(cfg.MachineIDFile)
	if err != nil {
		log.WithError(err).Warnf("cannot read %s: the IPv6 ULA prefix is derived from a random ID kept in the state file instead", cfg.MachineIDFile)
	}
	return addrbook.New(addrbook.Config{
		DB:             db,
		DefaultPoolsV4: cfg.DefaultPoolsV4,
		MachineID:      strings.TrimSpace(string(machineID)),
		HostPrefixes:   kernel.HostPrefixes,
		Log:            log.WithField("driver", "ipam"),
		Leases:         leases,
		StatusDir:      cfg.StateDir,
	})
}

// newDriver loads the network driver and reconciles the kernel with its
// state; t.firewall is when the firewall was chosen.
func newDriver(cfg *settings.Settings, db state.Store, book *addrbook.Book, store *cluster.Store, speaker *bgp.Speaker, bgpOff error, prefixes *delegation.Clients, log *logrus.Logger, t *startup, ops *ops) (*driver.Driver, error) {
	// Docker mounts /proc/sys read-only in a managed plugin; forwarding and
	// the IPv6 settings of bridges and containers need it writable.
	if err := sysctl.EnsureWritable(); err != nil {
		log.WithError(err).Warn("networks that need forwarding or IPv6 settings will fail")
	}
	sandboxes := openSandboxes(cfg, log)
	rules, err := driver.ChooseFirewall(db, cfg.FirewallBackend, log.WithField("driver", "network"))
	if err != nil {
		return nil, err
	}
	t.firewall = time.Now()
	rules.SetObserver(ops.metrics.Firewall())
	ops.firewall = rules.Applied
	var clusterStore driver.ClusterStore
	if store != nil {
		clusterStore = store
	}
	var announcer driver.Announcer
	if speaker != nil {
		announcer = speaker
	}
	return driver.New(driver.Config{
		Firewall:       rules,
		DB:             db,
		Book:           book,
		Log:            log.WithField("driver", "network"),
		UplinkAcceptRA: cfg.UplinkAcceptRA,
		ForwardDrop:    cfg.ForwardDrop,
		Sandboxes:      sandboxes,
		Cluster:        clusterStore,
		BGP:            announcer,
		BGPOff:         bgpOff,
		Delegations:    prefixes,
		StateDir:       cfg.StateDir,
		JoinFailed:     ops.metrics.JoinFailed,
	})
}

// openSandboxes finds how the plugin reaches the container network
// namespaces Docker names, and says so in the log.
func openSandboxes(cfg *settings.Settings, log *logrus.Logger) *sandboxkey.Resolver {
	// In the managed plugin the host's /run is mounted at settings.RunMount;
	// run as a plain host process (a legacy plugin) host paths are ours.
	runMount := settings.RunMount
	if _, err := os.Stat(runMount); err != nil {
		runMount = ""
	} else if os.Getenv("XTABLES_LOCKFILE") == "" {
		// Take the host's iptables lock, as dockerd and every other
		// iptables user there do: with the legacy backend, changes
		// made at the same time would otherwise overwrite each other.
		os.Setenv("XTABLES_LOCKFILE", filepath.Join(runMount, "xtables.lock"))
	}
	sandboxes := sandboxkey.New(sandboxkey.Config{Want: cfg.NetnsAccess, HostRun: cfg.HostRun, RunMount: runMount, Parent: os.Getppid()})
	if err := sandboxes.Problem(); err != nil {
		log.WithField("mechanism", sandboxes.Mechanism()).WithError(err).Error("container network namespaces cannot be reached: joins will fail")
	} else {
		log.WithField("mechanism", sandboxes.Mechanism()).Info("container network namespaces: " + sandboxes.Describe())
	}
	return sandboxes
}

// stopGrace bounds the wait for requests under way at SIGTERM, within
// the 10 seconds Docker waits before it kills the plugin.
const stopGrace = 8 * time.Second
