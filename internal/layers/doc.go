// Package layers keeps dualstack's imports running downwards: its test
// lists every package of the module with go list and fails when one
// imports a package of a layer above its own (see layers_test.go for the
// layers, and docs/architecture.md). It has no code of its own.
package layers
