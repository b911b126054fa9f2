package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"

	"github.com/dualstack-net/dualstack/internal/pluginclient"
	"github.com/dualstack-net/dualstack/metrics"
)

// errNotReady is healthCommand's error when the plugin answered that it
// is not ready (it printed why).
var errNotReady = errors.New("not ready")

// healthCommand asks the running plugin whether it is ready (GET /health
// on its socket) and prints each check: nil when ready, errNotReady when
// not, another error when the plugin cannot be asked.
func healthCommand(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("dualstack health", flag.ContinueOnError)
	socket := fs.String("socket", "", "the plugin's socket (default: found as the docs say)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: usage: dualstack health [--socket PATH]", fs.Arg(0))
	}
	self, _ := os.Executable()
	path, err := pluginclient.Find(*socket, self)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var rep metrics.Report
	err = pluginclient.New(path).Get(ctx, "/health", &rep)
	var se *pluginclient.StatusError
	if errors.As(err, &se) && se.Status == http.StatusServiceUnavailable {
		if jerr := json.Unmarshal([]byte(se.Body), &rep); jerr != nil {
			return err
		}
	} else if err != nil {
		return err
	}
	printHealth(stdout, rep)
	if !rep.Ready {
		return errNotReady
	}
	return nil
}

// printHealth writes the readiness and each check.
func printHealth(w io.Writer, rep metrics.Report) {
	if rep.Ready {
		fmt.Fprintln(w, "ready")
	} else {
		fmt.Fprintln(w, "NOT READY")
	}
	for _, c := range rep.Checks {
		if c.OK {
			fmt.Fprintf(w, "  %-14s ok\n", c.Name)
		} else {
			fmt.Fprintf(w, "  %-14s FAILS: %s\n", c.Name, c.Reason)
		}
	}
}
