//! The discovery roles: rendezvous point and client (`/rendezvous/1.0.0`) and Kademlia (`dht`).
use std::{error::Error, time::Duration};

use futures::StreamExt;
use libp2p::{kad, multiaddr::Protocol, rendezvous, swarm::SwarmEvent, Multiaddr, Swarm};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::{arg, emit, mcp::serve_stream, on_listen, peer_of, sigterm, Behaviour, BehaviourEvent, MCP};

fn registration_json(r: &rendezvous::Registration) -> Value {
    json!({
        "peer_id": r.record.peer_id().to_string(),
        "addrs": r.record.addresses().iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "namespace": r.namespace.to_string(),
        "ttl": r.ttl,
    })
}

/// The rendezvous roles own the swarm: they act on its events.
pub async fn run_rendezvous(mut swarm: Swarm<Behaviour>, role: &str, args: &[String]) -> Result<(), Box<dyn Error>> {
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
pub async fn run_dht(mut swarm: Swarm<Behaviour>, args: &[String]) -> Result<(), Box<dyn Error>> {
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
