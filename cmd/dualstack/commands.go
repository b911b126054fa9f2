package main

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// commands are the CLI's commands, `dualstack NAME ARGS...`; without one
// of them the binary is the plugin. Each returns the exit code.
var commands = map[string]func(args []string) int{
	"cluster": failing("cluster", func(args []string) error { return clusterCommand(args, os.Stdout) }),
	"sticky": failing("sticky", func(args []string) error {
		return stickyCommand(args, os.Stdout, time.Now())
	}),
	"prefixes": failing("prefixes", func(args []string) error {
		return prefixesCommand(args, os.Stdout, time.Now())
	}),
	"version": failing("version", func(args []string) error { return versionCommand(args, os.Stdout) }),
	"ipam":    func(args []string) int { return ipamCommand(args, os.Stdout, os.Stderr) },
	"doctor": func(args []string) int {
		found, err := doctorCommand(args, os.Stdout)
		switch {
		case err != nil:
			fmt.Fprintln(os.Stderr, "dualstack doctor:", err)
			return 2
		case found:
			return 1
		}
		return 0
	},
	"health": func(args []string) int {
		err := healthCommand(args, os.Stdout)
		if err != nil && !errors.Is(err, errNotReady) {
			fmt.Fprintln(os.Stderr, "dualstack health:", err)
		}
		return exitCode(err)
	},
}

// failing adapts a command that only fails or not: its error goes to
// stderr after the command's name, and the exit code is 1.
func failing(name string, run func(args []string) error) func([]string) int {
	return func(args []string) int {
		if err := run(args); err != nil {
			fmt.Fprintf(os.Stderr, "dualstack %s: %v\n", name, err)
			return 1
		}
		return 0
	}
}

func exitCode(err error) int {
	if err != nil {
		return 1
	}
	return 0
}
