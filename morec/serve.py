"""`morec serve`: a trained model as an HTTP JSON API (FastAPI on uvicorn).

    GET  /health      -> {"status": "ok", "items": N, "backbone": ..., "can_add_items": ...}
    POST /recommend   {"history": ["i1", "i2"], "k": 10}  or  {"user": "u7", "k": 10}
                      -> {"items": [{"id", "title", "score"}, ...], "history_length": n}
    POST /items       {"items": [{"book_sku": "new1", "book_title": "...", "blurb": "..."}, ...],
                       "columns": {"sku": "book_sku"}}   (optional: your names -> the dataset's)
                      -> {"added": n, "ids": [...], "items": N}
                      MoRec models served from a run directory; the id is "id", "item" or the dataset's own id
                      column, the text fields are the dataset's column names (GET /health: item_fields). Added
                      items are saved into the run directory (added_items.safetensors): they survive restarts.
                      vision models: {"id": ..., "image_base64": "<the image file, base64>"} or
                      {"id": ..., "image": "path/under/--image-root.jpg"}

What the server reads is limited: image paths (and ``lmdb:`` stores) only under ``--image-root``,
after resolving ``..`` and symlinks, with one answer for "not allowed or not found"; no path at all
without that option (uploads only); at most ``max_image_pixels`` per image, checked from the header
before decoding. ``--token`` (or the MOREC_SERVE_TOKEN environment variable) makes POST /items
require ``Authorization: Bearer <token>``. /health names no filesystem path.

Every bad request is a 4xx with a readable ``detail``: a malformed body or wrong types (422), k out of
bounds, a history too long or empty, unknown items or users, a history sent to a user-id model, items
added to an ID model (422), ids already in the catalogue (409), a body over the size limit (413).

:func:`load_test` is a small closed-loop load generator (N clients for T seconds) used by the tests and
benchmarks/bench_serve.py.
"""
# no `from __future__ import annotations`: FastAPI reads the request models from the endpoint annotations

import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from .catalog import CatalogError
from .extras import need
from .recommend import RecommenderService, ServingError


@dataclass
class Limits:
    max_k: int = 1000
    max_history: int = 2000  # item ids per request (the model reads the latest max_len of them)
    max_body: int = 1 << 20  # bytes per request body
    max_new_items: int = 1000  # per POST /items
    max_image_pixels: int = 25_000_000  # per new item's image (width x height), read from its header


TOKEN_ENV = "MOREC_SERVE_TOKEN"


def check_options(port: int, threads: int, limits: Limits) -> None:
    """Options that would start a server refusing every request (or not start at all): refused before binding."""
    if not 0 <= port <= 65535:
        raise ServingError(f"--port {port} is not a TCP port (0 to 65535; 0 = any free port)")
    if threads < 1:
        raise ServingError(f"--threads {threads}: give at least 1 (torch threads per request)")
    for name, value in (("--max-k", limits.max_k), ("--max-history", limits.max_history),
                        ("--max-body", limits.max_body), ("--max-image-pixels", limits.max_image_pixels)):
        if value < 1:
            raise ServingError(f"{name} {value}: give at least 1 (with {value} every request would be refused)")


def is_loopback(host: str) -> bool:
    import ipaddress

    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def exposure_warning(host: str, token: str | None) -> str | None:
    """The warning for a server reachable from other machines that anyone may add items to, or None."""
    if token or is_loopback(host):
        return None
    return (f"morec serve: warning: --host {host} accepts connections from other machines and no --token (or "
            f"{TOKEN_ENV}) is set: anyone who can reach it can add items with POST /items")


def _require_fastapi():
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise ServingError("morec serve needs fastapi and uvicorn, which the serve extra installs: "
                           "pip install -e '.[serve]' (or pip install 'morec[serve]')") from None


class BodyLimit:
    """ASGI middleware: a request body over ``max_body`` bytes is answered 413 before the app reads it
    (by Content-Length when given, else by counting a chunked body)."""

    def __init__(self, app, max_body: int):
        self.app, self.max_body = app, max_body

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None:
            try:
                too_big = int(declared) > self.max_body
            except ValueError:
                return await self._reply(send, 400, "bad Content-Length header")
            if too_big:
                return await self._reply(send, 413, f"request body of {int(declared)} bytes is over the limit of {self.max_body}")
            return await self.app(scope, receive, send)
        # no length given (chunked): read it all here, up to the limit, then replay it to the app
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return await self.app(scope, _replay([message]), send)
            size += len(message.get("body", b""))
            if size > self.max_body:
                return await self._reply(send, 413, f"request body is over the limit of {self.max_body} bytes")
            chunks.append(message)
            if not message.get("more_body"):
                break
        return await self.app(scope, _replay(chunks), send)

    @staticmethod
    async def _reply(send, status: int, detail: str):
        body = json.dumps({"detail": detail}).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                                (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


def _replay(messages):
    messages = list(messages)

    async def receive():
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}
    return receive


