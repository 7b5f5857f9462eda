//go:build !race

package shm

const raceBuild = false
