//! The NAT roles: circuit relay v2 server (`relay`) and client (`reserve`), AutoNAT v1
//! (`autonat-server`, `autonat-client`).
use std::{error::Error, time::Duration};

use futures::StreamExt;
use libp2p::{autonat, multiaddr::Protocol, relay, swarm::SwarmEvent, Multiaddr, Swarm};
use serde_json::json;

use crate::{arg, emit, is_circuit, on_listen, peer_of, sigterm, Behaviour, BehaviourEvent};

/// A relay server: reservations and circuits, until SIGTERM.
pub async fn run_relay(mut swarm: Swarm<Behaviour>) -> Result<(), Box<dyn Error>> {
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

/// Reserves a slot on --relay (circuit relay v2) and stays reachable through it until SIGTERM.
pub async fn run_reserve(mut swarm: Swarm<Behaviour>, args: &[String]) -> Result<(), Box<dyn Error>> {
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

fn reachability(status: &autonat::NatStatus) -> &'static str {
    match status {
        autonat::NatStatus::Public(_) => "public",
        autonat::NatStatus::Private => "private",
        autonat::NatStatus::Unknown => "unknown",
    }
}

/// AutoNAT v1: the server answers dial-back requests until SIGTERM; the client asks --peer and
/// prints one `reachability=` line (as go-peer's autonat-client does).
pub async fn run_autonat(mut swarm: Swarm<Behaviour>, role: &str, args: &[String]) -> Result<(), Box<dyn Error>> {
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

