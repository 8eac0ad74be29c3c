//! rust-peer: rust-libp2p (pinned by Cargo.lock) as a test peer for taskqueue-p2p's interop
//! suite: TCP + Noise + Yamux, identify, and TaskQueue's MCP++ framing on /mcp+p2p/1.0.0
//! (u32 big-endian length + JSON, wire-protocol.md). One role per run:
//!
//!   rust-peer call  --addr MA [--ops JSON] [--token T]   identify the service, then one
//!                   MCP++ stream: `initialize` and one `tools/call` per op (default: status)
//!   rust-peer serve [--listen MA]                         answers `initialize` and TaskQueue
//!                   `status` (any other op: unknown_op) on any number of streams
//!   rust-peer rendezvous-point [--listen MA]              a rendezvous point (/rendezvous/1.0.0)
//!   rust-peer rendezvous-client --point MA --ns NS [--register] [--discover] [--serve]
//!                   registers its (signed) record and/or discovers, then discovers again
//!                   with the cookie it got; with --serve it also answers MCP++ as `serve`
//!                   does and stays up until SIGTERM
//!   rust-peer dht [--protocol-prefix P] [--bootstrap MA,...] [--provide NS] [--find NS]
//!                   Kademlia (server mode) on <P>/kad/1.0.0: provides and/or finds the
//!                   providers of CIDv1(raw, sha2-256(NS)) (discovery.md §6), as go-peer dht does
//!   rust-peer relay [--listen MA]                         a circuit relay v2 (HOP) server
//!   rust-peer reserve --relay MA                          reserves a slot on a relay v2, stays up
//!   rust-peer autonat-server [--listen MA]                AutoNAT v1 server (dials back any IP)
//!   rust-peer autonat-client --peer MA [--listen MA] [--timeout 90s]
//!                   asks --peer (AutoNAT v1) and prints its verdict: the first change away
//!                   from unknown, or the status at --timeout
//!   rust-peer mcp-status --addr MA                        one `status` over MCP++ as the original
//!                   client sends it (ids 1), through a /p2p-circuit address when given one
//!
//! Output: `peer_id=` and `multiaddr=` once listening, then `key=<JSON>` lines
//! (`identify=` per identified peer, `replies=` / `served=`). `call` exits when done.
use std::{error::Error, io, time::Duration};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    autonat, identify, kad, multiaddr::Protocol, noise, ping, relay, rendezvous,
    swarm::{behaviour::toggle::Toggle, NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, Stream, StreamProtocol, Swarm,
};
use sha2::{Digest, Sha256};
use serde_json::{json, Value};

const MCP: StreamProtocol = StreamProtocol::new("/mcp+p2p/1.0.0");
const MAX_FRAME: usize = 16 << 20;

/// Every role has identify, ping (wire-protocol.md §1 requires both; js-libp2p's kad-dht pings
/// a peer before it admits it to its routing table), streams and a rendezvous client (outbound
/// only: it advertises nothing); the servers are on only in their own role, so no other role
/// advertises them.
#[derive(NetworkBehaviour)]
struct Behaviour {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
    stream: libp2p_stream::Behaviour,
    rendezvous_client: rendezvous::client::Behaviour,
    rendezvous_point: Toggle<rendezvous::server::Behaviour>,
    kad: Toggle<kad::Behaviour<kad::store::MemoryStore>>,
    relay: Toggle<relay::Behaviour>,
    relay_client: Toggle<relay::client::Behaviour>,
    autonat: Toggle<autonat::Behaviour>,
}

fn emit(key: &str, value: &Value) {
    println!("{key}={value}");
}

fn arg(args: &[String], name: &str) -> Option<String> {
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1).cloned())
}

/// The peer an address leads to: its last /p2p (a circuit address names the relay first).
fn peer_of(ma: &Multiaddr) -> Option<PeerId> {
    ma.iter().filter_map(|p| if let Protocol::P2p(id) = p { Some(id) } else { None }).last()
}

