// Command dualstack is the dualstack Docker plugin: a network driver and an
// IPAM driver served on one unix socket.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/addrbook"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/internal/sysctl"
	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/kernel"
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
	if len(os.Args) > 1 && os.Args[1] == "cluster" {
		if err := clusterCommand(os.Args[2:], os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "dualstack cluster:", err)
			os.Exit(1)
		}
		return
	}
	if err := run(log); err != nil {
		log.Fatal(err)
	}
}

func run(log *logrus.Logger) error {
	started := time.Now()
	cfg, err := settings.FromEnv(nil)
	if err != nil {
		return err
	}
	log.SetLevel(cfg.LogLevel)

	db, err := state.Open(cfg.StateDir, 10*time.Second)
	if err != nil {
		return err
	}
	defer db.Close()
	opened := time.Now()

	store, err := openCluster(cfg, db, log.WithField("driver", "cluster"))
	if err != nil {
		return err
	}
	var leases addrbook.Leases
	var clusterStore driver.ClusterStore
	if store != nil {
		// Revokes the host's lease: the other hosts see it gone at once.
		defer store.Close()
		leases, clusterStore = store, store
		log.WithField("store", strings.Join(cfg.ClusterStore, ",")).WithField("node", store.Node()).Info("cluster store")
	}

	speaker, bgpOff := startBGP(cfg, store, log.WithField("driver", "bgp"))
	var announcer driver.Announcer
	if speaker != nil {
		// Withdraws the host's routes from the routers at once.
		defer speaker.Stop()
		announcer = speaker
	}

	machineID, err := os.ReadFile(cfg.MachineIDFile)
	if err != nil {
		log.WithError(err).Warnf("cannot read %s: the IPv6 ULA prefix is derived from a random ID kept in the state file instead", cfg.MachineIDFile)
	}
	book, err := addrbook.New(addrbook.Config{
		DB:             db,
		DefaultPoolsV4: cfg.DefaultPoolsV4,
		MachineID:      strings.TrimSpace(string(machineID)),
		HostPrefixes:   kernel.HostPrefixes,
		Log:            log.WithField("driver", "ipam"),
		Leases:         leases,
	})
	if err != nil {
		return err
	}
	ipamLoaded := time.Now()

	// Docker mounts /proc/sys read-only in a managed plugin; forwarding and
	// the IPv6 settings of bridges and containers need it writable.
	if err := sysctl.EnsureWritable(); err != nil {
		log.WithError(err).Warn("networks that need forwarding or IPv6 settings will fail")
	}
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
	rules, err := driver.ChooseFirewall(db, cfg.FirewallBackend, log.WithField("driver", "network"))
	if err != nil {
		return err
	}
	firewallReady := time.Now()
	netDriver, err := driver.New(driver.Config{
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
	})
	if err != nil {
		return err
	}
	l, err := plugin.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	// docker plugin disable sends SIGTERM, and SIGKILL 10 seconds later.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	restored := time.Now()
	netDriver.ResumeJoins()
	book.CollectStale(addrbook.StaleGrace)
	book.CollectEmptyDefaultPools(addrbook.StaleGrace)
	// A block leased is announced at once (BGP).
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-book.BlocksChanged():
				netDriver.SyncBGP()
			}
		}
	}()
	// dualstack's rules follow the host's as they change (Docker's
	// networks, dockerd restarting, another manager).
	go netDriver.FollowFirewall(ctx)
	defer netDriver.Close()
	followBGP(ctx, speaker, cfg, netDriver, log.WithField("driver", "bgp"))
	if store != nil {
		go watchClusterRoutes(ctx, store, netDriver, book, log.WithField("driver", "cluster"))
		go rejoinCluster(ctx, netDriver, book, log.WithField("driver", "cluster"))
	}
	log.WithFields(logrus.Fields{
		"open_took": opened.Sub(started), "ipam_took": ipamLoaded.Sub(opened),
		"firewall_took": firewallReady.Sub(ipamLoaded), "driver_took": restored.Sub(firewallReady),
		"resume_took": time.Since(restored),
	}).Debug("startup steps")
	log.WithField("socket", cfg.Socket).WithField("state", cfg.StateDir).WithField("startup", time.Since(started).Round(time.Millisecond)).Info("dualstack serving")
	server := plugin.New(netDriver, ipamdriver.New(book), log)
	if crash := crashSeam(os.Getenv, cfg.StateDir, log); crash != nil {
		server.CrashAfter(crash)
	}
	err = server.Serve(ctx, srv, l, stopGrace)
	log.WithError(err).Info("stopped: every request under way finished")
	return err
}

// stopGrace bounds the wait for requests under way at SIGTERM, within
// the 10 seconds Docker waits before it kills the plugin.
const stopGrace = 8 * time.Second
