"""The phone servers: Sensor Logger's HTTP push endpoint, the phone page and its WebSocket.

Starlette routes served by uvicorn (both well kept, and already installed with
the dashboard) on the gateway's event loop, instead of hand-written HTTP and
WebSocket code: uvicorn (h11 and ``websockets``) parses requests and frames,
limits header size, WebSocket message size (``--phone-max-bytes``) and open
connections, and speaks TLS.

- ``POST <--sensor-logger-path>`` (default ``/sensor-logger``): one Sensor Logger
  message. ``200 ok``; ``4xx <reason>: <detail>`` for a refused one (the app
  shows a 4xx reply's text once per recording).
- ``GET /``: the phone page (``page.html``, no build step, no dependencies).
- ``WebSocket /ws?device=<name>&token=<token>``: the page's stream (the same
  JSON schema as the app), and its predictions back.

Beyond loopback every push and WebSocket must carry the token (``?token=`` or
``Authorization: Bearer``). The sockets are bound when the source is built, so
a port in use stops the gateway before it connects (exit status 2).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from imu_har.protocol.errors import PayloadError
from services.ble_gateway.phone.credentials import Tls
from services.ble_gateway.phone.hub import PhoneHub

logger = logging.getLogger(__name__)

Reject = Callable[[str, str], None]
STATUS = {"too_large": 413, "unauthorized": 401, "rate_limited": 429, "too_many_devices": 429}
OUTBOX = 32  # messages waiting for one page (predictions, errors); the oldest go first
HEADER_BYTES = 16 * 1024
BACKLOG = 2048  # uvicorn's default


class PhoneServer:
    """Binds the phone ports at once; serves them on the event loop in :meth:`run`."""

    def __init__(
        self,
        hub: PhoneHub,
        *,
        host: str,
        https_port: int,
        http_port: int,
        tls: Tls | None,
        token: str | None,
        path: str,
        max_bytes: int,
        reject: Reject,
        watch: Callable[[str, bool], None] = lambda device, on: None,
    ) -> None:
        self.hub, self.token, self.max_bytes, self.reject = hub, token, max_bytes, reject
        self.watch = watch  # (device, True/False): a page (dis)connected; follow its predictions
        self.page = resources.files(__package__).joinpath("page.html").read_bytes()
        self.app = Starlette(
            routes=[
                Route("/", self._page),
                Route(path, self._push, methods=["POST"]),
                WebSocketRoute("/ws", self._socket),
            ]
        )
        self.listeners: list[tuple[socket.socket, Tls | None]] = []
        if https_port and tls is not None:
            self.listeners.append((_bind(host, https_port), tls))
        if http_port:
            self.listeners.append((_bind(host, http_port), None))
        self.servers: list[uvicorn.Server] = []

    @property
    def ports(self) -> dict[str, int]:
        """The bound ports by scheme (``https``, ``http``): port 0 becomes the real one."""
        return {"https" if tls else "http": sock.getsockname()[1] for sock, tls in self.listeners}

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set."""
        for _sock, tls in self.listeners:
            config = uvicorn.Config(
                self.app,
                http="h11",
                ws="websockets-sansio",
                ws_max_size=self.max_bytes,
                lifespan="off",
                log_config=None,
                access_log=False,
                server_header=False,
                limit_concurrency=self.hub.config.max_phones + 64,
                h11_max_incomplete_event_size=HEADER_BYTES,
                timeout_keep_alive=10,
                ssl_certfile=str(tls.cert) if tls else None,
                ssl_keyfile=str(tls.key) if tls else None,
            )
            self.servers.append(uvicorn.Server(config))
        tasks = [
            asyncio.create_task(server.serve(sockets=[sock]))
            for server, (sock, _tls) in zip(self.servers, self.listeners, strict=True)
        ]
        try:
            await stop.wait()
        finally:
            for server in self.servers:
                server.should_exit = True
            await asyncio.gather(*tasks, return_exceptions=True)

    def close(self) -> None:
        """Release the sockets."""
        for sock, _tls in self.listeners:
            sock.close()

    # -- requests ---------------------------------------------------------------------
    def _authorized(self, headers: Mapping[str, str], query: Mapping[str, str]) -> bool:
        if self.token is None:
            return True
        given = query.get("token", "")
        auth = headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        return hmac.compare_digest(given.encode(), self.token.encode())

    async def _page(self, request: Request) -> Response:
        return HTMLResponse(self.page, headers={"Cache-Control": "no-store"})

    async def _push(self, request: Request) -> Response:
        client = request.client.host if request.client else "?"
        try:
            if not self._authorized(request.headers, request.query_params):
                raise PayloadError("unauthorized", "token missing or wrong")
            body = await self._body(request)
            self.hub.ingest(body, time.time(), time.monotonic(), via="http")
        except PayloadError as exc:
            self.reject(exc.reason, f"HTTP push from {client}: {exc.args[0]}")
            text = f"{exc.reason}: {exc.args[0]}\n"
            return PlainTextResponse(text, status_code=STATUS.get(exc.reason, 400))
        except Exception as exc:  # a bug: counted, logged, and the server keeps serving
            self.reject("handler_error", f"HTTP push from {client}: {exc!r}")
            logger.exception("phone push failed")
            return PlainTextResponse("internal error\n", status_code=500)
        return PlainTextResponse("ok\n")

    async def _body(self, request: Request) -> bytes:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise PayloadError("too_large", f"body of {declared} bytes (at most {self.max_bytes})")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_bytes:
                raise PayloadError("too_large", f"body over {self.max_bytes} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    # -- the page's WebSocket -------------------------------------------------------------
    async def _socket(self, websocket: WebSocket) -> None:
        client = websocket.client.host if websocket.client else "?"
        name = websocket.query_params.get("device", "")
        if not self._authorized(websocket.headers, websocket.query_params):
            self.reject("unauthorized", f"phone page from {client}: token missing or wrong")
            await websocket.close(code=1008, reason="unauthorized")
            return
        if not name:
            self.reject("bad_device", f"phone page from {client}: no device name")
            await websocket.close(code=1008, reason="device name missing")
            return
        device = self.hub.device_of(name)
        loop = asyncio.get_running_loop()
        outbox: asyncio.Queue[str] = asyncio.Queue(OUTBOX)

        def send(payload: bytes) -> None:  # any thread: a prediction for this page
            loop.call_soon_threadsafe(_offer, outbox, _prediction_message(payload))

        try:
            self.hub.attach(device, send, time.monotonic())
        except PayloadError as exc:
            self.reject(exc.reason, f"phone page {device!r} from {client}: {exc.args[0]}")
            await websocket.close(code=1013, reason=exc.reason)
            return
        try:
            await websocket.accept()
            self.watch(device, True)
            _offer(outbox, json.dumps({"type": "hello", "device": device}))
            writer = asyncio.create_task(_write(websocket, outbox))
            try:
                await self._read(websocket, device, outbox)
            finally:
                writer.cancel()
        finally:
            self.hub.detach(device, send)
            self.watch(device, False)

    async def _read(self, websocket: WebSocket, device: str, outbox: asyncio.Queue[str]) -> None:
        while True:
            try:
                message = await websocket.receive()
            except (WebSocketDisconnect, RuntimeError):
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("bytes") or (message.get("text") or "").encode()
            try:
                self.hub.ingest(data, time.time(), time.monotonic(), via="page", device=device)
            except PayloadError as exc:
                self.reject(exc.reason, f"phone page {device!r}: {exc.args[0]}")
                _offer(outbox, json.dumps({"type": "error", "reason": exc.reason}))
            except Exception as exc:
                self.reject("handler_error", f"phone page {device!r}: {exc!r}")
                logger.exception("phone page message failed")


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(BACKLOG)  # early clients wait in the backlog until uvicorn serves
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


def _offer(outbox: asyncio.Queue[str], text: str) -> None:
    if outbox.full():
        outbox.get_nowait()  # a page that does not keep up misses older messages
    outbox.put_nowait(text)


def _prediction_message(payload: bytes) -> str:
    prediction: dict[str, Any] = json.loads(payload)
    keep = ("label", "confidence", "smoothed_label", "model", "window_end")
    return json.dumps({"type": "prediction", **{k: prediction.get(k) for k in keep}})


async def _write(websocket: WebSocket, outbox: asyncio.Queue[str]) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError, OSError):
        while True:
            await websocket.send_text(await outbox.get())
