// Package doctor is "ipcplay doctor": what this machine offers the labs,
// and why a line or cell of a lab will be skipped here.
package doctor
