"""The floor: a bare ASGI byte pass-through on the proxy's own stack (uvicorn + aiohttp).

No framework, no parsing, no header policy beyond dropping hop-by-hop
headers: it reads the request body, forwards it, and streams the upstream's
answer back as it arrives. Whatever the real proxy costs beyond this is the
price of its features. ``--client httpx`` runs the same pass-through on httpx
(32 pools used in turn, as the proxy once did), to compare the two clients.
"""

from __future__ import annotations

import argparse

import aiohttp
import uvicorn
from yarl import URL

HOP_BY_HOP = frozenset((b"connection", b"keep-alive", b"transfer-encoding", b"te", b"trailer", b"upgrade",
                        b"host", b"content-length", b"proxy-connection"))
HTTPX_POOLS = 32  # httpcore scans every pooled connection per request; small pools keep that short


async def request_body(receive) -> bytes:
    chunks = []
    more = True
    while more:
        message = await receive()
        chunks.append(message.get("body", b""))
        more = message.get("more_body", False)
    return b"".join(chunks)


async def lifespan(receive, send, close) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await close()
            await send({"type": "lifespan.shutdown.complete"})
            return


class AiohttpPassthrough:
    def __init__(self, upstream: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.session = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.close)
            return
        if self.session is None:
            self.session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0),
                                                 cookie_jar=aiohttp.DummyCookieJar())
        body = await request_body(receive)
        headers = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in scope["headers"]
                   if name not in HOP_BY_HOP]
        url = URL(self.upstream + scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"]
                                                   else ""), encoded=True)
        async with self.session.request(scope["method"], url, headers=headers, data=body, auto_decompress=False,
                                        allow_redirects=False) as response:
            await send({"type": "http.response.start", "status": response.status,
                        "headers": [(name, value) for name, value in response.raw_headers
                                    if name.lower() not in HOP_BY_HOP]})
            async for chunk in response.content.iter_any():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})

    async def close(self) -> None:
        if self.session is not None:
            await self.session.close()


class HttpxPassthrough:
    def __init__(self, upstream: str, pools: int = HTTPX_POOLS) -> None:
        self.upstream = upstream.rstrip("/")
        self.pools = pools
        self.clients = []
        self.turn = 0

    def _open(self) -> list:
        import httpx  # a test dependency: needed only for this comparison

        tls = httpx.create_ssl_context(trust_env=False)
        return [httpx.AsyncClient(verify=tls, timeout=httpx.Timeout(600.0), trust_env=False,
                                  limits=httpx.Limits(max_connections=None, max_keepalive_connections=256 // self.pools))
                for _ in range(self.pools)]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send, self.close)
            return
        if not self.clients:
            self.clients = self._open()
        self.turn = (self.turn + 1) % self.pools
        client = self.clients[self.turn]
        body = await request_body(receive)
        headers = [(name, value) for name, value in scope["headers"] if name not in HOP_BY_HOP]
        url = self.upstream + scope["path"] + ("?" + scope["query_string"].decode() if scope["query_string"] else "")
        response = await client.send(client.build_request(scope["method"], url, headers=headers, content=body),
                                     stream=True)
        try:
            await send({"type": "http.response.start", "status": response.status_code,
                        "headers": [(name, value) for name, value in response.headers.raw
                                    if name.lower() not in HOP_BY_HOP]})
            async for chunk in response.aiter_raw():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        finally:
            await response.aclose()

    async def close(self) -> None:
        for client in self.clients:
            await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--upstream", default="http://127.0.0.1:9100", help="upstream origin (no path)")
    parser.add_argument("--client", choices=("aiohttp", "httpx"), default="aiohttp")
    args = parser.parse_args()
    app = AiohttpPassthrough(args.upstream) if args.client == "aiohttp" else HttpxPassthrough(args.upstream)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
