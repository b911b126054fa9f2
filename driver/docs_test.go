package driver

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The docs under docs/ name every setting of config.json and every -o
// option, and the README stays short: a setting or an option added without
// its row in the docs fails here.

// readmeMaxLines is the most lines README.md may have (issue 22).
const readmeMaxLines = 250

// docTableCells returns, for each markdown table row of file, its first
// two cells, trimmed ("`bridge`", "`com.docker.network.bridge.name`").
func docTableCells(t *testing.T, file string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("read %s: %v", file, err)
	}
	cells := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "|") {
			continue
		}
		parts := strings.Split(line, "|")
		for i := 1; i < len(parts) && i <= 2; i++ {
			cells[strings.TrimSpace(parts[i])] = true
		}
	}
	return cells
}

func TestDocsSettings(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "config.json"))
	if err != nil {
		t.Fatalf("read config.json: %v", err)
	}
	var config struct {
		Env []struct {
			Name string `json:"name"`
		} `json:"env"`
	}
	if err := json.Unmarshal(b, &config); err != nil {
		t.Fatalf("config.json: %v", err)
	}
	if len(config.Env) == 0 {
		t.Fatal("config.json declares no env settings: the check would check nothing")
	}
	doc := filepath.Join("..", "docs", "operations.md")
	cells := docTableCells(t, doc)
	for _, e := range config.Env {
		if !cells["`"+e.Name+"`"] {
			t.Errorf("setting %s (config.json's env) is not documented: add a row `| `%s` | default | meaning |` to the settings table of docs/operations.md", e.Name, e.Name)
		}
	}
}

func TestDocsOptions(t *testing.T) {
	keys := []string{optMode}
	for _, opts := range modeListing {
		keys = append(keys, opts...)
	}
	if len(keys) < 2 {
		t.Fatal("modeOptions is empty: the check would check nothing")
	}
	cells := docTableCells(t, filepath.Join("..", "docs", "options.md"))
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k] {
			continue
		}
		seen[k] = true
		if !cells["`"+k+"`"] {
			t.Errorf("-o option %s (driver/optiontable.go) is not documented: add a row for it, or name it as the Docker alias of its short key, in the table of docs/options.md", k)
		}
	}
}

func TestDocsReadmeLength(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatalf("read README.md: %v", err)
	}
	if n := strings.Count(string(b), "\n"); n > readmeMaxLines {
		t.Errorf("README.md has %d lines, more than %d: move the detail to a page under docs/ and link it from the README's \"Where to go next\"", n, readmeMaxLines)
	}
}
