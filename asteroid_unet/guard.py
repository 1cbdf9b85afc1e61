"""Who owns what on the web page: session ids bound to a cookie, visitors' secret folders, disk quotas.

Gradio names a session by an id that its clients send in the open (in URLs and request bodies), so
knowing it must not be enough to act for it. :class:`SessionGuard` binds every session id to the
owner cookie of the first client that uses it (a secret the server draws and sends only to that
client) and refuses every later request under that id that lacks the cookie: someone else's
heartbeat, queue stream, cancel or job under it never reaches Gradio. :class:`Sessions` keeps each
visitor's files in a folder named by another secret, deletes them when the owner's last heartbeat
closes (or, for API clients, when they have been idle), and holds every visitor and the whole
upload folder under a disk quota.
"""
import json
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Dict, Optional, Tuple

import anyio  # with Gradio (the page's [app] extra)

IDLE_SECONDS = 300.0  # a session with no open heartbeat (an API client) is deleted this long after its last request
STRAY_SECONDS = 3600.0  # Gradio's copy of an upload no event took goes after this (a queued event may take it late)
MAX_AGE_SECONDS = 86400.0  # any visitor folder is deleted at this age, even with its heartbeat still open
SESSION_QUOTA = 2048 * 2**20  # bytes of uploads, stems and pictures one session may hold
DISK_QUOTA = 8192 * 2**20  # bytes the whole upload folder (Gradio's uploads and every visitor's folder) may hold
COOKIE = "asteroid_unet_owner"
TOKEN = re.compile(r"^[A-Za-z0-9_-]{32}$")
SESSION_IN_PATH = re.compile(r"/gradio_api/(?:heartbeat|stream)/([^/]+)(?:/|$)")
SESSION_IN_BODY = re.compile(r"/gradio_api/(?:queue/join|cancel|run/[^/]+|api/[^/]+|call/[^/]+|call/v2/[^/]+|"
                             r"component_server)/?$")
HEARTBEAT = re.compile(r"/gradio_api/heartbeat/[^/]+/?$")
UPLOAD = re.compile(r"/gradio_api/upload/?$")
GRADIO_HASH = re.compile(r"^[0-9a-f]{64}$")  # the name of a folder Gradio's upload route writes into
MAX_BODY = 1 << 20  # the largest event body the guard reads to find its session id


