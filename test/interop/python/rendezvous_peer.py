"""
py-libp2p's own rendezvous (libp2p.discovery.rendezvous, pinned in requirements.txt) as a
test peer. It is not the original's (original TaskQueue nodes never register): it shows
how py-libp2p's REGISTER, which carries an unsigned `PeerInfo {id, addrs}` where the
rendezvous spec has `signedPeerRecord`, meets ours.

    rendezvous_peer.py point                         a rendezvous point; prints peer_id= and multiaddr=
    rendezvous_peer.py register --point MA --ns NS   one REGISTER; prints register={"ok", "status", "error"}
"""
from __future__ import annotations

import argparse
import json
import sys

import multiaddr
import trio

from libp2p.discovery.rendezvous.client import RendezvousClient
from libp2p.discovery.rendezvous.errors import RendezvousError
from libp2p.discovery.rendezvous.service import RendezvousService
from libp2p.peer.peerinfo import info_from_p2p_addr

from original_peer import make_host


async def point() -> None:
    host = make_host()
    RendezvousService(host)
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        addr = next(str(a) for a in host.get_addrs() if "/tcp/" in str(a))
        if "/p2p/" not in addr:
            addr = f"{addr}/p2p/{host.get_id()}"
        print(f"peer_id={host.get_id()}\nmultiaddr={addr}", flush=True)
        await trio.sleep_forever()


async def register(point_addr: str, ns: str) -> None:
    info = info_from_p2p_addr(multiaddr.Multiaddr(point_addr))
    host = make_host()
    out: dict[str, object] = {"ok": False, "status": None, "error": ""}
    async with host.run(listen_addrs=[multiaddr.Multiaddr("/ip4/127.0.0.1/tcp/0")]):
        print(f"peer_id={host.get_id()}", flush=True)
        with trio.fail_after(30):
            await host.connect(info)
            try:
                await RendezvousClient(host, info.peer_id).register(ns, 7200)
                out.update(ok=True, status=0)
            except RendezvousError as exc:
                out.update(status=int(exc.status), error=exc.message)
            except Exception as exc:
                out.update(error=f"{type(exc).__name__}: {exc}")
    print(f"register={json.dumps(out)}", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("point")
    r = sub.add_parser("register")
    r.add_argument("--point", required=True)
    r.add_argument("--ns", required=True)
    args = parser.parse_args()
    if args.cmd == "point":
        trio.run(point)
    else:
        trio.run(register, args.point, args.ns)
    return 0


if __name__ == "__main__":
    sys.exit(main())
