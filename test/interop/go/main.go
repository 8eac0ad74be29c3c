// go-peer: go-libp2p (the reference implementation, pinned in go.mod) as a test peer for
// taskqueue-p2p's interop suite. One binary, one role per run:
//
//	go-peer dht      [--listen MA] [--protocol-prefix P] [--bootstrap MA,...] [--provide NS] [--find NS]
//	go-peer relay    [--listen MA]                      circuit relay v2 HOP server
//	go-peer reserve  --relay MA                         reserve a slot, print the circuit address, stay reachable
//	go-peer mcp-status --addr MA                        one TaskQueue `status` over /mcp+p2p/1.0.0 (relayed allowed)
//	go-peer autonat-server [--listen MA]                AutoNAT v1 server (dials back public addresses only)
//	go-peer autonat-client --peer MA [--listen MA]      asks --peer (AutoNAT v1) and prints its verdict
//	go-peer punch-dial / punch-serve                    DCUtR in the NAT topology (holepunch.go)
//
// Every role prints `peer_id=` and `multiaddr=` lines once it listens, then `key=value`
// lines for what it found (JSON values), and runs until SIGTERM unless it is a one-shot.
package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	"github.com/libp2p/go-libp2p/p2p/host/autonat"
	"github.com/libp2p/go-libp2p/p2p/muxer/yamux"
	rclient "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	relayv2 "github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/relay"
	"github.com/libp2p/go-libp2p/p2p/security/noise"
	"github.com/libp2p/go-libp2p/p2p/transport/tcp"
	mh "github.com/multiformats/go-multihash"
)

func die(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "go-peer: "+format+"\n", args...)
	os.Exit(1)
}

func emit(key string, value any) {
	b, _ := json.Marshal(value)
	fmt.Printf("%s=%s\n", key, b)
}

// The stack every TaskQueue node speaks: TCP + Noise + Yamux (wire-protocol.md §1).
func baseOptions(listen string) []libp2p.Option {
	opts := []libp2p.Option{
		libp2p.Transport(tcp.NewTCPTransport),
		libp2p.Security(noise.ID, noise.New),
		libp2p.Muxer(yamux.ID, yamux.DefaultTransport),
		libp2p.NoListenAddrs,
	}
	if listen != "" {
		opts = append(opts, libp2p.ListenAddrStrings(listen))
	}
	return opts
}

func newHost(listen string, extra ...libp2p.Option) host.Host {
	h, err := libp2p.New(append(baseOptions(listen), extra...)...)
	if err != nil {
		die("host: %v", err)
	}
	fmt.Printf("peer_id=%s\n", h.ID())
	for _, a := range h.Addrs() {
		fmt.Printf("multiaddr=%s/p2p/%s\n", a, h.ID())
		break
	}
	return h
}

func addrInfo(s string) peer.AddrInfo {
	ai, err := peer.AddrInfoFromString(s)
	if err != nil {
		die("bad multiaddr %q: %v", s, err)
	}
	return *ai
}

func waitForSignal() {
	ch := make(chan os.Signal, 1)
	signal.Notify(ch, syscall.SIGTERM, syscall.SIGINT)
	<-ch
}

// The go-libp2p convention for a namespace key (discovery.md §6): CIDv1(raw, sha2-256(ns)).
func namespaceCid(ns string) cid.Cid {
	sum, _ := mh.Sum([]byte(ns), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, sum)
}