fn is_circuit(ma: &Multiaddr) -> bool {
    ma.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// Prints the first listen address (the tests read it) and makes it the external address:
/// loopback is what the tests use, and records (rendezvous, relay reservations) need one.
fn on_listen(swarm: &mut Swarm<Behaviour>, address: &Multiaddr, announced: &mut bool) {
    if !*announced {
        *announced = true;
        println!("multiaddr={address}/p2p/{}", swarm.local_peer_id());
        swarm.add_external_address(address.clone());
    }
}

async fn write_frame(s: &mut Stream, v: &Value) -> io::Result<()> {
    let body = serde_json::to_vec(v)?;
    let mut buf = (body.len() as u32).to_be_bytes().to_vec();
    buf.extend_from_slice(&body);
    s.write_all(&buf).await?;
    s.flush().await
}

async fn read_frame(s: &mut Stream) -> io::Result<Value> {
    let mut hdr = [0u8; 4];
    s.read_exact(&mut hdr).await?;
    let n = u32::from_be_bytes(hdr) as usize;
    if n > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, format!("frame of {n} bytes")));
    }
    let mut body = vec![0u8; n];
    s.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn identify_json(peer: &PeerId, info: &identify::Info) -> Value {
    json!({
        "peer_id": peer.to_string(),
        "agent_version": info.agent_version,
        "protocol_version": info.protocol_version,
        "protocols": info.protocols.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "listen_addrs": info.listen_addrs.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "observed_addr": info.observed_addr.to_string(),
    })
}

/// One MCP++ session as the original client opens it: `initialize`, then the calls.
async fn call(control: &mut libp2p_stream::Control, peer: PeerId, ops: Vec<Value>, token: Option<String>) -> Result<Vec<Value>, Box<dyn Error>> {
    let mut s = tokio::time::timeout(Duration::from_secs(30), control.open_stream(peer, MCP)).await?.map_err(|e| e.to_string())?;
    write_frame(&mut s, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})).await?;
    let init = read_frame(&mut s).await?;
    if init.get("result").is_none() {
        return Err(format!("initialize failed: {init}").into());
    }
    let mut replies = Vec::new();
    for (i, mut op) in ops.into_iter().enumerate() {
        if let (Some(t), Some(obj)) = (&token, op.as_object_mut()) {
            obj.insert("token".into(), json!(t));
        }
        let id = i + 2;
        write_frame(&mut s, &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": "task_queue.rpc", "arguments": op}})).await?;
        let reply = read_frame(&mut s).await?;
        if reply["id"] != json!(id) {
            return Err(format!("reply id {} to request {id}", reply["id"]).into());
        }
        replies.push(reply["result"]["content"].clone());
    }
    s.close().await?;
    Ok(replies)
}

