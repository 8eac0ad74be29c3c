"""
A peer that behaves as wire-protocol.md and discovery.md describe the original
(ipfs_accelerate_py `p2p_tasks`), on py-libp2p. No released version of the original
package carries `p2p_tasks` (checked up to ipfs_accelerate_py 0.0.42), so this is
written from the spec; the behaviour it reproduces is the original's, quirks included:

- TCP + Noise + Yamux only, identify and ping (py-libp2p's defaults);
- the service answers one `tools/call` per `/mcp+p2p/1.0.0` stream after `initialize`
  and then closes it; it echoes ids; legacy NDJSON on `/ipfs-datasets/task-queue/1.0.0`;
- no lease renewal (`task.heartbeat` is `unknown_op`), no owner guard, `claim`'s
  `wait_s` and `submit`'s `wait_s` ignored, `claim_many` gives one task, polling `wait`;
- the announce file `{peer_id, multiaddr}`; the DHT value record
  `/ipfs-accelerate/task-queue/ns/<ns>` = `{peer_id, multiaddr, ts}`;
- the client builds a new host and identity for every call, sends `initialize` and
  `tools/call` with id 1 each on a fresh stream, escapes non-ASCII, and rejects replies
  over 1 MiB.

    original_peer.py serve [--announce-file F] [--dht] [--bootstrap MA,...] [--ns NS]
    original_peer.py client --ops JSON (--multiaddr MA | --announce-file F | --dht-bootstrap MA,...) [--legacy]

`serve` prints `peer_id=` and `multiaddr=` lines once it listens (and, with --dht, a
`dht_record=stored` line once the value record is put). `client` prints one JSON
document: `{"ok", "target", "method", "results": [reply, ...]}`.
"""
from __future__ import annotations

import argparse
import json
import os
import secrets
import struct
import sys
import time
from typing import Any

import multiaddr
import trio

from libp2p import new_host
from libp2p.crypto.ed25519 import create_new_key_pair
from libp2p.crypto.x25519 import create_new_key_pair as create_new_x25519_key_pair
from libp2p.custom_types import TProtocol
from libp2p.kad_dht.kad_dht import DHTMode, KadDHT
from libp2p.peer.id import ID
from libp2p.peer.peerinfo import info_from_p2p_addr
from libp2p.records.validator import Validator
from libp2p.security.noise.transport import PROTOCOL_ID as NOISE_PROTOCOL_ID
from libp2p.security.noise.transport import Transport as NoiseTransport
from libp2p.tools.anyio_service import background_trio_service

MCP_PROTOCOL = TProtocol("/mcp+p2p/1.0.0")
LEGACY_PROTOCOL = TProtocol("/ipfs-datasets/task-queue/1.0.0")
MAX_FRAME = 1 << 20
DEFAULT_NS = "ipfs-accelerate-task-queue"
MERKLE_ROOT = "d83964234cb3f7451644cb8dfbd8a97cb70571490208c3ffcb5b346c43c380fa"


def record_key(ns: str) -> str:
    return f"/ipfs-accelerate/task-queue/ns/{ns}"


def make_host() -> Any:
    """Noise is the only security offered (wire-protocol.md §1); Yamux is the default muxer."""
    key_pair = create_new_key_pair()
    noise = NoiseTransport(key_pair, noise_privkey=create_new_x25519_key_pair().private_key)
    return new_host(key_pair=key_pair, sec_opt={NOISE_PROTOCOL_ID: noise}, muxer_preference="YAMUX")


def dumps(obj: Any) -> bytes:
    # The original: compact, non-ASCII escaped as \\uXXXX.
    return json.dumps(obj, separators=(",", ":")).encode("ascii")