func runDHT(args []string) {
	fs := flag.NewFlagSet("dht", flag.ExitOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "")
	prefix := fs.String("protocol-prefix", "/taskqueue", "the DHT protocol is <prefix>/kad/1.0.0")
	bootstrap := fs.String("bootstrap", "", "comma-separated multiaddrs")
	provide := fs.String("provide", "", "namespace to provide")
	find := fs.String("find", "", "namespace to find providers of")
	_ = fs.Parse(args)
	ctx := context.Background()
	h := newHost(*listen)
	var seeds []peer.AddrInfo
	for _, b := range strings.Split(*bootstrap, ",") {
		if b != "" {
			seeds = append(seeds, addrInfo(b))
		}
	}
	d, err := dht.New(h, dht.Mode(dht.ModeServer), dht.ProtocolPrefix(protocol.ID(*prefix)), dht.BootstrapPeers(seeds...),
		// Loopback and namespace addresses are what test swarms use.
		dht.AddressFilter(nil), dht.RoutingTableFilter(nil), dht.QueryFilter(nil))
	if err != nil {
		die("dht: %v", err)
	}
	for _, s := range seeds {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := h.Connect(cctx, s); err != nil {
			fmt.Fprintf(os.Stderr, "go-peer: connect %s: %v\n", s.ID, err)
		}
		cancel()
	}
	// Identify must finish before a peer enters the routing table.
	for i := 0; i < 100 && len(seeds) > 0 && d.RoutingTable().Size() == 0; i++ {
		time.Sleep(100 * time.Millisecond)
	}
	emit("routing_table", d.RoutingTable().Size())
	if *provide != "" {
		c := namespaceCid(*provide)
		var perr error
		for attempt := 0; attempt < 20; attempt++ {
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			perr = d.Provide(cctx, c, true)
			cancel()
			if perr == nil {
				break
			}
			time.Sleep(500 * time.Millisecond)
		}
		if perr != nil {
			emit("provided", map[string]any{"ok": false, "cid": c.String(), "error": perr.Error()})
		} else {
			emit("provided", map[string]any{"ok": true, "cid": c.String()})
		}
	}
	if *find != "" {
		c := namespaceCid(*find)
		deadline := time.Now().Add(60 * time.Second)
		found := false
		for !found && time.Now().Before(deadline) {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			for p := range d.FindProvidersAsync(cctx, c, 20) {
				if p.ID == h.ID() {
					continue
				}
				addrs := []string{}
				for _, a := range p.Addrs {
					addrs = append(addrs, a.String())
				}
				emit("provider", map[string]any{"peer_id": p.ID.String(), "addrs": addrs, "cid": c.String()})
				found = true
			}
			cancel()
			if !found {
				time.Sleep(500 * time.Millisecond)
			}
		}
		if !found {
			emit("provider", map[string]any{"error": "no_providers", "cid": c.String()})
		}
	}
	waitForSignal()
}

func runRelay(args []string) {
	fs := flag.NewFlagSet("relay", flag.ExitOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "")
	_ = fs.Parse(args)
	h := newHost(*listen, libp2p.ForceReachabilityPublic(), libp2p.EnableRelayService(relayv2.WithInfiniteLimits()))
	_ = h
	waitForSignal()
}

