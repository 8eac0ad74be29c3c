// DCUtR (hole punching) roles of the go-peer, for the network-namespace NAT topology of
// test/helpers/netns-nat.ts. go-libp2p's own holepunch service does the punching; these
// roles only set the stage and report what connection each side ended up on.
//
//	go-peer punch-dial  --relay MA --addr CIRCUIT [--listen MA] [--wait D] [--token T]
//	    go as the DCUtR responder ("A"): dials a TaskQueue service behind NAT through the
//	    relay, asks `status` over the relayed connection, waits for the service's punch
//	    to give a direct connection and asks `status` again (on the connection go picks).
//	go-peer punch-serve --relay MA [--listen MA]
//	    go as the DCUtR initiator ("B"): reserves on the relay and answers TaskQueue
//	    `status` over /mcp+p2p/1.0.0; whoever reaches it through the relay gets punched to.
//
// Both wait until go's holepunch service is running (it starts only once the node knows
// a public address of its own, learnt from the relay's identify) and print
// `holepunch_ready=true` before they take part.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/holepunch"
	"github.com/libp2p/go-libp2p/p2p/protocol/identify"
	rclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

const mcpProtocol = "/mcp+p2p/1.0.0"

func isCircuit(a ma.Multiaddr) bool {
	_, err := a.ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// What a connection is, as the tests assert it.
func connInfo(c network.Conn) map[string]any {
	return map[string]any{
		"peer_id": c.RemotePeer().String(), "remote": c.RemoteMultiaddr().String(),
		"relayed": isCircuit(c.RemoteMultiaddr()), "limited": c.Stat().Limited,
		"direction": c.Stat().Direction.String(),
	}
}

// A host that punches holes: TCP listener (go dials from its listen port, reuseport),
// relay client, holepunch service.
func newPunchHost(listen string) host.Host {
	return newHost(listen, libp2p.EnableRelay(), libp2p.EnableHolePunching(holepunch.DirectDialTimeout(10*time.Second)))
}

// Connects to the relay, then waits until go's holepunch service registered
// /libp2p/dcutr, which it does once identify showed it a public address of its own.
func connectRelayAndAwaitHolepunch(h host.Host, relay string) peer.AddrInfo {
	ai := addrInfo(relay)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := h.Connect(ctx, ai); err != nil {
		die("connect relay %s: %v", relay, err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !slices.Contains(h.Mux().Protocols(), holepunch.Protocol) {
		if time.Now().After(deadline) {
			die("holepunch service never started (no public address observed); addrs %v", h.Addrs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	emit("holepunch_ready", true)
	return ai
}

// One TaskQueue `status` as the original client asks it, on a new stream to p.
func mcpStatus(ctx context.Context, h host.Host, p peer.ID, token string) map[string]any {
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "taskqueue"), p, mcpProtocol)
	if err != nil {
		return map[string]any{"ok": false, "error": err.Error()}
	}
	defer s.Close()
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	out := connInfo(s.Conn())
	if err := writeFrame(s, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{}}); err != nil {
		out["ok"], out["error"] = false, err.Error()
		return out
	}
	if _, err := readFrame(s); err != nil {
		out["ok"], out["error"] = false, "initialize: "+err.Error()
		return out
	}
	arguments := map[string]any{"op": "status"}
	if token != "" {
		arguments["token"] = token
	}
	call := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": "task_queue.rpc", "arguments": arguments}}
	if err := writeFrame(s, call); err != nil {
		out["ok"], out["error"] = false, err.Error()
		return out
	}
	reply, err := readFrame(s)
	if err != nil {
		out["ok"], out["error"] = false, "tools/call: "+err.Error()
		return out
	}
	content, _ := reply["result"].(map[string]any)["content"].(map[string]any)
	out["ok"] = content["ok"] == true
	if content["error"] != nil {
		out["error"] = content["error"]
	}
	out["service_peer_id"] = content["peer_id"]
	return out
}

func directConn(h host.Host, p peer.ID) network.Conn {
	for _, c := range h.Network().ConnsToPeer(p) {
		if !isCircuit(c.RemoteMultiaddr()) {
			return c
		}
	}
	return nil
}

func runPunchDial(args []string) {
	fs := flag.NewFlagSet("punch-dial", flag.ExitOnError)
	listen := fs.String("listen", "/ip4/0.0.0.0/tcp/0", "")
	relay := fs.String("relay", "", "relay multiaddr")
	addr := fs.String("addr", "", "the service's /p2p-circuit/ address")
	wait := fs.Duration("wait", 20*time.Second, "how long to wait for the direct connection")
	token := fs.String("token", "", "the service's token, sent with each call")
	_ = fs.Parse(args)
	h := newPunchHost(*listen)
	connectRelayAndAwaitHolepunch(h, *relay)
	target := addrInfo(*addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := h.Connect(ctx, target); err != nil {
		die("connect %s: %v", *addr, err)
	}
	emit("first", mcpStatus(ctx, h, target.ID, *token))
	deadline := time.Now().Add(*wait)
	for directConn(h, target.ID) == nil && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if c := directConn(h, target.ID); c != nil {
		emit("direct", map[string]any{"ok": true, "conn": connInfo(c)})
	} else {
		emit("direct", map[string]any{"ok": false})
	}
	emit("second", mcpStatus(ctx, h, target.ID, *token))
	conns := []map[string]any{}
	for _, c := range h.Network().ConnsToPeer(target.ID) {
		conns = append(conns, connInfo(c))
	}
	emit("conns", conns)
}

// Answers `initialize` and TaskQueue `status` (any other op: unknown_op), any number of
// calls per stream, and reports the connection each call came on.
func serveMcpStatus(h host.Host) {
	h.SetStreamHandler(mcpProtocol, func(s network.Stream) {
		defer s.Close()
		for {
			msg, err := readFrame(s)
			if err != nil {
				return
			}
			var result any
			switch msg["method"] {
			case "initialize":
				result = map[string]any{"protocolVersion": "2024-11-05", "serverInfo": map[string]any{"name": "go-peer"}, "server": map[string]any{"peer_id": h.ID().String()}}
			case "tools/call":
				params, _ := msg["params"].(map[string]any)
				arguments, _ := params["arguments"].(map[string]any)
				info := connInfo(s.Conn())
				info["op"] = arguments["op"]
				emit("served", info)
				if arguments["op"] == "status" {
					result = map[string]any{"content": map[string]any{"ok": true, "peer_id": h.ID().String(), "session": ""}}
				} else {
					result = map[string]any{"content": map[string]any{"ok": false, "error": "unknown_op"}}
				}
			default:
				result = map[string]any{}
			}
			if err := writeFrame(s, map[string]any{"jsonrpc": "2.0", "id": msg["id"], "result": result}); err != nil {
				return
			}
		}
	})
}

func runPunchServe(args []string) {
	fs := flag.NewFlagSet("punch-serve", flag.ExitOnError)
	listen := fs.String("listen", "/ip4/0.0.0.0/tcp/0", "")
	relay := fs.String("relay", "", "relay multiaddr")
	_ = fs.Parse(args)
	h := newPunchHost(*listen)
	serveMcpStatus(h)
	relayInfo := connectRelayAndAwaitHolepunch(h, *relay)
	// Connections of peers other than the relay, first of each kind opened and closed.
	var mu sync.Mutex
	seen := map[string]bool{}
	once := func(key string, c network.Conn, info ...map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if c.RemotePeer() != relayInfo.ID && !seen[key] {
			seen[key] = true
			if len(info) == 0 {
				info = append(info, connInfo(c))
			}
			emit(key, info[0])
		}
	}
	ids := h.(interface{ IDService() identify.IDService }).IDService()
	h.Network().Notify(&network.NotifyBundle{
		ConnectedF: func(_ network.Network, c network.Conn) {
			if isCircuit(c.RemoteMultiaddr()) {
				once("relayed_open", c)
				return
			}
			once("direct_open", c)
			// Identify on the punched connection shows that it carries streams (a muxer
			// role clash closes it here: "both yamux endpoints are clients").
			go func() {
				select {
				case <-ids.IdentifyWait(c):
				case <-time.After(10 * time.Second):
				}
				time.Sleep(500 * time.Millisecond)
				info := connInfo(c)
				info["open_after_identify"] = !c.IsClosed()
				once("direct_identified", c, info)
			}()
		},
		DisconnectedF: func(_ network.Network, c network.Conn) {
			if isCircuit(c.RemoteMultiaddr()) {
				once("relayed_closed", c)
			} else {
				once("direct_closed", c)
			}
		},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	rsvp, err := rclient.Reserve(ctx, h, relayInfo)
	cancel()
	if err != nil {
		emit("reservation", map[string]any{"ok": false, "error": err.Error()})
		os.Exit(1)
	}
	circuit := fmt.Sprintf("%s/p2p-circuit/p2p/%s", *relay, h.ID())
	emit("reservation", map[string]any{"ok": true, "expires_in_s": int(time.Until(rsvp.Expiration).Seconds()), "circuit": circuit})
	waitForSignal()
}
