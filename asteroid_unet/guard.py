"""Who may call what on the web page: a table of the routes it uses, each with how its caller is checked.

Gradio names a session by an id that its clients send in the open (in URLs and request bodies), so
knowing it must not be enough to act for it. :class:`SessionGuard` binds every session id to the
owner cookie of the first client that uses it (a secret the server draws and sends only to that
client) and refuses every later request under that id that lacks the cookie. It lets through only
the routes of :data:`ROUTES`: at start-up it reads the app's own routes, and any route missing from
the table (an API the page does not use, or one a new Gradio version adds) is refused. A request
that gives a parameter twice, or a session id in more than one place, is refused too.
"""
import json
import logging
import os
import re
import secrets
from typing import Dict, List, NamedTuple, Optional, Tuple
from urllib.parse import parse_qsl

import anyio  # with Gradio (the page's [app] extra)
from starlette.routing import Match

from .visitors import DEEP_LINKS, Sessions

log = logging.getLogger("asteroid_unet.guard")
COOKIE = "asteroid_unet_owner"
MAX_BODY = 1 << 20  # the largest event body the guard reads to find its session id
SESSION = "session_hash"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")

# How a route's caller is checked: ``public`` routes carry no session id and serve no visitor's
# data; ``path``, ``query`` and ``body`` take one session id there, which the caller must own;
# ``cancel`` is ``body`` that also stops the session's job; ``upload`` is charged to the caller's
# cookie, within its quotas, before its body is read; ``progress`` reports on an upload id its
# caller owns; ``file`` serves a file of the upload folder (Gradio's uploads and the visitors'
# folders, named by secrets), never a URL or a saved deep link. Any other route is refused.
ROUTES: Dict[Tuple[str, str], str] = {
    ("GET", "/"): "public",
    ("HEAD", "/"): "public",
    ("GET", "/config"): "public",
    ("GET", "/config/"): "public",
    ("GET", "/assets/{path:path}"): "public",
    ("GET", "/static/{path:path}"): "public",
    ("GET", "/favicon.ico"): "public",
    ("GET", "/manifest.json"): "public",
    ("GET", "/theme.css"): "public",
    ("GET", "/gradio_api/theme.css"): "public",
    ("GET", "/gradio_api/info"): "public",
    ("GET", "/gradio_api/info/"): "public",
    ("GET", "/gradio_api/startup-events"): "public",  # the server calls it once at launch; later calls do nothing
    ("GET", "/gradio_api/heartbeat/{session_hash}"): "path",
    ("GET", "/gradio_api/queue/data"): "query",
    ("POST", "/gradio_api/queue/join"): "body",
    ("POST", "/gradio_api/cancel"): "cancel",
    ("POST", "/gradio_api/upload"): "upload",
    ("GET", "/gradio_api/upload_progress"): "progress",
    ("GET", "/gradio_api/file={path_or_url:path}"): "file",
    ("HEAD", "/gradio_api/file={path_or_url:path}"): "file",
}


class Route(NamedTuple):
    method: str
    path: str
    rule: Optional[str]  # None: refused
    route: object  # the app's route, for its own matching


def route_table(app) -> List[Route]:
    """The app's routes, in the order it matches them, each with its rule from :data:`ROUTES` (None: refused)."""
    from fastapi.routing import iter_route_contexts

    return [Route(method, context.path, ROUTES.get((method, context.path)), context)
            for context in iter_route_contexts(app.routes) for method in sorted(context.methods or ["*"])]


def route_for(table: List[Route], scope) -> Tuple[Optional[Route], dict]:
    """The route the app would run for ``scope`` (None: none) and its path parameters."""
    for route in table:
        match, child = route.route.matches(scope)
        if match == Match.FULL and route.method == scope["method"]:
            return route, child.get("path_params", {})
    return None, {}


