package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/internal/dockerapi"
	"github.com/dualstack-net/dualstack/internal/pluginclient"
	"github.com/dualstack-net/dualstack/ipamcheck"
	"github.com/dualstack-net/dualstack/plugin"
)

// The plugin's side of `dualstack ipam check`.

// handleIPAM registers GET /dualstack/ipam and POST /dualstack/ipam/release.
func handleIPAM(server *plugin.Server, d *driver.Driver, store *cluster.Store) {
	src := ipamSource{d: d, store: store}
	server.HandleOps(ipamcheck.ViewPath, ipamcheck.ViewHandler(src))
	server.HandleOps(ipamcheck.ReleasePath, ipamcheck.ReleaseHandler(src))
}

// ipamSource is the driver's view with the cluster store's part.
type ipamSource struct {
	d     *driver.Driver
	store *cluster.Store // nil: no cluster
}

func (s ipamSource) View(ctx context.Context) (*ipamcheck.PluginView, error) {
	v := s.d.IPAMView()
	if s.store == nil {
		return v, nil
	}
	node := s.store.Node()
	blocks, err := s.store.Blocks(ctx, "")
	if err == nil {
		var claims []cluster.Claim
		claims, err = s.store.Claims(ctx, "")
		for _, c := range claims {
			if c.Node == node {
				v.Cluster = append(v.Cluster, ipamcheck.ClusterHold{Network: c.Network, Address: c.Addr})
			}
		}
	}
	if err != nil {
		v.ClusterError = err.Error()
		return v, nil
	}
	for _, b := range blocks {
		if b.Node == node {
			v.Cluster = append(v.Cluster, ipamcheck.ClusterHold{Network: b.Network, Block: b.Prefix})
		}
	}
	return v, nil
}

func (s ipamSource) Release(_ context.Context, req ipamcheck.Release) (*ipamcheck.Released, error) {
	return s.d.IPAMRelease(req)
}

// The CLI: dualstack ipam check [--release] [--json] [--socket PATH]
// [--docker-host URL] [--plugin NAME]. Exit 0: nothing found (or all of
// it released); 1: findings left; 2: the check could not run.

// ipamOptions are the command's flags.
type ipamOptions struct {
	release, json      bool
	socket, dockerHost string
	plugin             string
}

// ipamCommand runs `dualstack ipam ARGS` and returns its exit code.
func ipamCommand(args []string, stdout, stderr io.Writer) int {
	opts, err := parseIPAM(args, stderr)
	if err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(stderr, "dualstack ipam:", err)
		}
		return 2
	}
	found, err := ipamCheck(context.Background(), opts, stdout, stderr)
	if err != nil {
		fmt.Fprintln(stderr, "dualstack ipam check:", err)
		return 2
	}
	if found {
		return 1
	}
	return 0
}

func parseIPAM(args []string, stderr io.Writer) (ipamOptions, error) {
	var o ipamOptions
	if len(args) == 0 || args[0] != "check" {
		return o, errors.New("usage: dualstack ipam check [--release] [--json] [--socket PATH] [--docker-host URL] [--plugin NAME]")
	}
	flags := flag.NewFlagSet("dualstack ipam check", flag.ContinueOnError)
	flags.SetOutput(stderr)
	flags.BoolVar(&o.release, "release", false, "release the leaked addresses, left links and left routes found (never an address a container holds)")
	flags.BoolVar(&o.json, "json", false, "print the findings as JSON")
	flags.StringVar(&o.socket, "socket", "", "the plugin's socket (default: found as the docs say)")
	flags.StringVar(&o.dockerHost, "docker-host", envOr("DOCKER_HOST", dockerapi.DefaultHost), "Docker's address: unix:///path or tcp://HOST:PORT")
	flags.StringVar(&o.plugin, "plugin", "", `the plugin's name as networks give it as driver ("dualstack:latest"); default: any name ending in "`+ipamcheck.DefaultPlugin+`" (without its tag)`)
	if err := flags.Parse(args[1:]); err != nil {
		return o, err
	}
	if flags.NArg() > 0 {
		return o, fmt.Errorf("unexpected arguments %q", flags.Args())
	}
	return o, nil
}

// ipamCheck checks (and releases), prints the result and reports whether
// findings are left.
func ipamCheck(ctx context.Context, o ipamOptions, stdout, stderr io.Writer) (bool, error) {
	self, _ := os.Executable()
	sock, err := pluginclient.Find(o.socket, self)
	if err != nil {
		return false, err
	}
	pc := pluginclient.New(sock)
	dc, err := dockerapi.New(o.dockerHost)
	if err != nil {
		return false, err
	}
	report, err := checkOnce(ctx, pc, dc, o.plugin)
	if err != nil {
		return false, err
	}
	var released *ipamcheck.Released
	if o.release && !report.Releasable().Empty() {
		if released, err = release(ctx, pc, dc, o.plugin, report); err != nil {
			return false, err
		}
	}
	left := leftAfter(report, released)
	if o.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return left > 0, enc.Encode(struct {
			ipamcheck.Report
			Released *ipamcheck.Released `json:"released,omitempty"`
		}{report, released})
	}
	printReport(stdout, stderr, report, released, left)
	return left > 0, nil
}