/// Answers `initialize` and `status` on one stream until the peer closes it.
async fn serve_stream(me: PeerId, peer: PeerId, mut s: Stream) {
    while let Ok(msg) = read_frame(&mut s).await {
        let result = match msg["method"].as_str() {
            Some("initialize") => json!({"protocolVersion": "2024-11-05", "serverInfo": {"name": "rust-peer"}, "server": {"peer_id": me.to_string()}}),
            Some("tools/call") => {
                let op = msg["params"]["arguments"]["op"].clone();
                emit("served", &json!({"peer_id": peer.to_string(), "op": op}));
                if op == json!("status") {
                    json!({"content": {"ok": true, "peer_id": me.to_string(), "session": ""}})
                } else {
                    json!({"content": {"ok": false, "error": "unknown_op"}})
                }
            }
            _ => json!({}),
        };
        if write_frame(&mut s, &json!({"jsonrpc": "2.0", "id": msg["id"], "result": result})).await.is_err() {
            return;
        }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let role = args.get(1).cloned().unwrap_or_default();
    let kad_protocol = StreamProtocol::try_from_owned(format!("{}/kad/1.0.0", arg(&args, "--protocol-prefix").unwrap_or_else(|| "/taskqueue".into())))?;
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(tcp::Config::default(), noise::Config::new, yamux::Config::default)?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|key, relay_client| {
            let me = key.public().to_peer_id();
            let kad = (role == "dht").then(|| {
                let mut cfg = kad::Config::new(kad_protocol);
                cfg.set_query_timeout(Duration::from_secs(20));
                let mut k = kad::Behaviour::with_config(me, kad::store::MemoryStore::new(me), cfg);
                // Server mode from the start: loopback addresses are never "confirmed".
                k.set_mode(Some(kad::Mode::Server));
                k
            });
            Behaviour {
                identify: identify::Behaviour::new(identify::Config::new("ipfs/0.1.0".into(), key.public()).with_agent_version("rust-peer/rust-libp2p-0.56".into())),
                ping: ping::Behaviour::default(),
                stream: libp2p_stream::Behaviour::new(),
                rendezvous_client: rendezvous::client::Behaviour::new(key.clone()),
                rendezvous_point: Toggle::from((role == "rendezvous-point").then(|| rendezvous::server::Behaviour::new(rendezvous::server::Config::default()))),
                kad: Toggle::from(kad),
                relay: Toggle::from((role == "relay").then(|| relay::Behaviour::new(me, relay::Config::default()))),
                relay_client: Toggle::from(matches!(role.as_str(), "reserve" | "mcp-status").then_some(relay_client)),
                autonat: Toggle::from(role.starts_with("autonat-").then(|| {
                    autonat::Behaviour::new(me, autonat::Config {
                        // Test networks are private ranges: dial them back too.
                        only_global_ips: false,
                        boot_delay: Duration::from_secs(1),
                        retry_interval: Duration::from_secs(5),
                        throttle_server_period: Duration::ZERO,
                        ..Default::default()
                    })
                })),
            }
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build();
    let me = *swarm.local_peer_id();
    println!("peer_id={me}");
    let mut control = swarm.behaviour().stream.new_control();
    let listen: Multiaddr = arg(&args, "--listen").unwrap_or_else(|| "/ip4/127.0.0.1/tcp/0".into()).parse()?;
    swarm.listen_on(listen)?;
    let mut target: Option<PeerId> = None;
    if let Some(addr) = arg(&args, "--addr") {
        let ma: Multiaddr = addr.parse()?;
        target = peer_of(&ma);
        swarm.dial(ma)?;
    }
    match role.as_str() {
        "rendezvous-point" | "rendezvous-client" => return run_rendezvous(swarm, &role, &args).await,
        "dht" => return run_dht(swarm, &args).await,
        "relay" => return run_relay(swarm).await,
        "reserve" => return run_reserve(swarm, &args).await,
        "autonat-server" | "autonat-client" => return run_autonat(swarm, &role, &args).await,
        "mcp-status" => return run_mcp_status(swarm, target.ok_or("mcp-status needs --addr with /p2p/<peer id>")?).await,
        _ => {}
    }
    let (identified, mut identifications) = tokio::sync::mpsc::unbounded_channel::<(PeerId, Value)>();
    tokio::spawn(async move {
        let mut announced = false;
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::NewListenAddr { address, .. } => on_listen(&mut swarm, &address, &mut announced),
                SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received { peer_id, info, .. })) => {
                    let _ = identified.send((peer_id, identify_json(&peer_id, &info)));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => eprintln!("rust-peer: dial failed: {error}"),
                _ => {}
            }
        }
    });

    match role.as_str() {
        "call" => {
            let peer = target.ok_or("call needs --addr with /p2p/<peer id>")?;
            let ops: Vec<Value> = serde_json::from_str(&arg(&args, "--ops").unwrap_or_else(|| r#"[{"op":"status"}]"#.into()))?;
            let wait_identify = async {
                while let Some((p, v)) = identifications.recv().await {
                    if p == peer {
                        return v;
                    }
                }
                json!({"error": "swarm ended"})
            };
            let id = tokio::time::timeout(Duration::from_secs(30), wait_identify).await.unwrap_or_else(|_| json!({"error": "no identify in 30 s"}));
            emit("identify", &id);
            match call(&mut control, peer, ops, arg(&args, "--token")).await {
                Ok(replies) => emit("replies", &json!(replies)),
                Err(e) => {
                    emit("replies", &json!({"error": e.to_string()}));
                    std::process::exit(1);
                }
            }
        }
        "serve" => {
            let mut incoming = control.accept(MCP)?;
            tokio::spawn(async move {
                while let Some((_, v)) = identifications.recv().await {
                    emit("identify", &v);
                }
            });
            let streams = async {
                while let Some((peer, s)) = incoming.next().await {
                    tokio::spawn(serve_stream(me, peer, s));
                }
            };
            tokio::select! {
                _ = streams => {}
                _ = tokio::signal::ctrl_c() => {}
                _ = sigterm() => {}
            }
        }
        _ => return Err(format!("unknown role {role:?}: call | serve | rendezvous-point | rendezvous-client | dht | relay").into()),
    }
    Ok(())
}

async fn sigterm() {
    if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        s.recv().await;
    }
}

