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
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/driver/sandboxkey"
	"github.com/dualstack-net/dualstack/driver/sysctl"
	"github.com/dualstack-net/dualstack/ipamdriver"
	"github.com/dualstack-net/dualstack/plugin"
	"github.com/dualstack-net/dualstack/settings"
	"github.com/dualstack-net/dualstack/state"
)

// The SandboxKey of a Join is a path in dockerd's mount namespace: the
// driver takes the pid of the process each Join comes from.
var _ plugin.JoinerFrom = (*driver.Driver)(nil)

// firewallSyncInterval is how often the plugin checks that its firewall
// rules are still in place.
const firewallSyncInterval = 30 * time.Second

func main() {
	log := logrus.StandardLogger()
	// dockerd logs a managed plugin's stdout at info and its stderr at
	// error, each line with its own timestamp and the plugin's ID.
	log.SetOutput(os.Stdout)
	log.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true, DisableColors: true})
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

	machineID, err := os.ReadFile(cfg.MachineIDFile)
	if err != nil {
		log.Warnf("cannot read %s (%v): the IPv6 ULA prefix is derived from a random ID kept in the state file instead", cfg.MachineIDFile, err)
	}
	ipamDriver, err := ipamdriver.New(ipamdriver.Config{
		DB:             db,
		DefaultPoolsV4: cfg.DefaultPoolsV4,
		MachineID:      strings.TrimSpace(string(machineID)),
		HostPrefixes:   ipamdriver.HostPrefixes,
		Log:            log.WithField("driver", "ipam"),
	})
	if err != nil {
		return err
	}
	ipamLoaded := time.Now()

	// Docker mounts /proc/sys read-only in a managed plugin; forwarding and
	// the IPv6 settings of bridges and containers need it writable.
	if err := sysctl.EnsureWritable(); err != nil {
		log.Warnf("%v: networks that need forwarding or IPv6 settings will fail", err)
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
		IPAM:           ipamDriver,
		Log:            log.WithField("driver", "network"),
		UplinkAcceptRA: cfg.UplinkAcceptRA,
		ForwardDrop:    cfg.ForwardDrop,
		Sandboxes:      sandboxes,
	})
	if err != nil {
		return err
	}

	l, err := plugin.ListenUnix(cfg.Socket)
	if err != nil {
		return err
	}
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	go func() {
		<-ctx.Done()
		log.Info("shutting down")
		shutdown, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	restored := time.Now()
	netDriver.ResumeJoins()
	netDriver.CollectStale(driver.StaleGrace)
	go func() {
		t := time.NewTicker(firewallSyncInterval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := netDriver.SyncFirewall(); err != nil {
					log.Warnf("repair firewall rules: %v", err)
				}
			}
		}
	}()
	defer netDriver.Close()
	log.WithFields(logrus.Fields{
		"open": opened.Sub(started), "ipam": ipamLoaded.Sub(opened),
		"firewall": firewallReady.Sub(ipamLoaded), "network": restored.Sub(firewallReady),
		"resume": time.Since(restored),
	}).Debug("startup steps")
	log.WithField("socket", cfg.Socket).WithField("state", cfg.StateDir).WithField("startup", time.Since(started).Round(time.Millisecond)).Info("dualstack serving")
	return plugin.New(netDriver, ipamDriver, log).Serve(srv, l)
}
