"""The floor: a bare ASGI byte pass-through on the proxy's own stack (uvicorn + httpx).

No framework, no parsing, no header policy beyond dropping hop-by-hop
headers: it reads the request body, forwards it, and streams the upstream's
answer back as it arrives. Whatever the real proxy costs beyond this is the
price of its features.
"""

from __future__ import annotations

import argparse

import httpx
import uvicorn

POOL_SHARDS = 32  # as the proxy does, to keep httpcore's per-request pool scan short
HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
                        b"host", b"content-length", b"proxy-connection"))


class RawPassthrough:
    def __init__(self, upstream: str, shards: int = POOL_SHARDS) -> None:
        self.upstream = upstream.rstrip("/")
        self.shards = shards
        self.clients: list[httpx.AsyncClient] = []
        self.turn = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if not self.clients:
            tls = httpx.create_ssl_context(trust_env=False)
            self.clients = [self._new_client(tls) for _ in range(self.shards)]
        self.turn = (self.turn + 1) % self.shards
        client = self.clients[self.turn]
        chunks = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        headers = [(name, value) for name, value in scope["headers"] if name not in HOP_BY_HOP]
        url = self.upstream + scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        request = client.build_request(scope["method"], url, headers=headers, content=b"".join(chunks))
        response = await client.send(request, stream=True)
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(name, value) for name, value in response.headers.raw
                                    if name.lower() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    def _new_client(self, tls) -> httpx.AsyncClient:
        return httpx.AsyncClient(verify=tls, timeout=httpx.Timeout(600.0),
                                 limits=httpx.Limits(max_connections=None,
                                                     max_keepalive_connections=256 // self.shards),
                                 trust_env=False)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for client in self.clients:
                    await client.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100", help="upstream origin (no path)")
    parser.add_argument("--pool-shards", type=int, default=POOL_SHARDS, help="httpx clients used in turn")
    args = parser.parse_args()
    uvicorn.run(RawPassthrough(args.upstream, args.pool_shards), host="127.0.0.1", port=args.port, log_level="warning",
                access_log=False)


if __name__ == "__main__":
    main()