class SessionGuard:
    """ASGI middleware: only the routes of :data:`ROUTES`, each session id for its owner cookie's
    client alone, uploads reserved against the quotas before their body is read.

    A client without the cookie gets one with its first response. The cancel route also stops the
    session's running job at its next chunk (:meth:`Sessions.cancel`), and the owner's heartbeats
    are counted (:meth:`Sessions.heartbeat`: files go when the last one closes).
    """

    def __init__(self, app, sessions: Sessions):
        self.app = app
        self.sessions = sessions
        self.table: Optional[List[Route]] = None

    async def __call__(self, scope, receive, send):
        if self.table is None and scope["type"] in ("lifespan", "http"):
            self.table = route_table(scope.get("app") or self.app)
            refused = sorted({r.path for r in self.table if r.rule is None})
            log.info("the page serves %d routes and refuses %d: %s", len(self.table) - len(refused), len(refused),
                     " ".join(refused))
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        token = owner_token(headers.get(b"cookie", b"").decode("latin-1"))
        if token is None:
            token = secrets.token_urlsafe(24)
            https = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto") == b"https"
            send = with_cookie(send, token, https)
        route, params = route_for(self.table, scope)
        if route is None or route.rule is None:
            return await refuse(send, 404, "this page has no such address", scope)
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        names = [name for name, _ in query]
        if len(set(names)) < len(names):
            return await refuse(send, 400, "a parameter is given twice", scope)
        if "deep_link" in names:
            return await refuse(send, 400, "this page keeps no deep links", scope)
        ids = [value for name, value in query if name == SESSION] + ([params[SESSION]] if SESSION in params else [])
        if route.rule in ("body", "cancel"):
            body, receive = await read_body(receive)
            if body is None:
                return await refuse(send, 400, "an event must be one JSON object under 1 MiB, each key once", scope)
            ids += [body[SESSION]] if SESSION in body else []
        if len(ids) != (route.rule in ("path", "query", "body", "cancel")) or not all(isinstance(i, str) for i in ids):
            return await refuse(send, 400, "a request gives one session id, where its address expects it", scope)
        session = ids[0] if ids else None
        if session is not None and not self.sessions.claim(session, token):
            return await refuse(send, 403, "this session belongs to another client (keep the cookie the page sets)", scope)
        upload_id = dict(query).get("upload_id")
        if upload_id is not None and not self.sessions.claim(f"upload {upload_id}", token):
            return await refuse(send, 403, "this upload belongs to another client", scope)
        if route.rule == "file" and not self.served(params.get("path_or_url", "")):
            return await refuse(send, 404, "this page has no such file", scope)
        if route.rule == "upload":
            return await self.upload(scope, receive, send, headers, token)
        if route.rule == "cancel":
            self.sessions.cancel(session)
        if route.rule != "path":  # the heartbeat
            return await self.app(scope, receive, send)
        self.sessions.heartbeat(session, +1)
        try:
            await self.app(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.sessions.heartbeat, session, -1)

    def served(self, path: str) -> bool:
        """Whether the file route may serve ``path``: a file in the upload folder, not a saved deep link."""
        path = os.path.normpath(path)
        for folder in {os.path.abspath(self.sessions.uploads), os.path.realpath(self.sessions.uploads)}:
            if os.path.isabs(path) and os.path.commonpath([path, folder]) == folder:
                return DEEP_LINKS not in path[len(folder):].split(os.sep)
        return False

    async def upload(self, scope, receive, send, headers, token: str):
        """Pass an upload on after reserving its Content-Length; its files are then charged to
        ``token``, and the reservation ends however the upload ends."""
        length = headers.get(b"content-length", b"").decode()
        if not length.isdigit():
            return await refuse(send, 411, "uploads must give their length", scope)
        size = int(length)
        reason = self.sessions.reserve_upload(token, size)
        if reason is not None:
            return await refuse(send, 507, reason, scope)
        received, paths, body = [0], [], []

        async def counting():
            message = await receive()
            received[0] += len(message.get("body", b""))
            if received[0] > size:  # more than it said: cut off
                return {"type": "http.disconnect"}
            return message

        async def recording(message):
            if message["type"] == "http.response.start" and message["status"] == 200:
                body.append(b"")
            elif message["type"] == "http.response.body" and body:
                body.append(message.get("body", b""))
                if not message.get("more_body"):
                    try:
                        paths.extend(p for p in json.loads(b"".join(body)) if isinstance(p, str))
                    except (ValueError, TypeError):  # an error message, not a list of paths
                        pass
            await send(message)
        try:
            await self.app(scope, counting, recording)
        finally:
            self.sessions.settle_upload(token, size, paths)


async def read_body(receive):
    """A JSON object body, each key once at every depth (None: not one), and a ``receive`` that replays it."""
    raw, more = b"", True
    while more and len(raw) <= MAX_BODY:
        message = await receive()
        raw += message.get("body", b"")
        more = message.get("more_body", False)
    try:
        body = None if more else json.loads(raw, object_pairs_hook=unique_keys)
    except ValueError:
        body = None
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": raw, "more_body": False}
    return (body if isinstance(body, dict) else None), replay


def unique_keys(pairs):
    """``json.loads``' object hook: a dict, or ValueError for a key given twice."""
    found = dict(pairs)
    if len(found) < len(pairs):
        raise ValueError("a key is given twice")
    return found


def owner_token(cookie_header: str) -> Optional[str]:
    """The owner token in a ``Cookie`` header, if it holds a well-formed one."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and TOKEN.match(value):
            return value
    return None


def with_cookie(send, token: str, https: bool = False):
    """``send`` that adds the owner cookie to the response's headers. Over HTTPS it is also sent in
    a frame of another site (a Space's page on huggingface.co), partitioned by that site."""
    where = "SameSite=None; Secure; Partitioned" if https else "SameSite=Lax"
    cookie = f"{COOKIE}={token}; Path=/; HttpOnly; {where}".encode("latin-1")

    async def sending(message):
        if message["type"] == "http.response.start":
            message = dict(message, headers=[*message.get("headers", []), (b"set-cookie", cookie)])
        await send(message)
    return sending


async def refuse(send, status: int, reason: str, scope=None) -> None:
    """A plain-text refusal: one line (logged with the request's method and path)."""
    if scope is not None:
        log.warning("refused %s %s: %s", scope.get("method"), scope.get("path"), reason)
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": reason.encode()})
