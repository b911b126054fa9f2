// Package statusfile writes the JSON status files the plugin keeps in its
// state directory for the CLI (`dualstack prefixes`, `dualstack sticky`),
// which cannot open the state file the running plugin holds locked.
package statusfile

import (
	"encoding/json"
	"os"
	"path/filepath"
)

// Write writes v as indented JSON to dir/name, whole: to a temporary file
// first, then renamed over the old one, so a reader sees the old status or
// the new one, never a part.
func Write(dir, name string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	path := filepath.Join(dir, name)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