async def read_exact(stream: Any, n: int) -> bytes | None:
    buf = b""
    while len(buf) < n:
        chunk = await stream.read(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


async def read_frame(stream: Any, limit: int = MAX_FRAME) -> Any:
    header = await read_exact(stream, 4)
    if header is None:
        return None
    (n,) = struct.unpack(">I", header)
    if n > limit:
        raise ValueError(f"frame_too_large: {n}")
    body = await read_exact(stream, n)
    if body is None:
        raise ValueError("truncated frame")
    return json.loads(body.decode("utf-8"))


async def write_frame(stream: Any, obj: Any) -> None:
    body = dumps(obj)
    await stream.write(struct.pack(">I", len(body)) + body)


async def read_line(stream: Any, limit: int = MAX_FRAME) -> bytes | None:
    buf = b""
    while b"\n" not in buf:
        if len(buf) >= limit:
            raise ValueError("frame_too_large")
        chunk = await stream.read(65536)
        if not chunk:
            return buf if buf else None
        buf += chunk
    return buf.split(b"\n", 1)[0]


# --------------------------------------------------------------------------- service


def text(v: Any) -> str:
    return "" if v is None else str(v).strip()


def to_int(v: Any, default: int, lo: int, hi: int) -> int:
    try:
        n = int(float(v)) if v is not None else default
    except (TypeError, ValueError):
        n = default
    return max(lo, min(hi, n))


def str_list(v: Any) -> list[str]:
    if isinstance(v, str):
        v = v.split(",")
    if not isinstance(v, list):
        return []
    return [text(x).lower() for x in v if text(x)]


class Store:
    """The original's queue and cache, in memory: the wire behaviour is what is under test."""

    def __init__(self, peer_id: str) -> None:
        self.peer_id = peer_id
        self.tasks: dict[str, dict[str, Any]] = {}
        self.cache: dict[str, tuple[Any, float | None]] = {}
        self.peers: dict[str, float] = {}
        self.started = time.time()

    def handle(self, req: Any, remote: str) -> dict[str, Any]:
        if not isinstance(req, dict):
            return {"ok": False, "error": "invalid_message"}
        op = text(req.get("op")).lower()
        handler = OPS.get(op)
        if handler is None:
            return {"ok": False, "error": "unknown_op"}
        try:
            reply = handler(self, req, remote)
        except Exception as exc:  # the original sent raw exception text
            reply = {"ok": False, "error": "internal_error", "detail": str(exc)}
        reply.setdefault("peer_id", self.peer_id)
        return reply

    # queue
    def submit(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        payload = req.get("payload")
        if not isinstance(payload, dict):
            payload = {"payload": payload}
        task_type = text(req.get("task_type")) or "text-generation"
        model_name = text(req.get("model_name"))
        key = payload.get("idempotency_key")
        if key:
            for t in self.tasks.values():
                if t["idempotency_key"] == key:
                    if (t["task_type"], t["model_name"], t["payload"]) != (task_type, model_name, payload):
                        raise RuntimeError("UNIQUE constraint failed: tasks.idempotency_key")
                    return {"ok": True, "task_id": t["task_id"]}
        now = time.time()
        task_id = secrets.token_hex(16)
        self.tasks[task_id] = {
            "task_id": task_id, "task_type": task_type, "model_name": model_name, "payload": payload,
            "status": "queued", "assigned_worker": None, "created_at": now, "updated_at": now,
            "result": None, "error": None, "priority": to_int(payload.get("priority"), 5, 1, 10),
            "attempt": 0, "max_attempts": to_int(payload.get("max_attempts"), 3, 0, 1000),
            "next_attempt_at": float(payload.get("next_attempt_at") or 0), "lease_until": None,
            "heartbeat_at": None, "idempotency_key": key or None,
        }
        return {"ok": True, "task_id": task_id}

    def _claim_one(self, req: dict[str, Any]) -> dict[str, Any] | None:
        types = set(str_list(req.get("supported_task_types") or req.get("task_types")))
        now = time.time()
        eligible = [t for t in self.tasks.values()
                    if t["status"] == "queued" and t["next_attempt_at"] <= now
                    and (not types or t["task_type"].lower() in types)]
        eligible.sort(key=lambda t: (-t["priority"], t["created_at"], t["task_id"]))
        if not eligible:
            return None
        t = eligible[0]
        t.update(status="running", assigned_worker=text(req.get("worker_id")), attempt=t["attempt"] + 1,
                 heartbeat_at=now, lease_until=now + 300, updated_at=now)
        return {k: t[k] for k in ("task_id", "task_type", "model_name", "payload", "created_at", "status", "assigned_worker")}

    def claim(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        if not text(req.get("worker_id")):
            return {"ok": False, "error": "missing_worker_id"}
        self.peers[text(req.get("worker_id"))] = time.time()
        return {"ok": True, "task": self._claim_one(req)}

    def claim_many(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        # The original's deterministic mode handed out one task whatever max_tasks said.
        if not text(req.get("worker_id")):
            return {"ok": False, "error": "missing_worker_id"}
        task = self._claim_one(req)
        return {"ok": True, "tasks": [task] if task else []}

    def complete(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        task_id = text(req.get("task_id"))
        if not task_id:
            return {"ok": False, "error": "missing_task_id"}
        t = self.tasks.get(task_id)
        if t is None:
            return {"ok": False, "error": "task_not_found"}
        status = text(req.get("status")) or "completed"
        if status not in ("completed", "failed", "cancelled"):
            status = "failed"
        result = req.get("result")
        if result is not None and not isinstance(result, dict):
            result = {"result": result}
        merged = dict(t["result"] or {})
        merged.update(result or {})
        t.update(status=status, result=merged, lease_until=None, updated_at=time.time())
        if req.get("error"):
            t["error"] = str(req["error"])
        return {"ok": True, "task_id": task_id}

    def release(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        t = self.tasks.get(text(req.get("task_id")))
        if t is None or t["status"] != "running":
            return {"ok": False, "error": "task_not_running"}
        t.update(status="queued", assigned_worker=None, lease_until=None, next_attempt_at=time.time())
        return {"ok": True, "task_id": t["task_id"]}

    def get(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        return {"ok": True, "task": self.tasks.get(text(req.get("task_id")))}

    def list(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        status = text(req.get("status"))
        rows = sorted(self.tasks.values(), key=lambda t: (t["created_at"], t["task_id"]))
        rows = [t for t in rows if not status or t["status"] == status]
        return {"ok": True, "tasks": rows[: to_int(req.get("limit"), 50, 1, 1000)]}

    def cancel(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        t = self.tasks.get(text(req.get("task_id")))
        if t is None or t["status"] != "queued":
            return {"ok": True, "cancelled": False}
        t.update(status="cancelled", updated_at=time.time())
        return {"ok": True, "cancelled": True}

    def peer_heartbeat(self, req: dict[str, Any], remote: str) -> dict[str, Any]:
        peer = text(req.get("peer")) or text(req.get("peer_id")) or remote
        self.peers[peer] = time.time()
        return {"ok": True, "peer": peer, "scheduler": self.scheduler()}

    def scheduler(self) -> dict[str, Any]:
        return {
            "clock": {"node_id": "taskqueue-service", "vector": {"taskqueue-service": 0}, "merkle_root": MERKLE_ROOT},
            "known_peers": [{"peer_id": p, "last_seen": s} for p, s in sorted(self.peers.items())],
        }

    def status(self, _req: dict[str, Any], _remote: str) -> dict[str, Any]:
        return {
            "ok": True, "peer_id": self.peer_id, "session": "",
            "capabilities": {"task_types": [], "models": [], "endpoints_by_model": {},
                             "endpoint_types_by_model": {}, "hwtest": {}, "resource_keys": []},
            "nat": {"autonat": {"supported": False, "status": "unavailable", "code": None}},
        }

    def tool(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        name = text(req.get("tool") or req.get("tool_name") or req.get("name"))
        if not name:
            return {"ok": False, "error": "missing_tool_name"}
        if name != "get_server_status":
            return {"ok": False, "tool": name, "error": "tool_not_found"}
        return {"ok": True, "tool": name, "description": "Server status", "result": {
            "status": "running", "version": "original-peer", "uptime_seconds": time.time() - self.started,
            "host": "127.0.0.1", "port": 0, "system": sys.platform, "runtime": "python"}}

    # cache (the original: a stored null reads as a miss, `deleted` is always true)
    def _key(self, req: dict[str, Any]) -> str:
        return text(req.get("key"))

    def _live(self, key: str) -> tuple[Any, float | None] | None:
        entry = self.cache.get(key)
        if entry is not None and entry[1] is not None and entry[1] <= time.time():
            del self.cache[key]
            return None
        return entry

    def cache_get(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        key = self._key(req)
        if not key:
            return {"ok": False, "error": "missing_key"}
        entry = self._live(key)
        value = entry[0] if entry else None
        return {"ok": True, "key": key, "hit": value is not None, "value": value}

    def cache_has(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        key = self._key(req)
        if not key:
            return {"ok": False, "error": "missing_key"}
        return {"ok": True, "key": key, "hit": self._live(key) is not None}

    def cache_set(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        key = self._key(req)
        if not key:
            return {"ok": False, "error": "missing_key"}
        ttl = req.get("ttl_s")
        expires = time.time() + float(ttl) if isinstance(ttl, (int, float)) and ttl > 0 else None
        self.cache[key] = (req.get("value"), expires)
        return {"ok": True, "key": key}

    def cache_delete(self, req: dict[str, Any], _remote: str) -> dict[str, Any]:
        key = self._key(req)
        if not key:
            return {"ok": False, "error": "missing_key"}
        self.cache.pop(key, None)
        return {"ok": True, "key": key, "deleted": True}


OPS: dict[str, Any] = {}
for _names, _fn in [
    (("submit",), Store.submit),
    (("claim", "claim_next"), Store.claim),
    (("claim_many", "claim_batch"), Store.claim_many),
    (("complete", "task.complete", "complete_task"), Store.complete),
    (("release", "task.release", "release_task"), Store.release),
    (("get",), Store.get),
    (("list", "tasks.list", "queue.list"), Store.list),
    (("cancel", "task.cancel"), Store.cancel),
    (("peer.heartbeat", "heartbeat", "peer"), Store.peer_heartbeat),
    (("status", "capabilities", "describe"), Store.status),
    (("tool", "call_tool", "tool.call"), Store.tool),
    (("cache.get", "cache_get", "cache"), Store.cache_get),
    (("cache.has", "cache_has"), Store.cache_has),
    (("cache.set", "cache_set"), Store.cache_set),
    (("cache.delete", "cache_del", "cache_delete"), Store.cache_delete),
]:
    for _n in _names:
        OPS[_n] = _fn


async def handle_wait(store: Store, req: dict[str, Any], remote: str) -> dict[str, Any]:
    """The original polled the store until the task left queued/running, or the timeout."""
    timeout = req.get("timeout_s")
    timeout_s = 60.0 if not timeout else max(0.0, float(timeout))
    deadline = time.time() + timeout_s
    task_id = text(req.get("task_id"))
    while True:
        task = store.tasks.get(task_id)
        if task is None or task["status"] not in ("queued", "running") or time.time() >= deadline:
            return {"ok": True, "task": task, "peer_id": store.peer_id}
        await trio.sleep(0.1)


async def dispatch(store: Store, req: Any, remote: str) -> dict[str, Any]:
    if isinstance(req, dict) and "op" not in req:
        inner = [v for v in req.values() if isinstance(v, dict)]
        if len(req) == 1 and len(inner) == 1:
            req = inner[0]
    if isinstance(req, dict) and text(req.get("op")).lower() == "wait":
        return await handle_wait(store, req, remote)
    return store.handle(req, remote)


def initialize_result(peer_id: str) -> dict[str, Any]:
    profiles = ["mcp++/p2p-transport", "mcp++/profile-e-mcp-p2p"]
    return {
        "ok": True, "protocolVersion": "2024-11-05",
        "serverInfo": {"name": "ipfs_accelerate_py", "version": "original-peer"},
        "capabilities": {"tools": {"listChanged": True}, "mcpPlusPlusProfiles": profiles,
                         "experimental": {"mcp++/p2p-transport": True}},
        "transport": str(MCP_PROTOCOL), "server": {"peer_id": peer_id},
        "active_profile": "mcp++/p2p-transport",
    }


def make_mcp_handler(store: Store) -> Any:
    async def handler(stream: Any) -> None:
        remote = str(stream.muxed_conn.peer_id)
        try:
            initialized = False
            while True:
                msg = await read_frame(stream)
                if msg is None:
                    return
                mid = msg.get("id")
                method = msg.get("method")
                if method == "initialize":
                    initialized = True
                    await write_frame(stream, {"jsonrpc": "2.0", "id": mid, "result": initialize_result(store.peer_id)})
                    continue
                if not initialized:
                    await write_frame(stream, {"jsonrpc": "2.0", "id": mid, "error": {"code": -32000, "message": "init_required"}})
                    return
                if method in ("tools/call", "tools.call"):
                    params = msg.get("params") or {}
                    if params.get("name") == "task_queue.rpc":
                        reply = await dispatch(store, params.get("arguments") or {}, remote)
                        result: dict[str, Any] = {"content": reply}
                    else:
                        reply = await dispatch(store, {"op": "tool", "tool": params.get("name"), "args": params.get("arguments")}, remote)
                        result = {"content": reply.get("result")}
                    await write_frame(stream, {"jsonrpc": "2.0", "id": mid, "result": result})
                elif method in ("tools/list", "tools.list"):
                    await write_frame(stream, {"jsonrpc": "2.0", "id": mid, "result": {"tools": [
                        {"name": "task_queue.rpc", "description": "Invoke a TaskQueue RPC operation over MCP++.",
                         "inputSchema": {"type": "object", "additionalProperties": True}}]}})
                else:
                    await write_frame(stream, {"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": "method_not_found"}})
                # One call per stream: the original's client never sends a second one.
                return
        except Exception as exc:
            print(f"mcp stream error: {exc!r}", file=sys.stderr, flush=True)
        finally:
            await stream.close()
    return handler


def make_legacy_handler(store: Store) -> Any:
    async def handler(stream: Any) -> None:
        remote = str(stream.muxed_conn.peer_id)
        try:
            try:
                line = await read_line(stream)
            except ValueError:
                await stream.write(dumps({"ok": False, "error": "frame_too_large", "peer_id": store.peer_id}) + b"\n")
                return
            if line is None:
                return
            try:
                req = json.loads(line.decode("utf-8"))
            except ValueError:
                reply: dict[str, Any] = {"ok": False, "error": "invalid_json", "peer_id": store.peer_id}
            else:
                reply = await dispatch(store, req, remote)
            await stream.write(dumps(reply) + b"\n")
        except Exception as exc:
            print(f"legacy stream error: {exc!r}", file=sys.stderr, flush=True)
        finally:
            await stream.close()
    return handler


class AcceleratePrefixValidator(Validator):
    """discovery.md §6: `multiaddr` must end in /p2p/<peer_id>; the highest `ts` wins."""

    def validate(self, key: str, value: bytes) -> None:
        rec = json.loads(value.decode("utf-8"))
        if not str(rec.get("multiaddr", "")).endswith(f"/p2p/{rec.get('peer_id')}"):
            raise ValueError("multiaddr must end in /p2p/<peer_id>")

    def select(self, key: str, values: list[bytes]) -> int:
        best, best_ts = 0, float("-inf")
        for i, v in enumerate(values):
            try:
                ts = float(json.loads(v.decode("utf-8")).get("ts"))
            except Exception:
                continue
            if ts > best_ts:
                best, best_ts = i, ts
        return best


def make_dht(host: Any, mode: DHTMode) -> KadDHT:
    dht = KadDHT(host, mode)
    dht.register_validator("ipfs-accelerate", AcceleratePrefixValidator())
    return dht


async def seed_dht(host: Any, dht: KadDHT, bootstrap: list[str]) -> None:
    for addr in bootstrap:
        info = info_from_p2p_addr(multiaddr.Multiaddr(addr))
        host.get_peerstore().add_addrs(info.peer_id, info.addrs, 3600)
        with trio.move_on_after(10):
            await host.connect(info)
            # Identify tells the routing table that the peer is a DHT server.
            for _ in range(50):
                if await dht.add_peer(info.peer_id):
                    break
                await trio.sleep(0.1)


async def serve(args: argparse.Namespace) -> None:
    host = make_host()
    peer_id = str(host.get_id())
    store = Store(peer_id)
    host.set_stream_handler(MCP_PROTOCOL, make_mcp_handler(store))
    host.set_stream_handler(LEGACY_PROTOCOL, make_legacy_handler(store))
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        addr = next(str(a) for a in host.get_addrs() if "/tcp/" in str(a))
        if "/p2p/" not in addr:
            addr = f"{addr}/p2p/{peer_id}"
        if args.announce_file:
            tmp = args.announce_file + ".tmp"
            with open(tmp, "w", encoding="utf-8") as f:
                json.dump({"peer_id": peer_id, "multiaddr": addr}, f)
            os.replace(tmp, args.announce_file)
        print(f"peer_id={peer_id}\nmultiaddr={addr}\nprotocols={MCP_PROTOCOL},{LEGACY_PROTOCOL}", flush=True)
        if not args.dht:
            await trio.sleep_forever()
        dht = make_dht(host, DHTMode.SERVER)
        async with background_trio_service(dht):
            bootstrap = [b for b in (args.bootstrap or "").split(",") if b]
            await seed_dht(host, dht, bootstrap)
            # The original put its value record and provided the raw namespace bytes
            # (which no other implementation can look up as a CID).
            value = json.dumps({"peer_id": peer_id, "multiaddr": addr, "ts": time.time()}).encode()
            stored = False
            for _ in range(20):
                try:
                    await dht.put_value(record_key(args.ns), value)
                    stored = True
                    break
                except Exception as exc:
                    print(f"put_value failed: {exc!r}", file=sys.stderr, flush=True)
                    await trio.sleep(0.5)
            with trio.move_on_after(10):
                await dht.provide(args.ns)
            print(f"dht_record={'stored' if stored else 'failed'}", flush=True)
            await trio.sleep_forever()


# --------------------------------------------------------------------------- client


class RemoteError(Exception):
    pass


async def call_once(target: str, envelope: dict[str, Any], legacy: bool, timeout: float) -> Any:
    """One RPC exactly as the original client made it: new host, new identity, one stream."""
    info = info_from_p2p_addr(multiaddr.Multiaddr(target))
    host = make_host()
    async with host.run(listen_addrs=[]):
        with trio.fail_after(timeout):
            await host.connect(info)
            if legacy:
                stream = await host.new_stream(info.peer_id, [LEGACY_PROTOCOL])
                await stream.write(dumps(envelope) + b"\n")
                line = await read_line(stream)
                await stream.close()
                if line is None:
                    raise RemoteError("no reply")
                try:
                    return json.loads(line.decode("utf-8"))
                except ValueError as exc:
                    raise RemoteError("invalid_json_response") from exc
            stream = await host.new_stream(info.peer_id, [MCP_PROTOCOL])
            await write_frame(stream, {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "clientInfo": {"name": "ipfs_accelerate_py.p2p_rpc", "version": "original-peer"},
                "profiles": ["mcp++/p2p-transport"]}})
            init = await read_frame(stream)
            if init is None or "result" not in init:
                raise RemoteError(f"initialize failed: {init!r}")
            await write_frame(stream, {"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                                       "params": {"name": "task_queue.rpc", "arguments": envelope}})
            reply = await read_frame(stream)
            await stream.close()
            if reply is None or "result" not in reply:
                raise RemoteError(f"tools/call failed: {reply!r}")
            return reply["result"]["content"]


def target_from_announce(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        ann = json.load(f)
    addr = str(ann["multiaddr"])
    if not addr.endswith(f"/p2p/{ann['peer_id']}"):
        raise RemoteError("invalid_announce")
    return addr


async def target_from_dht(bootstrap: list[str], ns: str) -> str:
    """The original's DHT discovery: read the value record through the given peers."""
    host = make_host()
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        dht = make_dht(host, DHTMode.CLIENT)
        async with background_trio_service(dht):
            await seed_dht(host, dht, bootstrap)
            for _ in range(20):
                with trio.move_on_after(5):
                    value = await dht.get_value(record_key(ns))
                    if value:
                        rec = json.loads(value.decode("utf-8"))
                        return str(rec["multiaddr"])
                await trio.sleep(0.5)
    raise RemoteError("no_dht_record")


async def client(args: argparse.Namespace) -> int:
    out: dict[str, Any] = {"ok": False, "target": "", "method": "", "results": []}
    try:
        if args.multiaddr:
            out["target"], out["method"] = args.multiaddr, "explicit"
        elif args.announce_file:
            out["target"], out["method"] = target_from_announce(args.announce_file), "announce-file"
        elif args.dht_bootstrap:
            out["target"], out["method"] = await target_from_dht(args.dht_bootstrap.split(","), args.ns), "dht"
        for envelope in json.loads(args.ops):
            out["results"].append(await call_once(out["target"], envelope, args.legacy, args.timeout))
        out["ok"] = True
    except Exception as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
    print(json.dumps(out), flush=True)
    return 0 if out["ok"] else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve")
    s.add_argument("--announce-file", default="")
    s.add_argument("--dht", action="store_true")
    s.add_argument("--bootstrap", default="")
    s.add_argument("--ns", default=DEFAULT_NS)
    c = sub.add_parser("client")
    c.add_argument("--ops", required=True, help="JSON array of envelopes, each sent as its own call")
    c.add_argument("--multiaddr", default="")
    c.add_argument("--announce-file", default="")
    c.add_argument("--dht-bootstrap", default="")
    c.add_argument("--ns", default=DEFAULT_NS)
    c.add_argument("--legacy", action="store_true")
    c.add_argument("--timeout", type=float, default=90.0)
    args = parser.parse_args()
    if args.cmd == "serve":
        trio.run(serve, args)
        return 0
    return trio.run(client, args)


if __name__ == "__main__":
    sys.exit(main())