// checkOnce reads both views and compares them.
func checkOnce(ctx context.Context, pc *pluginclient.Client, dc *dockerapi.Client, pluginName string) (ipamcheck.Report, error) {
	var pv ipamcheck.PluginView
	if err := pc.Get(ctx, ipamcheck.ViewPath, &pv); err != nil {
		return ipamcheck.Report{}, err
	}
	dv, matched, err := readDocker(ctx, dc, pluginName, &pv)
	if err != nil {
		return ipamcheck.Report{}, err
	}
	report := ipamcheck.Check(&pv, dv)
	if matched == 0 && len(pv.Pools) > 0 {
		name := pluginName
		if name == "" {
			name = `a name ending in "` + ipamcheck.DefaultPlugin + `"`
		}
		report.Warnings = append(report.Warnings, fmt.Sprintf("no Docker network has %s as driver or IPAM driver: give the plugin's name with --plugin NAME (docker plugin ls)", name))
	}
	return report, nil
}

// readDocker reads Docker's networks with the plugin as network or IPAM
// driver, and those the plugin has by ID, each with its endpoints;
// matched counts those Docker names the plugin in.
func readDocker(ctx context.Context, dc *dockerapi.Client, pluginName string, pv *ipamcheck.PluginView) (*ipamcheck.DockerView, int, error) {
	var list []ipamcheck.DockerNetwork
	if err := dc.Get(ctx, "/networks", &list); err != nil {
		return nil, 0, err
	}
	ours := map[string]bool{}
	for _, n := range pv.Networks {
		ours[n.ID] = true
	}
	dv := &ipamcheck.DockerView{Networks: []ipamcheck.DockerNetwork{}}
	matched := 0
	for _, n := range list {
		named := ipamcheck.Names(n.Driver, pluginName) || ipamcheck.Names(n.IPAM.Driver, pluginName)
		if !named && !ours[n.ID] {
			continue
		}
		if named {
			matched++
		}
		var full ipamcheck.DockerNetwork
		if err := dc.Get(ctx, "/networks/"+url.PathEscape(n.ID), &full); err != nil {
			return nil, 0, err
		}
		dv.Networks = append(dv.Networks, full)
	}
	return dv, matched, nil
}

// releaseWait parts the two checks --release compares.
var releaseWait = time.Second

// release checks again a moment later and releases what both checks
// found releasable: an address whose container was starting during the
// first check is its endpoint's in the second.
func release(ctx context.Context, pc *pluginclient.Client, dc *dockerapi.Client, pluginName string, first ipamcheck.Report) (*ipamcheck.Released, error) {
	time.Sleep(releaseWait)
	second, err := checkOnce(ctx, pc, dc, pluginName)
	if err != nil {
		return nil, err
	}
	req := ipamcheck.Both(first.Releasable(), second.Releasable())
	out := &ipamcheck.Released{Addresses: []ipamcheck.PoolAddress{}, Links: []string{}}
	if req.Empty() {
		return out, nil
	}
	if err := pc.Post(ctx, ipamcheck.ReleasePath, req, out); err != nil {
		return nil, fmt.Errorf("release: %w", err)
	}
	return out, nil
}

// leftAfter counts the findings of r that released did not release.
func leftAfter(r ipamcheck.Report, released *ipamcheck.Released) int {
	left := 0
	for _, f := range r.Findings {
		if !releasedAll(f, released) {
			left++
		}
	}
	return left
}

// releasedAll reports whether released covers what f releases.
func releasedAll(f ipamcheck.Finding, released *ipamcheck.Released) bool {
	if f.Release == nil || released == nil {
		return false
	}
	done := map[string]bool{}
	for _, a := range released.Addresses {
		done["address "+a.Address.String()+" of pool "+a.Pool] = true
	}
	for _, l := range released.Links {
		done["link "+l] = true
	}
	for _, r := range released.Routes {
		done["route "+r.String()] = true
	}
	for _, g := range released.Gone {
		done[g] = true
	}
	for _, a := range f.Release.Addresses {
		if !done["address "+a.Address.String()+" of pool "+a.Pool] {
			return false
		}
	}
	for _, l := range f.Release.Links {
		if !done["link "+l] {
			return false
		}
	}
	for _, r := range f.Release.Routes {
		if !done["route "+r.String()] {
			return false
		}
	}
	return true
}

// printReport prints each finding with its fix, what was released, and a
// summary line.
func printReport(w, stderr io.Writer, r ipamcheck.Report, released *ipamcheck.Released, left int) {
	for _, warn := range r.Warnings {
		fmt.Fprintln(stderr, "warning:", warn)
	}
	for _, f := range r.Findings {
		state := ""
		if releasedAll(f, released) {
			state = " [released]"
		}
		fmt.Fprintf(w, "%s: %s%s\n  %s\n  fix: %s\n", f.Kind, f.Object, state, f.Detail, f.Fix)
	}
	switch {
	case len(r.Findings) == 0:
		fmt.Fprintln(w, "no problems found")
	case left == 0:
		fmt.Fprintf(w, "%d found, all released\n", len(r.Findings))
	case released != nil:
		fmt.Fprintf(w, "%d found, %d released; the others need the fix shown\n", len(r.Findings), len(r.Findings)-left)
	default:
		var releasable []string
		for _, f := range r.Findings {
			if f.Release != nil {
				releasable = append(releasable, f.Object)
			}
		}
		fmt.Fprintf(w, "%d found", len(r.Findings))
		if len(releasable) > 0 {
			fmt.Fprintf(w, "; --release releases %s", strings.Join(releasable, ", "))
		}
		fmt.Fprintln(w)
	}
}