// A listen-less host (relay client enabled) connected to addr, with 30 s for what follows.
func connectedClient(addr string) (host.Host, peer.AddrInfo, context.Context, context.CancelFunc) {
	h := newHost("", libp2p.EnableRelay())
	ai := addrInfo(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	if err := h.Connect(ctx, ai); err != nil {
		die("connect %s: %v", addr, err)
	}
	return h, ai, ctx, cancel
}

func runReserve(args []string) {
	fs := flag.NewFlagSet("reserve", flag.ExitOnError)
	relayAddr := fs.String("relay", "", "relay multiaddr")
	_ = fs.Parse(args)
	h, ai, cctx, cancel := connectedClient(*relayAddr)
	defer cancel()
	rsvp, err := rclient.Reserve(cctx, h, ai)
	if err != nil {
		emit("reservation", map[string]any{"ok": false, "error": err.Error()})
		os.Exit(1)
	}
	circuit := fmt.Sprintf("%s/p2p-circuit/p2p/%s", *relayAddr, h.ID())
	emit("reservation", map[string]any{"ok": true, "expires_in_s": int(time.Until(rsvp.Expiration).Seconds()), "circuit": circuit})
	// Anything that reaches us through the relay can check that it did.
	h.SetStreamHandler("/ipfs/ping/1.0.0", func(s network.Stream) {
		defer s.Close()
		buf := make([]byte, 32)
		for {
			if _, err := io.ReadFull(s, buf); err != nil {
				return
			}
			if _, err := s.Write(buf); err != nil {
				return
			}
		}
	})
	waitForSignal()
}

func writeFrame(w io.Writer, v any) error {
	b, _ := json.Marshal(v)
	hdr := make([]byte, 4)
	binary.BigEndian.PutUint32(hdr, uint32(len(b)))
	_, err := w.Write(append(hdr, b...))
	return err
}

func readFrame(r io.Reader) (map[string]any, error) {
	hdr := make([]byte, 4)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(hdr)
	if n > 16<<20 {
		return nil, fmt.Errorf("frame of %d bytes", n)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	var out map[string]any
	return out, json.Unmarshal(body, &out)
}

// One TaskQueue status call as the original client makes it: initialize, tools/call, ids 1.
func runMcpStatus(args []string) {
	fs := flag.NewFlagSet("mcp-status", flag.ExitOnError)
	addr := fs.String("addr", "", "service multiaddr (a /p2p-circuit/ address goes through the relay)")
	_ = fs.Parse(args)
	h, ai, ctx, cancel := connectedClient(*addr)
	defer cancel()
	s, err := h.NewStream(network.WithAllowLimitedConn(ctx, "taskqueue"), ai.ID, "/mcp+p2p/1.0.0")
	if err != nil {
		die("stream: %v", err)
	}
	_ = s.SetDeadline(time.Now().Add(20 * time.Second))
	if err := writeFrame(s, map[string]any{"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": map[string]any{}}); err != nil {
		die("write: %v", err)
	}
	if _, err := readFrame(s); err != nil {
		die("initialize: %v", err)
	}
	call := map[string]any{"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": map[string]any{"name": "task_queue.rpc", "arguments": map[string]any{"op": "status"}}}
	if err := writeFrame(s, call); err != nil {
		die("write: %v", err)
	}
	reply, err := readFrame(s)
	if err != nil {
		die("tools/call: %v", err)
	}
	limited := false
	for _, c := range h.Network().ConnsToPeer(ai.ID) {
		limited = limited || c.Stat().Limited
	}
	emit("reply", reply)
	emit("limited", limited)
	_ = s.Close()
}

func reachabilityName(r network.Reachability) string {
	switch r {
	case network.ReachabilityPublic:
		return "public"
	case network.ReachabilityPrivate:
		return "private"
	default:
		return "unknown"
	}
}

func runAutonatServer(args []string) {
	fs := flag.NewFlagSet("autonat-server", flag.ExitOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "")
	_ = fs.Parse(args)
	h := newHost(*listen, libp2p.ForceReachabilityPublic(), libp2p.EnableNATService(), libp2p.AutoNATServiceRateLimit(0, 100, time.Minute))
	_ = h
	waitForSignal()
}

func runAutonatClient(args []string) {
	fs := flag.NewFlagSet("autonat-client", flag.ExitOnError)
	listen := fs.String("listen", "/ip4/127.0.0.1/tcp/0", "")
	server := fs.String("peer", "", "AutoNAT server multiaddr")
	timeout := fs.Duration("timeout", 60*time.Second, "")
	_ = fs.Parse(args)
	h := newHost(*listen)
	an, err := autonat.New(h, autonat.WithSchedule(time.Second, 5*time.Second), autonat.WithoutStartupDelay(), autonat.WithoutThrottling())
	if err != nil {
		die("autonat: %v", err)
	}
	sub, err := h.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		die("subscribe: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := h.Connect(ctx, addrInfo(*server)); err != nil {
		die("connect: %v", err)
	}
	for {
		select {
		case e := <-sub.Out():
			r := e.(event.EvtLocalReachabilityChanged).Reachability
			emit("reachability", reachabilityName(r))
			if r != network.ReachabilityUnknown {
				_ = an.Close()
				return
			}
		case <-ctx.Done():
			emit("reachability", reachabilityName(an.Status()))
			return
		}
	}
}

func main() {
	if len(os.Args) < 2 {
		die("usage: go-peer dht|relay|reserve|mcp-status|autonat-server|autonat-client|punch-dial|punch-serve [flags]")
	}
	switch os.Args[1] {
	case "dht":
		runDHT(os.Args[2:])
	case "relay":
		runRelay(os.Args[2:])
	case "reserve":
		runReserve(os.Args[2:])
	case "mcp-status":
		runMcpStatus(os.Args[2:])
	case "autonat-server":
		runAutonatServer(os.Args[2:])
	case "autonat-client":
		runAutonatClient(os.Args[2:])
	case "punch-dial":
		runPunchDial(os.Args[2:])
	case "punch-serve":
		runPunchServe(os.Args[2:])
	default:
		die("unknown role %q", os.Args[1])
	}
}