def create_app(service: RecommenderService, limits: Limits | None = None, image_root=None, token: str | None = None):
    """The FastAPI application for ``service`` (wrapped in the body-size limit). New items' image paths
    are read only under ``image_root`` (none without it); ``token`` guards POST /items."""
    _require_fastapi()
    from fastapi import FastAPI

    limits = limits or Limits()
    if service.content is not None:
        service.content.configure_images(image_root, confine=True, max_pixels=limits.max_image_pixels)
    if token is not None and not token.strip():
        raise ServingError("the serve token is empty; give a non-empty --token or unset " + TOKEN_ENV)
    app = FastAPI(title="morec", description="Recommendations from a trained morec model")
    _add_error_answers(app)
    _add_recommend_routes(app, service, limits)
    _add_items_route(app, service, limits, token)
    return BodyLimit(app, limits.max_body)


def _add_error_answers(app) -> None:
    """A person's mistake (a known error, a malformed body) answered as one readable ``detail``."""
    _require_fastapi()
    from fastapi import Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse

    @app.exception_handler(ServingError)
    @app.exception_handler(CatalogError)
    async def known_error(request: Request, err: ValueError):
        return JSONResponse({"detail": str(err)}, status_code=getattr(err, "status", 422))

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, err: RequestValidationError):
        problems = []
        for e in err.errors():
            where = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
            problems.append(f"{where}: {e.get('msg', 'invalid')}")
        return JSONResponse({"detail": "; ".join(problems[:10])}, status_code=422)


def _add_recommend_routes(app, service: RecommenderService, limits: Limits) -> None:
    """GET /health and POST /recommend."""
    from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr

    class RecommendRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        user: StrictStr | StrictInt | None = None
        history: list[StrictStr | StrictInt] | None = None
        k: StrictInt = 10
        exclude_history: bool = True

    @app.get("/health")
    def health() -> dict:
        info = service.info()
        info.pop("source", None)  # the run directory's path is nobody's business over HTTP
        return info

    @app.post("/recommend")
    def recommend(req: RecommendRequest) -> dict:
        if not 1 <= req.k <= limits.max_k:
            raise ServingError(f"k must be between 1 and {limits.max_k}, got {req.k}")
        if req.history is not None and len(req.history) > limits.max_history:
            raise ServingError(f"history has {len(req.history)} items; at most {limits.max_history} are accepted "
                               f"(the model reads the latest {service.max_len})")
        return service.recommend(user=req.user, history=req.history, k=req.k, exclude_history=req.exclude_history)


def _authorized(request, token: str | None) -> bool:
    import hmac

    if token is None:
        return True
    # the header's bytes as sent (Starlette decodes them as latin-1), against the token's UTF-8 bytes
    raw = next((v for k, v in request.scope.get("headers") or [] if k.lower() == b"authorization"), b"")
    scheme, _, given = raw.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(given.strip(), token.encode("utf-8"))


def _add_items_route(app, service: RecommenderService, limits: Limits, token: str | None) -> None:
    """POST /items: new items encoded from their content and made recommendable (guarded by ``token``)."""
    _require_fastapi()
    from fastapi import Request
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel, ConfigDict, Field, StrictStr

    class AddItemsRequest(BaseModel):
        model_config = ConfigDict(extra="forbid")
        items: list[dict[str, Any]] = Field(min_length=1)
        columns: dict[str, StrictStr] | None = None

    @app.post("/items")
    def add_items(req: AddItemsRequest, request: Request):
        if not _authorized(request, token):
            return JSONResponse({"detail": "POST /items needs the header Authorization: Bearer <token> "
                                           "(the token the server was started with)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        if len(req.items) > limits.max_new_items:
            raise ServingError(f"{len(req.items)} items in one request; at most {limits.max_new_items}")
        if not service.can_add_items:
            raise CatalogError(service.cannot_add or "this model cannot add items")
        for i, item in enumerate(req.items):
            bad = [k for k, v in item.items() if not isinstance(v, (str, int, float, type(None)))]
            if bad:
                raise ServingError(f"items[{i}]: field(s) {', '.join(bad)} must be strings or numbers")
        added = service.add_items(req.items, req.columns)
        return {"added": len(added), "ids": added, "items": service.n_items}


def make_server(service: RecommenderService, host: str = "127.0.0.1", port: int = 8000,
                limits: Limits | None = None, log_level: str = "warning", image_root=None, token: str | None = None):
    _require_fastapi()
    import uvicorn

    app = create_app(service, limits, image_root, token)
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False))


