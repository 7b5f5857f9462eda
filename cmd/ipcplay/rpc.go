//go:build linux

package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"ipcplay/cmd/ipcplay/internal/rpclab"
	"ipcplay/ipc"
)

var rpcCommand = &command{
	name:  "rpc",
	short: "authenticated msgpack RPC over a Unix socket: a demo server and a client",
	run:   runRPC,
}

const rpcUsage = "rpc serve --socket PATH [--key-file FILE]\n       ipcplay rpc call --socket PATH [--key-file FILE] METHOD [ARGS...]"

var rpcLong = `
"rpc serve" listens on PATH, whose directory must be private to you
(mode 0700), and answers calls to the demo methods until interrupted.
"rpc call" calls METHOD on such a server and prints the result as JSON, or
the remote error (exit status 1).

Both ends prove they hold a shared key (HMAC-SHA256 challenge and response
in each direction) before any call is read, and the server admits only
your own uid (SO_PEERCRED). The key comes from $` + rpclab.KeyEnv + ` or from
--key-file (mode 0600, at least 16 bytes), never from the command line,
where any user could read it in /proc.

Each ARG that is JSON (a number, true, false, null, "a string", [..], {..})
is sent as that value; any other word is sent as a string.

methods:
` + demoMethods()

func demoMethods() string {
	var b strings.Builder
	for _, m := range rpclab.DemoMethods {
		fmt.Fprintf(&b, "  %s\n", m.Help)
	}
	return b.String()
}

func runRPC(ctx context.Context, env *env, args []string) error {
	return runSubcommand(ctx, env, args, rpcUsage, rpcLong,
		subcommand{"serve", runRPCServe},
		subcommand{"call", runRPCCall})
}

func runRPCServe(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "rpc serve", rpcUsage, rpcLong)
	socket := fs.String("socket", "", "path of the Unix socket to listen on (its directory must be mode 0700)")
	keyFile := fs.String("key-file", "", "file holding the shared key (default: $"+rpclab.KeyEnv+")")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if *socket == "" {
		return usagef("serve: --socket is required")
	}
	if len(pos) > 0 {
		return usagef("serve: unexpected argument %q", pos[0])
	}
	key, err := rpclab.LoadKey(*keyFile)
	if err != nil {
		return usagef("%v", err)
	}
	cfg := ipc.ServerConfig{
		Auth: ipc.AuthConfig{Key: key},
		Logf: func(format string, args ...any) { fmt.Fprintf(env.stderr, format+"\n", args...) },
	}
	var names []string
	for _, m := range rpclab.DemoMethods {
		names = append(names, m.Name)
	}
	return rpclab.Serve(ctx, *socket, cfg, func() {
		fmt.Fprintf(env.stdout, "rpc: serving %s on %s until interrupted\n", strings.Join(names, ", "), *socket)
	})
}

func runRPCCall(ctx context.Context, env *env, args []string) error {
	fs := newFlagSet(env, "rpc call", rpcUsage, rpcLong)
	socket := fs.String("socket", "", "path of the server's Unix socket")
	keyFile := fs.String("key-file", "", "file holding the shared key (default: $"+rpclab.KeyEnv+")")
	pos, err := parseFlags(env, fs, args)
	if err != nil {
		return err
	}
	if *socket == "" {
		return usagef("call: --socket is required")
	}
	if len(pos) == 0 {
		return usagef("call: want a METHOD")
	}
	key, err := rpclab.LoadKey(*keyFile)
	if err != nil {
		return usagef("%v", err)
	}
	result, err := rpclab.Call(ctx, *socket, key, pos[0], rpclab.ParseArgs(pos[1:]))
	if err != nil {
		var re *ipc.RemoteError
		if errors.As(err, &re) {
			return err // "remote add: ...", exit 1
		}
		return fmt.Errorf("call %s: %w", pos[0], err)
	}
	b, err := json.Marshal(jsonable(result))
	if err != nil {
		fmt.Fprintf(env.stdout, "%v\n", result)
		return nil
	}
	fmt.Fprintf(env.stdout, "%s\n", b)
	return nil
}

// jsonable turns what msgpack decoded into something encoding/json takes:
// maps with non-string keys get their keys printed, bytes become base64.
func jsonable(v any) any {
	switch v := v.(type) {
	case []any:
		out := make([]any, len(v))
		for i := range v {
			out[i] = jsonable(v[i])
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[k] = jsonable(x)
		}
		return out
	case map[any]any:
		out := make(map[string]any, len(v))
		for k, x := range v {
			out[fmt.Sprint(k)] = jsonable(x)
		}
		return out
	case []byte:
		return base64.StdEncoding.EncodeToString(v)
	}
	return v
}
