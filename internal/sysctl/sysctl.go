// Package sysctl reads and writes kernel parameters through /proc/sys.
//
// Files under /proc/sys/net belong to the network namespace of the thread
// that opens them, so Get and Set act on the calling thread's namespace: call
// them inside netns.Do to reach a container's or a test's namespace.
//
// Inside a Docker managed plugin /proc/sys is mounted read-only; call
// EnsureWritable once at start-up (it needs CAP_SYS_ADMIN) before Set.
package sysctl

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Root is where the kernel exposes its parameters.
const Root = "/proc/sys"

// Path returns the file under /proc/sys for name.
//
// name may use slashes (net/ipv6/conf/eth0.100/accept_ra) or, like
// sysctl(8), dots (net.ipv6.conf.all.accept_ra). A name that contains a slash
// is taken as a path and its dots are kept, which is the only way to name an
// interface whose name contains a dot.
func Path(name string) (string, error) {
	n := strings.TrimPrefix(strings.TrimSpace(name), Root+"/")
	n = strings.Trim(n, "/")
	if !strings.Contains(n, "/") {
		n = strings.ReplaceAll(n, ".", "/")
	}
	if n == "" {
		return "", fmt.Errorf("sysctl: empty parameter name %q", name)
	}
	for _, part := range strings.Split(n, "/") {
		if part == "" || part == "." || part == ".." {
			return "", fmt.Errorf("sysctl: invalid parameter name %q: empty, %q or %q component "+
				"(write e.g. net/ipv6/conf/eth0/accept_ra or net.ipv6.conf.eth0.accept_ra)", name, ".", "..")
		}
	}
	return filepath.Join(Root, n), nil
}

// Get returns the value of the kernel parameter name, without the trailing
// newline, as seen by the calling thread's namespaces.
func Get(name string) (string, error) {
	p, err := Path(name)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(p)
	if err != nil {
		return "", fmt.Errorf("sysctl: get %s: %w%s", name, err, hint(err))
	}
	return strings.TrimRight(string(b), "\n"), nil
}

// Set writes value to the kernel parameter name, as seen by the calling
// thread's namespaces.
func Set(name, value string) error {
	p, err := Path(name)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		return fmt.Errorf("sysctl: set %s=%s: %w%s", name, value, err, hint(err))
	}
	if _, err := f.WriteString(value); err != nil {
		f.Close()
		return fmt.Errorf("sysctl: set %s=%s: %w%s", name, value, err, hint(err))
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("sysctl: set %s=%s: close %s: %w", name, value, p, err)
	}
	return nil
}

func hint(err error) string {
	switch {
	case errors.Is(err, syscall.EROFS):
		return " (/proc/sys is mounted read-only, as in a Docker managed plugin: " +
			"call sysctl.EnsureWritable at start-up; it needs CAP_SYS_ADMIN)"
	case errors.Is(err, os.ErrNotExist):
		return " (no such parameter: check the name; per-interface IPv6 keys exist only " +
			"while the interface exists in this network namespace and IPv6 is enabled)"
	case errors.Is(err, os.ErrPermission):
		return " (permission denied: writing needs root with CAP_NET_ADMIN in the namespace)"
	}
	return ""
}
