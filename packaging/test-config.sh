#!/usr/bin/env bash
# test-config.sh CONFIG: prints the config.json of the end-to-end tests'
# plugin (make plugin-test): CONFIG (the production config.json) with the
# test seams' settings added, which `docker plugin set` can then change.
# The production plugin neither declares nor reads them (its binary is
# built without the testseam tag). Needs jq.
#
#   TEST_CRASH_AFTER  comma-separated request paths (/NetworkDriver.CreateNetwork,
#                     ...) after whose first commit the plugin dies before it
#                     answers, as a crash would
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: ${0##*/} CONFIG" >&2; exit 2; }
command -v jq >/dev/null || { echo "${0##*/}: needs jq (apt-get install jq)" >&2; exit 1; }
jq '.description = "(test build) " + .description
  | .env += [{
	"name": "TEST_CRASH_AFTER",
	"description": "Test seam of the test build: comma-separated request paths (/NetworkDriver.CreateNetwork, ...) after whose first commit the plugin dies before answering, as a crash would",
	"value": "",
	"settable": ["value"]
}]' "$1"