def megabytes(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


def file_size(path: str) -> int:
    """The size of ``path`` (0 once it is gone)."""
    try:
        return os.stat(path).st_size
    except OSError:
        return 0


def disk_bytes(folder: Path) -> int:
    """Bytes of the files under ``folder``, each file counted once however many links it has."""
    seen: Dict[Tuple[int, int], int] = {}
    for path in Path(folder).rglob("*"):
        try:
            stat = path.lstat()
        except FileNotFoundError:
            continue
        if path.is_file() and not path.is_symlink():
            seen[(stat.st_dev, stat.st_ino)] = stat.st_size
    return sum(seen.values())


class Visitor:
    """One session's server-side state: its secret folder, the songs it uploaded, its job."""

    def __init__(self, root: Path):
        self.folder = root / secrets.token_urlsafe(16)
        self.uploads: set = set()
        self.busy = False
        self.born = self.touched = time.monotonic()


class Sessions:
    """Visitors' folders, their uploads, their running job, who owns each session id, and when files go.

    Every folder is named by the server (:func:`secrets.token_urlsafe`): a visitor's folder holds
    one sub-folder per upload and per job, so no job ever overwrites files of another. A visitor's
    folder is deleted when the last heartbeat of its owner closes (while a job runs, when it ends),
    or by :meth:`sweep`: sessions idle for ``idle_seconds`` without an open heartbeat (API clients),
    and any folder older than ``max_age``.

    Args:
        root: where visitor folders go.
        uploads: the folder whose size ``disk_quota`` bounds (Gradio's upload folder; None: ``root``).
        idle_seconds: a session without an open heartbeat goes this long after its last request.
        max_age: seconds after which a visitor's folder goes whatever its connections.
        session_quota: bytes one session's folder may hold.
        disk_quota: bytes ``uploads`` may hold.
    """

    def __init__(self, root: Path, uploads: Optional[Path] = None, idle_seconds: float = IDLE_SECONDS,
                 max_age: float = MAX_AGE_SECONDS, session_quota: int = SESSION_QUOTA, disk_quota: int = DISK_QUOTA):
        self.root = Path(root)
        self.uploads = Path(uploads) if uploads else self.root
        self.idle_seconds = idle_seconds
        self.max_age = max_age
        self.session_quota = session_quota
        self.disk_quota = disk_quota
        self.taken: Dict[str, float] = {}  # Gradio's uploads a session copied, by path -> when
        self._lock = threading.Lock()
        self._visitors: Dict[str, Visitor] = {}
        self._beats: Dict[str, int] = {}  # the owner's open heartbeat connections per session id
        self._owners: Dict[str, list] = {}  # session id -> [owner token, last request (monotonic)]
        self._uploaded: Dict[str, set] = {}  # owner token -> paths Gradio's upload route wrote for it

    # ----- who owns a session id -----

    def claim(self, session: str, token: str) -> bool:
        """Whether ``token`` owns ``session``; the first token to use a session id becomes its owner."""
        now = time.monotonic()
        with self._lock:
            owner = self._owners.setdefault(session, [token, now])
            if owner[0] != token:
                return False
            owner[1] = now
            if session in self._visitors:
                self._visitors[session].touched = now
            return True

    def uploaded(self, token: str, paths) -> None:
        """Gradio's upload route wrote ``paths`` for the client holding ``token``."""
        with self._lock:
            self._uploaded.setdefault(token, set()).update(str(p) for p in paths)

    def upload_room(self, token: str, size: int) -> Optional[str]:
        """Why the client holding ``token`` may not upload ``size`` more bytes (None: it may): its uploads
        still on disk count against the session quota, and everything against the disk quota."""
        with self._lock:
            paths = set(self._uploaded.get(token, ()))
        held = sum(file_size(p) for p in paths)
        if held + size > self.session_quota:
            return (f"this client's uploads would take {megabytes(held + size)}; the page keeps up to "
                    f"{megabytes(self.session_quota)} per visitor")
        if disk_bytes(self.uploads) + size > self.disk_quota:
            return "the page's disk is full; try again later"
        return None

    # ----- folders -----

    def _visitor(self, session: str) -> Visitor:
        """The session's state, made on first use (call with the lock held)."""
        visitor = self._visitors.get(session)
        if visitor is None:
            visitor = self._visitors[session] = Visitor(self.root)
        visitor.touched = time.monotonic()
        return visitor

    def folder(self, session: str) -> Path:
        """The session's folder (a server secret; the session id appears nowhere in it)."""
        with self._lock:
            return self._visitor(session).folder

    def make_room(self, session: str, size: int, new: Optional[int] = None) -> None:
        """ValueError, with a one-line reason, unless the session's folder can take ``size`` more bytes
        and the upload folder ``new`` more (default ``size``; a hard link adds none)."""
        held = disk_bytes(self.folder(session))
        if held + size > self.session_quota:
            raise ValueError(f"this tab would hold {megabytes(held + size)} of files; the page keeps up to "
                             f"{megabytes(self.session_quota)} per visitor: close the tab to start afresh")
        if disk_bytes(self.uploads) + (size if new is None else new) > self.disk_quota:
            raise ValueError("the page's disk is full; try again later")

    def keep(self, session: str, upload: Path) -> Path:
        """Copy (hard-link where it can) a song Gradio received into a new folder of the session's.

        The upload itself stays where Gradio put it, for anyone else who sent the same bytes (Gradio
        names an upload by the hash of its bytes); the sweep deletes it (see :meth:`stray_age`).
        Returns the session's copy.
        """
        upload = Path(upload)
        try:
            size = upload.stat().st_size
        except OSError:
            raise ValueError("the upload is gone: upload the song again") from None
        self.make_room(session, size, new=0)
        with self._lock:
            kept = self._visitor(session).folder / secrets.token_urlsafe(8) / upload.name
        kept.parent.mkdir(parents=True)
        try:
            try:
                os.link(upload, kept)
            except OSError:  # another file system, or links not allowed: a copy, within the quota
                self.make_room(session, size)
                shutil.copyfile(upload, kept)
        except OSError:  # swept meanwhile
            shutil.rmtree(kept.parent, ignore_errors=True)
            raise ValueError("the upload is gone: upload the song again") from None
        with self._lock:
            self._visitor(session).uploads.add(kept)
            self.taken[os.path.realpath(upload)] = time.time()
        return kept

    def owns(self, session: str, path) -> bool:
        """Whether ``path`` is a song this session uploaded (and the page kept)."""
        with self._lock:
            visitor = self._visitors.get(session)
            return visitor is not None and Path(path) in visitor.uploads

    def job_folder(self, session: str) -> Path:
        """A new, empty-to-be folder for one job of the session."""
        with self._lock:
            return self._visitor(session).folder / secrets.token_urlsafe(8)

    def begin(self, session: str) -> bool:
        """Mark ``session`` busy; False when a job of it is still running."""
        with self._lock:
            visitor = self._visitor(session)
            if visitor.busy:
                return False
            visitor.busy = True
            return True

    def end(self, session: str) -> None:
        with self._lock:
            visitor = self._visitors.get(session)
            if visitor is not None:
                visitor.busy = False
                visitor.touched = time.monotonic()
        self.release(session)

    # ----- when files go -----

    def heartbeat(self, session: str, change: int) -> None:
        """The owner's heartbeat connection of ``session`` opened (+1) or closed (-1)."""
        with self._lock:
            open_now = self._beats.get(session, 0) + change
            if open_now > 0:
                self._beats[session] = open_now
            else:
                self._beats[session] = 0  # it had one: its files go when none is open
        if open_now <= 0:
            self.release(session)

    def release(self, session: str) -> None:
        """Delete the session's files if its owner had a heartbeat, has none open now, and runs no job."""
        with self._lock:
            visitor = self._visitors.get(session)
            if visitor is None or visitor.busy or self._beats.get(session, 1) > 0:
                return
        self.close(session)

    def close(self, session: str) -> None:
        """Delete the session's folder (its uploads, stems and pictures) and forget it."""
        with self._lock:
            visitor = self._visitors.pop(session, None)
            self._beats.pop(session, None)
        if visitor is not None:
            shutil.rmtree(visitor.folder, ignore_errors=True)

    def sweep(self) -> None:
        """Delete what no open session will use: sessions idle without an open heartbeat (API
        clients), folders older than ``max_age``, folders under ``root`` that no session owns; and
        forget the owners of session ids nobody used for ``idle_seconds``."""
        now = time.monotonic()
        with self._lock:
            doomed = [s for s, v in self._visitors.items() if not v.busy and (
                now - v.born > self.max_age or (not self._beats.get(s) and now - v.touched > self.idle_seconds))]
            for session in [s for s, (_, seen) in self._owners.items()
                            if s not in self._visitors and not self._beats.get(s) and now - seen > self.idle_seconds]:
                del self._owners[session]
                self._beats.pop(session, None)
            for token, paths in list(self._uploaded.items()):
                paths.difference_update([p for p in paths if not os.path.exists(p)])
                if not paths:
                    del self._uploaded[token]
        for session in doomed:
            self.close(session)
        with self._lock:
            owned = {v.folder.name for v in self._visitors.values()}
        for entry in self.root.glob("*"):
            if entry.name not in owned and time.time() - entry.stat().st_mtime > self.idle_seconds:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)

    def stray_age(self, path: str) -> float:
        """Seconds after which the sweep deletes Gradio's upload ``path``: ``idle_seconds`` once a
        session copied it (anyone who sent the same bytes took theirs by then), else an hour."""
        return self.idle_seconds if os.path.realpath(path) in self.taken else STRAY_SECONDS


