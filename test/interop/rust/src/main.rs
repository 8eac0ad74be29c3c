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
mod discovery;
mod mcp;
mod nat;

use std::{error::Error, time::Duration};

use futures::StreamExt;
use libp2p::{
    autonat, identify, kad, multiaddr::Protocol, noise, ping, relay, rendezvous,
    swarm::{behaviour::toggle::Toggle, NetworkBehaviour, SwarmEvent},
    tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm,
};
use serde_json::{json, Value};

use discovery::{run_dht, run_rendezvous};
use mcp::{call, run_mcp_status, serve_stream};
use nat::{run_autonat, run_relay, run_reserve};

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