fn registration_json(r: &rendezvous::Registration) -> Value {
    json!({
        "peer_id": r.record.peer_id().to_string(),
        "addrs": r.record.addresses().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "namespace": r.namespace.to_string(),
        "ttl": r.ttl,
    })
}

/// The rendezvous roles own the swarm: they act on its events.
async fn run_rendezvous(mut swarm: Swarm<Behaviour>, role: &str, args: &[String]) -> Result<(), Box<dyn Error>> {
    let point = arg(args, "--point").map(|a| a.parse::<Multiaddr>()).transpose()?;
    let point_id = point.as_ref().and_then(peer_of);
    let ns = rendezvous::Namespace::new(arg(args, "--ns").unwrap_or_else(|| "taskqueue".into()))?;
    let register = args.iter().any(|a| a == "--register");
    let discover = args.iter().any(|a| a == "--discover");
    let serve = args.iter().any(|a| a == "--serve");
    if serve {
        let me = *swarm.local_peer_id();
        let mut incoming = swarm.behaviour().stream.new_control().accept(MCP)?;
        tokio::spawn(async move {
            while let Some((peer, s)) = incoming.next().await {
                tokio::spawn(serve_stream(me, peer, s));
            }
        });
    }
    if role == "rendezvous-client" {
        let (Some(ma), Some(_)) = (&point, point_id) else { return Err("rendezvous-client needs --point MA/p2p/ID".into()) };
        swarm.dial(ma.clone())?;
    } else if role != "rendezvous-point" {
        return Err(format!("unknown role {role:?}").into());
    }
    let mut announced = false;
    let mut connected = false;
    let mut pending = (register as u8) + (discover as u8) * 2;
    let deadline = tokio::time::sleep(Duration::from_secs(if role == "rendezvous-point" { 86_400 } else { 60 }));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            // The deadline bounds the client's work, not a --serve client that has finished it.
            _ = &mut deadline, if !(serve && connected && pending == 0) => { emit("timeout", &json!(true)); std::process::exit(1) }
            _ = sigterm() => return Ok(()),
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => on_listen(&mut swarm, &address, &mut announced),
                SwarmEvent::ConnectionEstablished { peer_id, .. } if role == "rendezvous-point" => emit("connected", &json!({"peer_id": peer_id.to_string()})),
                SwarmEvent::ConnectionEstablished { peer_id, .. } if Some(peer_id) == point_id && !connected => {
                    connected = true;
                    let point = peer_id;
                    if register {
                        if !announced { return Err("no listen address to register".into()) }
                        swarm.behaviour_mut().rendezvous_client.register(ns.clone(), point, None)?;
                    } else if discover {
                        swarm.behaviour_mut().rendezvous_client.discover(Some(ns.clone()), None, None, point);
                    }
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => eprintln!("rust-peer: dial failed: {error}"),
                SwarmEvent::Behaviour(BehaviourEvent::RendezvousClient(e)) => match e {
                    rendezvous::client::Event::Registered { ttl, namespace, .. } => {
                        emit("register", &json!({"ok": true, "ttl": ttl, "namespace": namespace.to_string()}));
                        pending &= !1;
                        if discover { swarm.behaviour_mut().rendezvous_client.discover(Some(ns.clone()), None, None, point_id.unwrap()); }
                    }
                    rendezvous::client::Event::RegisterFailed { error, .. } => {
                        emit("register", &json!({"ok": false, "error": format!("{error:?}")}));
                        pending &= !1;
                    }
                    rendezvous::client::Event::Discovered { registrations, cookie, .. } => {
                        let regs: Vec<Value> = registrations.iter().map(registration_json).collect();
                        if pending & 2 != 0 {
                            emit("discovered", &json!({"ok": true, "registrations": regs, "cookie_bytes": cookie.clone().into_wire_encoding().len()}));
                            pending &= !2;
                            // Again with the cookie: only what is new since (nothing).
                            swarm.behaviour_mut().rendezvous_client.discover(Some(ns.clone()), Some(cookie), None, point_id.unwrap());
                            pending |= 4;
                        } else {
                            emit("discovered_with_cookie", &json!({"ok": true, "registrations": regs}));
                            pending &= !4;
                        }
                    }
                    rendezvous::client::Event::DiscoverFailed { error, .. } => {
                        let key = if pending & 2 != 0 { "discovered" } else { "discovered_with_cookie" };
                        emit(key, &json!({"ok": false, "error": format!("{error:?}")}));
                        pending &= !6;
                    }
                    _ => {}
                },
                SwarmEvent::Behaviour(BehaviourEvent::RendezvousPoint(e)) => match e {
                    rendezvous::server::Event::PeerRegistered { registration, .. } => emit("registered", &registration_json(&registration)),
                    rendezvous::server::Event::PeerNotRegistered { peer, error, .. } => emit("not_registered", &json!({"peer_id": peer.to_string(), "error": format!("{error:?}")})),
                    rendezvous::server::Event::DiscoverServed { enquirer, registrations } => emit("discover_served", &json!({"peer_id": enquirer.to_string(), "count": registrations.len()})),
                    _ => {}
                },
                _ => {}
            }
        }
        if role == "rendezvous-client" && connected && pending == 0 && !serve {
            return Ok(());
        }
    }
}