def remove_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty, or gone
        pass


def sweep_strays(uploads: set, sessions: Sessions) -> None:
    """Delete Gradio's uploads (``uploads``: its record of its upload route's files) older than
    :meth:`Sessions.stray_age`, with their folders when empty."""
    for path in list(uploads):
        try:
            if time.time() - os.stat(path).st_mtime > sessions.stray_age(path):
                os.unlink(path)
                uploads.discard(path)
                sessions.taken.pop(os.path.realpath(path), None)
                remove_empty(Path(path).parent)
        except FileNotFoundError:
            uploads.discard(path)
            sessions.taken.pop(os.path.realpath(path), None)


def sweep_empty_temp_files(folder: Path, older_than: float) -> None:
    """Delete the empty ``tmp*`` files Gradio's upload parser leaves in ``folder`` (one per upload
    through ``gradio_client``), once older than ``older_than`` seconds (an upload still arriving
    has data in its file by then)."""
    for path in folder.glob("tmp*"):
        try:
            stat = path.lstat()
            if path.is_file() and stat.st_size == 0 and time.time() - stat.st_mtime > older_than:
                path.unlink()
        except FileNotFoundError:
            pass


def sweep_before(sessions: Sessions, started: float) -> None:
    """Delete what a previous run left in the upload folder, last changed before ``started`` (a Unix
    time), which no session of this run owns: Gradio's upload folders (named by a SHA-256), the
    empty ``tmp*`` files of its upload parser, and the visitors' folders. Nothing else is touched,
    even when the upload folder is a shared one."""
    for entry in [*sessions.uploads.glob("*"), *sessions.root.glob("*")]:
        try:
            stat = entry.lstat()
            ours = (entry.parent == sessions.root or GRADIO_HASH.match(entry.name)
                    or (entry.name.startswith("tmp") and stat.st_size == 0))
            if ours and stat.st_mtime < started:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        except FileNotFoundError:
            pass


