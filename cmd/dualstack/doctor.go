package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/dualstack-net/dualstack/bgp"
	"github.com/dualstack-net/dualstack/cluster"
	"github.com/dualstack-net/dualstack/doctor"
	"github.com/dualstack-net/dualstack/driver"
	"github.com/dualstack-net/dualstack/internal/pluginclient"
	"github.com/dualstack-net/dualstack/settings"
)

// doctorTimeout bounds the plugin's checks (the cluster store's answer
// among them).
const doctorTimeout = time.Minute

// doctorCommand asks the running plugin to check the host
// (`dualstack doctor [--json] [--socket PATH]`) and prints what it found;
// found is true when it found something.
func doctorCommand(args []string, stdout io.Writer) (found bool, err error) {
	flags := flag.NewFlagSet("dualstack doctor", flag.ContinueOnError)
	socket := flags.String("socket", "", "the plugin's socket (default: found as dualstack's documentation says)")
	asJSON := flags.Bool("json", false, "print the plugin's answer as it is")
	flags.Usage = func() {
		fmt.Fprintln(flags.Output(), "usage: dualstack doctor [--json] [--socket PATH]")
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return false, err
	}
	if flags.NArg() > 0 {
		return false, fmt.Errorf("unexpected argument %q: usage: dualstack doctor [--json] [--socket PATH]", flags.Arg(0))
	}
	self, _ := os.Executable()
	path, err := pluginclient.Find(*socket, self)
	if err != nil {
		return false, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), doctorTimeout)
	defer cancel()
	var raw json.RawMessage
	if err := pluginclient.New(path).Get(ctx, doctor.Path, &raw); err != nil {
		return false, err
	}
	var rep doctor.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		return false, fmt.Errorf("the plugin's answer is not a doctor's report (%v): are the CLI and the plugin the same version?", err)
	}
	if *asJSON {
		_, err = fmt.Fprintf(stdout, "%s\n", raw)
	} else {
		err = printDoctor(stdout, rep)
	}
	return len(rep.Findings) > 0, err
}

// printDoctor prints each finding as its problem, what it is about and
// its fix; or that there is none.
func printDoctor(w io.Writer, rep doctor.Report) error {
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintf(w, "no problems found (%d checks)\n", len(rep.Checks))
		return err
	}
	for _, f := range rep.Findings {
		if _, err := fmt.Fprintf(w, "%s (%s)\n  fix: %s\n", f.Problem, f.Object, f.Fix); err != nil {
			return err
		}
	}
	return nil
}

// doctorGather reads the host for the plugin's doctor: the driver's view,
// the cluster store (nil: no cluster) and the BGP speaker (nil: none;
// bgpOff why not, though configured).
func doctorGather(cfg *settings.Settings, d *driver.Driver, store *cluster.Store, speaker *bgp.Speaker, bgpOff error) func(context.Context) doctor.Host {
	src := doctor.Sources{EnginePID: os.Getppid(), Sandboxes: d.Sandboxes(), Driver: d, BGPError: bgpOff}
	if store != nil {
		src.Cluster, src.ClusterEndpoints = store, cfg.ClusterStore
	}
	if speaker != nil {
		src.BGP = speaker.Status
	}
	return func(ctx context.Context) doctor.Host { return doctor.Gather(ctx, src) }
}
