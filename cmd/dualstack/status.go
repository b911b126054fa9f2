package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/dualstack-net/dualstack/settings"
)

// statusFile is a CLI command that prints one of the status files the
// plugin writes in its state directory (the state file itself is locked
// while the plugin runs): `dualstack NAME [--state-dir DIR] [--json]`.
type statusFile[T any] struct {
	name string // the command
	file string // the file's name in the state directory
	// missing says when the plugin writes the file.
	missing string
	print   func(w io.Writer, st *T, now time.Time)
}

// run parses args and prints the file, as read or as it is (--json).
func (c statusFile[T]) run(args []string, stdout io.Writer, now time.Time) error {
	flags := flag.NewFlagSet("dualstack "+c.name, flag.ContinueOnError)
	dir := flags.String("state-dir", envOr("STATE_DIR", settings.DefaultStateDir), "the plugin's state directory (the state mount's source)")
	asJSON := flags.Bool("json", false, "print the status file as it is")
	flags.Usage = func() {
		fmt.Fprintf(flags.Output(), "usage: dualstack %s [--state-dir DIR] [--json]\n", c.name)
		flags.PrintDefaults()
	}
	if err := flags.Parse(args); err != nil {
		return err
	}
	path := filepath.Join(*dir, c.file)
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s is not there: the plugin writes it once it has %s (or give --state-dir the state mount's source)", path, c.missing)
	}
	if err != nil {
		return err
	}
	if *asJSON {
		_, err := stdout.Write(data)
		return err
	}
	var st T
	if err := json.Unmarshal(data, &st); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	c.print(stdout, &st, now)
	return nil
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