/// A relay server: reservations and circuits, until SIGTERM.
async fn run_relay(mut swarm: Swarm<Behaviour>) -> Result<(), Box<dyn Error>> {
    let mut announced = false;
    loop {
        tokio::select! {
            _ = sigterm() => return Ok(()),
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => on_listen(&mut swarm, &address, &mut announced),
                SwarmEvent::Behaviour(BehaviourEvent::Relay(e)) => eprintln!("rust-peer relay: {e:?}"),
                _ => {}
            }
        }
    }
}

/// CIDv1(raw, sha2-256(ns)) as go-libp2p and we key a namespace (discovery.md §6): the DHT key
/// is the multihash, the printed form the base32 CID string.
fn namespace_key(ns: &str) -> (kad::RecordKey, String) {
    let mut multihash = vec![0x12, 0x20];
    multihash.extend_from_slice(&Sha256::digest(ns.as_bytes()));
    let mut cid = vec![0x01, 0x55];
    cid.extend_from_slice(&multihash);
    (kad::RecordKey::new(&multihash), format!("b{}", base32_lower(&cid)))
}

/// RFC 4648 base32, lower case, no padding (multibase `b`).
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let (mut out, mut buffer, mut bits) = (String::new(), 0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(ALPHABET[((buffer >> bits) & 31) as usize] as char);
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buffer << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// The Kademlia role: joins through --bootstrap, provides --provide (retrying while the routing
/// table fills) and looks up the providers of --find for up to 60 s, then stays up until SIGTERM.
async fn run_dht(mut swarm: Swarm<Behaviour>, args: &[String]) -> Result<(), Box<dyn Error>> {
    let me = *swarm.local_peer_id();
    let seeds: Vec<Multiaddr> = arg(args, "--bootstrap").unwrap_or_default().split(',').filter(|s| !s.is_empty()).map(|s| s.parse()).collect::<Result<_, _>>()?;
    for seed in &seeds {
        let peer = peer_of(seed).ok_or("--bootstrap needs /p2p/<peer id>")?;
        let bare: Multiaddr = seed.iter().filter(|p| !matches!(p, Protocol::P2p(_))).collect();
        swarm.behaviour_mut().kad.as_mut().ok_or("kad off")?.add_address(&peer, bare);
        swarm.dial(seed.clone())?;
    }
    let provide = arg(args, "--provide").map(|ns| namespace_key(&ns));
    let find = arg(args, "--find").map(|ns| namespace_key(&ns));
    let mut announced = false;
    let mut started = false;
    let mut provide_attempts = 0;
    let mut found = false;
    let find_deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    // Retries are timers: a failed query is asked again after 500 ms, as go-peer does.
    let (retry_tx, mut retry_rx) = tokio::sync::mpsc::unbounded_channel::<&'static str>();
    let retry = |what: &'static str| {
        let tx = retry_tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let _ = tx.send(what);
        });
    };
    let start_after = tokio::time::sleep(Duration::from_secs(if seeds.is_empty() { 0 } else { 10 }));
    tokio::pin!(start_after);
    loop {
        tokio::select! {
            _ = sigterm() => return Ok(()),
            _ = &mut start_after, if !started => {
                started = true;
                emit("routing_table", &json!(routing_table_size(&mut swarm)));
                if let Some((key, _)) = &provide { provide_attempts += 1; kad_mut(&mut swarm).start_providing(key.clone())?; }
                if let Some((key, _)) = &find { kad_mut(&mut swarm).get_providers(key.clone()); }
            }
            Some(what) = retry_rx.recv() => match what {
                "provide" => if let Some((key, _)) = &provide { provide_attempts += 1; kad_mut(&mut swarm).start_providing(key.clone())?; },
                _ => if let Some((key, _)) = &find { kad_mut(&mut swarm).get_providers(key.clone()); },
            },
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => on_listen(&mut swarm, &address, &mut announced),
                SwarmEvent::OutgoingConnectionError { error, .. } => eprintln!("rust-peer: dial failed: {error}"),
                // Identify has told kad that the seed speaks the protocol: start at once.
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::RoutingUpdated { .. })) if !started => {
                    start_after.as_mut().reset(tokio::time::Instant::now());
                }
                SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { result, step, .. })) => match result {
                    kad::QueryResult::StartProviding(r) => {
                        let cid = provide.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
                        match r {
                            Ok(_) => emit("provided", &json!({"ok": true, "cid": cid})),
                            Err(e) if provide_attempts < 20 => { eprintln!("rust-peer: provide: {e:?}"); retry("provide") }
                            Err(e) => emit("provided", &json!({"ok": false, "cid": cid, "error": format!("{e:?}")})),
                        }
                    }
                    kad::QueryResult::GetProviders(r) if !found => {
                        let cid = find.as_ref().map(|(_, c)| c.clone()).unwrap_or_default();
                        if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = &r {
                            for p in providers.iter().filter(|p| **p != me) {
                                emit("provider", &json!({"peer_id": p.to_string(), "addrs": [], "cid": cid}));
                                found = true;
                            }
                        }
                        if !found && step.last {
                            if tokio::time::Instant::now() < find_deadline { retry("find") } else { emit("provider", &json!({"error": "no_providers", "cid": cid})) }
                        }
                    }
                    _ => {}
                },
                _ => {}
            }
        }
    }
}

