//! TaskQueue's MCP++ framing (wire-protocol.md §2: u32 big-endian length + JSON) and the roles
//! that speak it: `call`, `serve` (per stream) and `mcp-status`.
use std::{error::Error, io, time::Duration};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{swarm::SwarmEvent, Multiaddr, PeerId, Stream, Swarm};
use serde_json::{json, Value};

use crate::{emit, is_circuit, Behaviour, MAX_FRAME, MCP};

pub async fn write_frame(s: &mut Stream, v: &Value) -> io::Result<()> {
    let body = serde_json::to_vec(v)?;
    let mut buf = (body.len() as u32).to_be_bytes().to_vec();
    buf.extend_from_slice(&body);
    s.write_all(&buf).await?;
    s.flush().await
}

pub async fn read_frame(s: &mut Stream) -> io::Result<Value> {
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

/// One MCP++ session as the original client opens it: `initialize`, then the calls.
pub async fn call(control: &mut libp2p_stream::Control, peer: PeerId, ops: Vec<Value>, token: Option<String>) -> Result<Vec<Value>, Box<dyn Error>> {
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
pub async fn serve_stream(me: PeerId, peer: PeerId, mut s: Stream) {
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

/// One TaskQueue `status` as the original client makes it (initialize, tools/call, ids 1) on
/// the connection main() dialled; says whether that connection is relayed.
pub async fn run_mcp_status(mut swarm: Swarm<Behaviour>, target: PeerId) -> Result<(), Box<dyn Error>> {
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
