// Package benchlab is the "ipcplay bench" lab: the latency and bandwidth
// map of IPC mechanisms between two processes, measured in the same run as
// the goroutine mechanisms of the same shape, and "ipcplay compare", which
// sets two saved runs side by side.
//
// One harness serves the lab and the go test benchmarks. A cell is one
// mechanism, one implementation (process or goroutine) and one message
// size. Its echo end is a re-exec'd child ([EchoRole]) or a goroutine; both
// run the same loop ([serve]) over an [End], the one interface every
// mechanism implements: Send one message, Recv one message. The measuring
// side warms up, picks the iteration count that fills the time asked for,
// times every round trip into a log-linear [Hist], then measures one-way
// throughput in acknowledged batches.
//
// The figures are only as quiet as the machine: nothing here asserts on
// time, and the report says when the machine was busy.
package benchlab
