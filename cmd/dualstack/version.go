package main

import (
	"fmt"
	"io"
	"runtime"
	"strings"

	"github.com/dualstack-net/dualstack/internal/version"
)

// versionCommand prints the release the binary was built for (make
// release VERSION=...; "dev" otherwise) and the platform it was built
// for, as `dualstack 1.2.3 linux/arm64`: which plugin tag it came from.
func versionCommand(args []string, w io.Writer) error {
	if len(args) > 0 {
		return fmt.Errorf("takes no arguments, got %q (usage: dualstack version)", strings.Join(args, " "))
	}
	_, err := fmt.Fprintf(w, "dualstack %s %s/%s\n", version.Version, runtime.GOOS, runtime.GOARCH)
	return err
}
