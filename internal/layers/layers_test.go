package layers

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
)

// layers are the module's packages, bottom up. An entry names a package
// and the directory below it: a package not named takes the layer of the
// nearest entry above it in the tree (driver/foo is driver's), and a
// package under no entry at all is refused until it is given a layer
// here. Entries whose package does not exist (yet) are fine.
var layers = [][]string{
	// Helpers that are no API of dualstack's.
	{"internal"},
	// The ground floor: the kernel's listings, what requests may carry,
	// durable state.
	{"kernel", "validate", "state"},
	// Components, and the pieces the driver and the IPAM are made of.
	{"firewall", "routes", "cluster", "cluster/clustertest", "bgp",
		"driver/bridge", "driver/macvlan", "driver/sandbox", "driver/sandboxkey", "driver/portmap",
		"addrbook/allocator", "ndp", "delegation",
		// The IPAM check's views and comparison, which the driver fills.
		"ipamcheck"},
	// The one address book.
	{"addrbook"},
	// Docker's two APIs as adapters, and the settings that configure them.
	{"ipamdriver", "driver", "settings"},
	// The socket's mux, the loops that start and stop with the plugin,
	// and the metrics and the doctor, which read every component.
	{"plugin", "lifecycle", "metrics", "doctor"},
	// Commands, end-to-end tests and benchmarks.
	{"cmd", "integration", "bench"},
}

// exceptions are upward imports allowed, "importer -> imported", with why
// each is there. Add none: an import that runs up is a design to fix.
var exceptions = map[string]string{}

// layerOf returns the layer of pkg (a path inside the module) and the
// entry that gave it; false for a package under no entry.
func layerOf(pkg string) (layer int, entry string, ok bool) {
	for p := pkg; p != "." && p != "/" && p != ""; p = path.Dir(p) {
		for i, l := range layers {
			if slices.Contains(l, p) {
				return i, p, true
			}
		}
	}
	return 0, "", false
}

// allowed returns why from may not import to, or "": to must be of a
// lower layer, or of the same layer and inside from's own directory (its
// sub-packages, or, for a nested package, those of its parent's
// directory: internal/netnstest may import internal/netns).
func allowed(from, to string) string {
	lf, ef, okF := layerOf(from)
	lt, et, okT := layerOf(to)
	switch {
	case !okF:
		return fmt.Sprintf("package %s has no layer: add it to the layers in internal/layers/layers_test.go", from)
	case !okT:
		return fmt.Sprintf("package %s has no layer: add it to the layers in internal/layers/layers_test.go", to)
	case lt < lf:
		return ""
	case lt == lf && strings.HasPrefix(to, from+"/"):
		return "" // its own sub-package
	case lt == lf && strings.Contains(from, "/") && strings.HasPrefix(to, path.Dir(from)+"/"):
		return "" // a sub-package of its own directory
	}
	return fmt.Sprintf("%s (layer %d, as %s) imports %s (layer %d, as %s): a package may import only packages of a layer below its own; move what it needs down, or invert the dependency with an interface", from, lf, ef, to, lt, et)
}

func TestAllowed(t *testing.T) {
	for _, c := range []struct {
		from, to string
		ok       bool
	}{
		{"driver", "driver/bridge", true},
		{"driver/bridge", "internal/links", true},
		{"kernel", "internal/links", true},
		{"routes", "kernel", true},
		{"internal/netnstest", "internal/netns", true},
		{"driver", "driver/newpart", true},             // a sub-package of driver's own
		{"ipamdriver", "driver/sandbox", true},         // a lower layer
		{"cmd/dualstack", "plugin", true},              //
		{"driver/bridge", "driver", false},             // a sub-package up to its parent's layer
		{"driver/bridge", "driver/newpart", false},     // a sibling of a higher layer
		{"kernel", "routes", false},                    // up
		{"kernel", "validate", false},                  // same layer, other directory
		{"ipamdriver", "driver", false},                // same layer: the address book's job
		{"addrbook", "ipamdriver", false},              //
		{"plugin", "cmd/dualstack", false},             //
		{"internal/links", "kernel", false},            //
		{"newtoplevel", "kernel", false},               // no layer
		{"kernel", "newtoplevel", false},               //
		{"cluster/clustertest", "cluster/other", true}, // a sibling in the same layer
	} {
		why := allowed(c.from, c.to)
		if (why == "") != c.ok {
			t.Errorf("%s -> %s: allowed is %v (%q), want %v", c.from, c.to, why == "", why, c.ok)
		}
	}
}

// pkg is what go list says of one package.
type pkg struct {
	ImportPath string
	Imports    []string
}

// goList lists the module's packages, integration's among them, from
// the module's root.
func goList(t *testing.T) (module string, pkgs []pkg) {
	t.Helper()
	gobin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if p, err := exec.LookPath("go"); err == nil {
		gobin = p
	}
	run := func(args ...string) []byte {
		cmd := exec.Command(gobin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return out
	}
	module = strings.TrimSpace(string(run("list", "-m", "-f", "{{.Path}}")))
	dir := strings.TrimSpace(string(run("list", "-m", "-f", "{{.Dir}}")))
	out := run("-C", dir, "list", "-tags", "integration", "-json=ImportPath,Imports", "./...")
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list's output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) < 10 {
		t.Fatalf("go list found %d packages in %s: not the module", len(pkgs), dir)
	}
	return module, pkgs
}

// TestImportsRunDownwards: no package of the module imports a package
// of a layer above its own, or of its own layer elsewhere in the tree.
func TestImportsRunDownwards(t *testing.T) {
	module, pkgs := goList(t)
	seen := map[string]bool{}
	for _, p := range pkgs {
		from, ok := strings.CutPrefix(p.ImportPath, module+"/")
		if !ok {
			continue
		}
		if _, _, ok := layerOf(from); !ok {
			t.Errorf("package %s has no layer: add it to the layers in internal/layers/layers_test.go", from)
			continue
		}
		for _, imp := range p.Imports {
			to, ok := strings.CutPrefix(imp, module+"/")
			if !ok {
				continue
			}
			edge := from + " -> " + to
			why := allowed(from, to)
			if _, known := exceptions[edge]; known {
				seen[edge] = true
				if why == "" {
					t.Errorf("known exception %s is allowed by the layers: remove it from the exceptions", edge)
				}
				continue
			}
			if why != "" {
				t.Error(why)
			}
		}
	}
	for edge := range exceptions {
		if !seen[edge] {
			t.Errorf("known exception %s no longer occurs: remove it from the exceptions in internal/layers/layers_test.go", edge)
		}
	}
}

// TestLayersNameEachPackageOnce: an entry in two layers would give a
// package whichever layer comes first.
func TestLayersNameEachPackageOnce(t *testing.T) {
	where := map[string]int{}
	for i, l := range layers {
		for _, e := range l {
			if j, ok := where[e]; ok {
				t.Errorf("%s is in layers %d and %d", e, j, i)
			}
			where[e] = i
		}
	}
}
