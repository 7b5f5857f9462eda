// Package report is the one result model of every ipcplay lab and its
// renderers. A lab fills a Report: tables of typed columns (with units, and
// a priority that says which columns a narrow terminal drops first), plots
// (series for SVG), verdict lines that say what the numbers mean, notes,
// warnings, the lab's configuration, and the system it ran on. Write then
// renders it for the terminal (fitted to its width), as one JSON document
// (one schema for every lab, documented in docs/json.md), as SVG files, and
// as a self-contained HTML page.
//
// Cells are plain Go values whose column Unit says how to show them:
// time.Duration for durations (JSON: integer nanoseconds, keys ending in
// _ns), int64 or int for counts and bytes, uint64 for integers that may pass
// 2^53 (JSON: decimal strings, so no reader rounds them), float64 for rates
// and ratios, string, bool, and nil for "not applicable" (JSON null, "-" on
// the terminal).
package report
