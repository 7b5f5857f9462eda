package rpclab

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"ipcplay/cmd/ipcplay/internal/base"
	"ipcplay/ipc"
)

// RPCCommand returns the rpc command: serve and call.
func RPCCommand() *base.Command {
	return &base.Command{
		UsageLine: "rpc <subcommand> [flags]",
		Short:     "authenticated msgpack RPC over a Unix socket: a demo server and a client",
		Long: `"rpc serve" listens on a Unix socket and answers calls to the demo methods until interrupted; "rpc call" calls one method on such a server and prints the result as JSON.

Both ends prove they hold a shared key (HMAC-SHA256 challenge and response in each direction) before any call is read, and the server admits only your own uid (SO_PEERCRED). The key comes from $` + KeyEnv + ` or from --key-file (mode 0600, at least 16 bytes), never from the command line, where any user could read it in /proc.

The demo methods:
` + methodList() + `

Examples:
  export ` + KeyEnv + `=$(head -c 24 /dev/urandom | base64)
  ipcplay rpc serve --socket /tmp/rpc/s.sock &
  ipcplay rpc call --socket /tmp/rpc/s.sock add 2 3`,
		Commands: []*base.Command{serveCommand(), callCommand()},
	}
}

// socketFlags declares --socket and --key-file.
func socketFlags(fs *flag.FlagSet, what string) (socket, keyFile *string) {
	socket = fs.String("socket", "", what+" (at most 107 bytes)")
	keyFile = fs.String("key-file", "", "`FILE` holding the shared key, mode 0600 (default: $"+KeyEnv+")")
	return socket, keyFile
}

// loadKeyAndPath checks --socket and loads the key; their mistakes are
// usage errors.
func loadKeyAndPath(socket, keyFile string) ([]byte, error) {
	if socket == "" {
		return nil, base.Usagef("--socket is required")
	}
	if err := CheckSocketPath(socket); err != nil {
		return nil, base.Usagef("--socket: %v", err)
	}
	key, err := LoadKey(keyFile)
	if err != nil {
		return nil, base.Usagef("%v", err)
	}
	return key, nil
}

func serveCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "serve --socket PATH [--key-file FILE]",
		Short:     "answer calls to the demo methods on a Unix socket until interrupted",
		Long: `Listens on PATH, whose directory must be private to you (mode 0700), and answers calls to the demo methods until interrupted (Ctrl-C or SIGTERM; exit status 130 or 143, as the labs). Rejected connections and broken calls are logged on stderr.

Examples:
  mkdir -m 700 /tmp/rpc
  ipcplay rpc serve --socket /tmp/rpc/s.sock
  ipcplay rpc serve --socket /tmp/rpc/s.sock --key-file ~/.ipcplay-key`,
	}
	socket, keyFile := socketFlags(&cmd.Flag, "path of the Unix socket to listen on; its directory must be mode 0700")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) > 0 {
			return base.Usagef("unexpected argument %q", args[0])
		}
		key, err := loadKeyAndPath(*socket, *keyFile)
		if err != nil {
			return err
		}
		cfg := ipc.ServerConfig{
			Auth: ipc.AuthConfig{Key: key},
			Logf: func(format string, args ...any) { fmt.Fprintf(env.Stderr, format+"\n", args...) },
		}
		var names []string
		for _, m := range DemoMethods {
			names = append(names, m.Name)
		}
		err = Serve(ctx, *socket, cfg, func() {
			fmt.Fprintf(env.Stdout, "rpc: serving %s on %s until interrupted\n", strings.Join(names, ", "), *socket)
		})
		if err != nil {
			return err
		}
		if _, ok := base.Interrupted(ctx); ok {
			// Stopped by a signal: exit 128+signal, as the labs do.
			return context.Cause(ctx)
		}
		return nil
	}
	return cmd
}

func callCommand() *base.Command {
	cmd := &base.Command{
		UsageLine: "call --socket PATH [--key-file FILE] METHOD [ARG...]",
		Short:     "call one demo method and print its result as JSON",
		Long: `Calls METHOD on the server at PATH and prints the result as JSON, or the remote error on stderr (exit status 1).

Each ARG that is JSON (a number, true, false, null, "a string", [..], {..}) is sent as that value; any other word is sent as a string.

Examples:
  ipcplay rpc call --socket /tmp/rpc/s.sock add 2 3 4
  ipcplay rpc call --socket /tmp/rpc/s.sock div 7 2
  ipcplay rpc call --socket /tmp/rpc/s.sock echo hi '{"a":[1,2.5]}'`,
	}
	socket, keyFile := socketFlags(&cmd.Flag, "path of the server's Unix socket")
	cmd.Run = func(ctx context.Context, env *base.Env, args []string) error {
		if len(args) == 0 {
			return base.Usagef("want a METHOD: %s", methodNames())
		}
		key, err := loadKeyAndPath(*socket, *keyFile)
		if err != nil {
			return err
		}
		result, err := Call(ctx, *socket, key, args[0], ParseArgs(args[1:]))
		if err != nil {
			var re *ipc.RemoteError
			if errors.As(err, &re) {
				return err // "remote add: ...", exit 1
			}
			return fmt.Errorf("call %s: %w", args[0], err)
		}
		b, err := json.Marshal(jsonable(result))
		if err != nil {
			return fmt.Errorf("call %s: result %v: %w", args[0], result, err)
		}
		fmt.Fprintf(env.Stdout, "%s\n", b)
		return nil
	}
	return cmd
}

func methodNames() string {
	var ns []string
	for _, m := range DemoMethods {
		ns = append(ns, m.Name)
	}
	return strings.Join(ns, ", ")
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