fn kad_mut(swarm: &mut Swarm<Behaviour>) -> &mut kad::Behaviour<kad::store::MemoryStore> {
    swarm.behaviour_mut().kad.as_mut().expect("kad is on in the dht role")
}

fn routing_table_size(swarm: &mut Swarm<Behaviour>) -> usize {
    kad_mut(swarm).kbuckets().map(|b| b.num_entries()).sum()
}

/// Reserves a slot on --relay (circuit relay v2) and stays reachable through it until SIGTERM.
async fn run_reserve(mut swarm: Swarm<Behaviour>, args: &[String]) -> Result<(), Box<dyn Error>> {
    let relay: Multiaddr = arg(args, "--relay").ok_or("reserve needs --relay MA/p2p/ID")?.parse()?;
    let relay_id = peer_of(&relay).ok_or("--relay needs /p2p/<peer id>")?;
    let me = *swarm.local_peer_id();
    swarm.listen_on(relay.clone().with(Protocol::P2pCircuit))?;
    let mut announced = false;
    let mut reported = false;
    let fail = |error: String| -> ! {
        emit("reservation", &json!({"ok": false, "error": error}));
        std::process::exit(1)
    };
    let deadline = tokio::time::sleep(Duration::from_secs(30));
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            _ = sigterm() => return Ok(()),
            _ = &mut deadline, if !reported => fail("no reservation in 30 s".into()),
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } if !is_circuit(&address) => on_listen(&mut swarm, &address, &mut announced),
                SwarmEvent::Behaviour(BehaviourEvent::RelayClient(relay::client::Event::ReservationReqAccepted { relay_peer_id, renewal: false, limit })) if relay_peer_id == relay_id && !reported => {
                    reported = true;
                    emit("reservation", &json!({"ok": true, "circuit": format!("{relay}/p2p-circuit/p2p/{me}"), "limit": format!("{limit:?}")}));
                }
                SwarmEvent::ListenerClosed { reason: Err(error), .. } if !reported => fail(error.to_string()),
                SwarmEvent::ListenerError { error, .. } if !reported => fail(error.to_string()),
                SwarmEvent::OutgoingConnectionError { error, .. } => eprintln!("rust-peer: dial failed: {error}"),
                _ => {}
            }
        }
    }
}

