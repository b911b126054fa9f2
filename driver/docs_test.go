package driver

import (
	"encoding/json"
	"flag"
	"fmt"
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
	return tableCells(string(b))
}

// tableCells returns, for each Markdown table row of text, its first two
// cells, trimmed.
func tableCells(text string) map[string]bool {
	cells := map[string]bool{}
	for _, line := range strings.Split(text, "\n") {
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

var update = flag.Bool("update", false, "rewrite the generated parts of docs/options.md from driver/optiontable.go")

// optionsDoc is the page of the options' reference.
var optionsDoc = filepath.Join("..", "docs", "options.md")

// TestDocsOptions: docs/options.md's option tables are what optionTable
// renders (go test ./driver -run TestDocsOptions -update writes them), and
// they have a row for every option, under its key or its Docker alias.
func TestDocsOptions(t *testing.T) {
	parts := optionDocParts()
	cells := tableCells(parts[0].text + parts[1].text)
	for _, opt := range optionTable {
		for _, k := range []string{opt.key, opt.alias} {
			if k != "" && !cells["`"+k+"`"] {
				t.Errorf("option %s of driver/optiontable.go has no row in the tables it renders", k)
			}
		}
	}
	b, err := os.ReadFile(optionsDoc)
	if err != nil {
		t.Fatalf("read %s: %v", optionsDoc, err)
	}
	doc := string(b)
	for _, p := range parts {
		if doc, err = replaceGenerated(doc, p.name, p.text); err != nil {
			t.Fatalf("docs/options.md: %v", err)
		}
	}
	switch {
	case *update && doc != string(b):
		if err := os.WriteFile(optionsDoc, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("wrote %s", optionsDoc)
	case doc != string(b):
		t.Errorf("docs/options.md's option tables are not what driver/optiontable.go renders: edit the table, then run go test ./driver -run TestDocsOptions -update")
	}
}

// docPart is a generated part of a page: the lines between the marker
// lines "<!-- BEGIN name: ... -->" and "<!-- END name -->".
type docPart struct{ name, text string }

// optionDocParts renders optionTable: the -o options, and the options
// Docker sends itself.
func optionDocParts() []docPart {
	var opts, docker strings.Builder
	opts.WriteString(tableRow("key", "Docker's alias", "modes", "values", "default", "meaning") + "|---|---|---|---|---|---|\n")
	docker.WriteString(tableRow("key", "flag", "meaning") + "|---|---|---|\n")
	for _, opt := range optionTable {
		if opt.flag != "" {
			docker.WriteString(tableRow(code(opt.key), opt.flag, opt.help))
			continue
		}
		modes := strings.Join(opt.modes, ", ")
		if opt.needs != "" {
			modes += " (with " + code(opt.needs) + ")"
		}
		opts.WriteString(tableRow(code(opt.key), code(opt.alias), modes, opt.values, opt.def, opt.help))
	}
	// Blank lines around a table keep the markers out of it.
	return []docPart{{"options", "\n" + opts.String() + "\n"}, {"docker-options", "\n" + docker.String() + "\n"}}
}

// tableRow is a Markdown table row of cells.
func tableRow(cells ...string) string {
	row := "|"
	for _, c := range cells {
		if c != "" {
			row += " " + c
		}
		row += " |"
	}
	return row + "\n"
}

func code(s string) string {
	if s == "" {
		return ""
	}
	return "`" + s + "`"
}

// replaceGenerated puts text between the markers of the part name in doc.
func replaceGenerated(doc, name, text string) (string, error) {
	begin, end := "<!-- BEGIN "+name+":", "<!-- END "+name+" -->\n"
	i := strings.Index(doc, begin)
	if i < 0 {
		return doc, fmt.Errorf("no marker line %q...", begin)
	}
	i += strings.Index(doc[i:], "\n") + 1
	j := strings.Index(doc[i:], end)
	if j < 0 {
		return doc, fmt.Errorf("no marker line %q after %q", end, begin)
	}
	return doc[:i] + text + doc[i+j:], nil
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