def serve(path, host: str = "127.0.0.1", port: int = 8000, device: str = "cpu", index: str = "exact",
          limits: Limits | None = None, log=print, image_root=None, token: str | None = None) -> None:
    """Load a run or export directory and serve it until interrupted."""
    _require_fastapi()
    import sys
    from pathlib import Path

    check_options(port, 1, limits or Limits())
    if image_root is not None and not Path(image_root).is_dir():
        raise ServingError(f"--image-root {image_root}: no such folder")
    service = RecommenderService.load(path, device, index)
    warning = exposure_warning(host, token)
    if warning:
        print(warning, file=sys.stderr)
    info = service.info()
    log(f"serving {path}: {info['items']:,} items ({info['added_items']} added), {info['backbone']} "
        f"({'history' if service.uses_history else 'user id'} input), index {info['index']}, "
        f"adding items {'on' if service.can_add_items else 'off'}"
        f"{' (token required)' if token else ''}; http://{host}:{port}")
    make_server(service, host, port, limits, log_level="info", image_root=image_root, token=token).run()


class BackgroundServer:
    """A real uvicorn server on a free loopback port, in a thread: ``with BackgroundServer(service) as url:``."""

    def __init__(self, service: RecommenderService, limits: Limits | None = None, host: str = "127.0.0.1",
                 image_root=None, token: str | None = None):
        import socket

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.url = f"http://{host}:{self.sock.getsockname()[1]}"
        self.server = make_server(service, host, 0, limits, image_root=image_root, token=token)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the server did not start")
            time.sleep(0.02)
        return self.url

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()


def wait_until_healthy(url: str, proc=None, timeout: float = 60.0) -> None:
    """Poll ``url``/health until it answers 200; raise RuntimeError (with the server's output when ``proc``,
    a ``subprocess.Popen`` with text stdout, has exited) if it dies or ``timeout`` seconds pass."""
    import urllib.error
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url + "/health", timeout=1) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited before answering /health:\n{proc.stdout.read() if proc.stdout else ''}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer {url}/health within {timeout:.0f} s")
        time.sleep(0.2)


def load_test(url: str, requests: list[dict], clients: int = 8, seconds: float = 3.0, path: str = "/recommend",
              timeout: float = 10.0) -> dict:
    """Closed-loop load: ``clients`` threads, each with its own keep-alive connection, send the
    ``requests`` bodies round-robin for ``seconds``. Returns counts, errors and latency percentiles (ms)."""
    httpx = need("httpx", "the serving load test")
    lat: list[list[float]] = [[] for _ in range(clients)]
    errors: list[list[str]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    def client(c: int) -> None:
        with httpx.Client(base_url=url, timeout=timeout) as http:
            i = c
            while time.perf_counter() < stop:
                body = requests[i % len(requests)]
                i += clients
                t0 = time.perf_counter()
                try:
                    r = http.post(path, json=body)
                    ok = r.status_code == 200
                    if not ok:
                        errors[c].append(f"{r.status_code}: {r.text[:200]}")
                except httpx.HTTPError as e:
                    ok = False
                    errors[c].append(repr(e))
                if ok:
                    lat[c].append((time.perf_counter() - t0) * 1000)

    t0 = time.perf_counter()
    threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    import numpy as np

    all_lat = np.array([x for row in lat for x in row])
    errs = [e for row in errors for e in row]
    return {"clients": clients, "seconds": round(wall, 2), "requests": int(len(all_lat) + len(errs)), "ok": int(len(all_lat)),
            "errors": len(errs), "first_errors": errs[:3], "rps": round(len(all_lat) / wall, 1),
            "p50_ms": round(float(np.percentile(all_lat, 50)), 2) if len(all_lat) else None,
            "p99_ms": round(float(np.percentile(all_lat, 99)), 2) if len(all_lat) else None,
            "max_ms": round(float(all_lat.max()), 2) if len(all_lat) else None}