/// One TaskQueue `status` as the original client makes it (initialize, tools/call, ids 1) on
/// the connection main() dialled; says whether that connection is relayed.
async fn run_mcp_status(mut swarm: Swarm<Behaviour>, target: PeerId) -> Result<(), Box<dyn Error>> {
    let mut control = swarm.behaviour().stream.new_control();
    let (connected, mut connections) = tokio::sync::mpsc::unbounded_channel::<(PeerId, Multiaddr)>();
    tokio::spawn(async move {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, endpoint, .. } => {
                    let _ = connected.send((peer_id, endpoint.get_remote_address().clone()));
                }
                SwarmEvent::OutgoingConnectionError { error, .. } => eprintln!("rust-peer: dial failed: {error}"),
                _ => {}
            }
        }
    });
    let first = async {
        while let Some((peer, addr)) = connections.recv().await {
            if peer == target {
                return Some(addr);
            }
        }
        None
    };
    let addr = tokio::time::timeout(Duration::from_secs(30), first).await.ok().flatten().ok_or("no connection to the target in 30 s")?;
    let mut s = tokio::time::timeout(Duration::from_secs(20), control.open_stream(target, MCP)).await?.map_err(|e| e.to_string())?;
    write_frame(&mut s, &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}})).await?;
    read_frame(&mut s).await?;
    write_frame(&mut s, &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "task_queue.rpc", "arguments": {"op": "status"}}})).await?;
    let reply = read_frame(&mut s).await?;
    emit("reply", &reply);
    emit("limited", &json!(is_circuit(&addr)));
    s.close().await?;
    Ok(())
}

fn reachability(status: &autonat::NatStatus) -> &'static str {
    match status {
        autonat::NatStatus::Public(_) => "public",
        autonat::NatStatus::Private => "private",
        autonat::NatStatus::Unknown => "unknown",
    }
}

/// AutoNAT v1: the server answers dial-back requests until SIGTERM; the client asks --peer and
/// prints one `reachability=` line (as go-peer's autonat-client does).
async fn run_autonat(mut swarm: Swarm<Behaviour>, role: &str, args: &[String]) -> Result<(), Box<dyn Error>> {
    let client = role == "autonat-client";
    if client {
        let server: Multiaddr = arg(args, "--peer").ok_or("autonat-client needs --peer MA/p2p/ID")?.parse()?;
        let id = peer_of(&server).ok_or("--peer needs /p2p/<peer id>")?;
        swarm.behaviour_mut().autonat.as_mut().ok_or("autonat off")?.add_server(id, Some(server.clone()));
        swarm.dial(server)?;
    }
    let secs: u64 = arg(args, "--timeout").map(|t| t.trim_end_matches('s').parse()).transpose()?.unwrap_or(60);
    let deadline = tokio::time::sleep(Duration::from_secs(if client { secs } else { 86_400 }));
    tokio::pin!(deadline);
    let mut announced = false;
    loop {
        tokio::select! {
            _ = sigterm() => return Ok(()),
            _ = &mut deadline => {
                let status = swarm.behaviour().autonat.as_ref().map(|a| a.nat_status()).unwrap_or(autonat::NatStatus::Unknown);
                emit("reachability", &json!(reachability(&status)));
                return Ok(());
            }
            event = swarm.select_next_some() => match event {
                SwarmEvent::NewListenAddr { address, .. } => {
                    // Only the first address is printed; the others are probed like it.
                    if !announced { on_listen(&mut swarm, &address, &mut announced) }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Autonat(autonat::Event::StatusChanged { new, .. })) if client => {
                    emit("reachability", &json!(reachability(&new)));
                    if new != autonat::NatStatus::Unknown { return Ok(()) }
                }
                SwarmEvent::Behaviour(BehaviourEvent::Autonat(e)) => eprintln!("rust-peer autonat: {e:?}"),
                SwarmEvent::OutgoingConnectionError { error, .. } => eprintln!("rust-peer: dial failed: {error}"),
                _ => {}
            }
        }
    }
}