class SessionGuard:
    """ASGI middleware: binds session ids to owner cookies, counts owners' heartbeats, caps uploads.

    A request under a session id (in its path, query or JSON body) passes only with the cookie of
    that id's owner (:meth:`Sessions.claim`); any other gets a 403 and never reaches Gradio. A
    client without the cookie gets one with its first response. Uploads must say their length and
    fit :meth:`Sessions.upload_room` (the client's uploads still on disk within the session quota,
    everything within the disk quota), else they are refused before their body is read.
    """

    def __init__(self, app, sessions: Sessions):
        self.app = app
        self.sessions = sessions

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path, headers = scope.get("path", ""), dict(scope.get("headers") or [])
        token = owner_token(headers.get(b"cookie", b"").decode("latin-1"))
        if token is None:
            token = secrets.token_urlsafe(24)
            https = scope.get("scheme") == "https" or headers.get(b"x-forwarded-proto") == b"https"
            send = with_cookie(send, token, https)
        session, receive = await session_of(scope, path, receive)
        if receive is None:
            return await refuse(send, 413, "an event's body must be under 1 MiB")
        if session is not None and not self.sessions.claim(session, token):
            return await refuse(send, 403, "this session belongs to another client (keep the cookie the page sets)")
        if UPLOAD.search(path) and scope.get("method") == "POST":
            length = headers.get(b"content-length", b"").decode()
            if not length.isdigit():
                return await refuse(send, 411, "uploads must give their length")
            reason = await anyio.to_thread.run_sync(self.sessions.upload_room, token, int(length))
            if reason is not None:
                return await refuse(send, 507, reason)
            send = recording_uploads(send, self.sessions, token)
        if session is None or not HEARTBEAT.search(path):
            return await self.app(scope, receive, send)
        self.sessions.heartbeat(session, +1)
        try:
            await self.app(scope, receive, send)
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.sessions.heartbeat, session, -1)


def owner_token(cookie_header: str) -> Optional[str]:
    """The owner token in a ``Cookie`` header, if it holds a well-formed one."""
    for part in cookie_header.split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and TOKEN.match(value):
            return value
    return None


def recording_uploads(send, sessions: Sessions, token: str):
    """``send`` that tells ``sessions`` which files an upload response lists (a JSON list of paths)."""
    body = []

    async def sending(message):
        if message["type"] == "http.response.body":
            body.append(message.get("body", b""))
            if not message.get("more_body"):
                try:
                    paths = json.loads(b"".join(body))
                    sessions.uploaded(token, [p for p in paths if isinstance(p, str)])
                except (ValueError, TypeError):  # an error message, not a list of paths
                    pass
        await send(message)
    return sending


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


async def session_of(scope, path: str, receive):
    """The session id a request acts under (None: none) and a ``receive`` that replays its body."""
    found = SESSION_IN_PATH.search(path)
    if found and scope.get("method") == "GET":
        return found.group(1), receive
    if path.endswith("/gradio_api/queue/data"):
        from urllib.parse import parse_qs

        values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("session_hash")
        return (values[0] if values else None), receive
    if not (SESSION_IN_BODY.search(path) and scope.get("method") == "POST"):
        return None, receive
    body, more = b"", True
    while more and len(body) <= MAX_BODY:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if more:
        return None, None  # too long for an event
    try:
        session = json.loads(body).get("session_hash")
    except (ValueError, AttributeError):
        session = None
    sent = False

    async def replay():
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}
    return (session if isinstance(session, str) else None), replay


async def refuse(send, status: int, reason: str) -> None:
    """A plain-text refusal: one line."""
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8")]})
    await send({"type": "http.response.body", "body": reason.encode()})
