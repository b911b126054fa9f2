// Package version is the plugin's version, set at build time:
// go build -ldflags '-X github.com/dualstack-net/dualstack/internal/version.Version=1.2.3'
// (make release VERSION=1.2.3). A binary built otherwise is "dev".
package version

// Version is the release this binary was built for.
var Version = "dev"
