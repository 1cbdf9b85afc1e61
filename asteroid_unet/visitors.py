"""The page's visitors: their secret folders, their jobs, and the disk they may hold.

:class:`Sessions` keeps each visitor's files in a folder named by a secret, deletes them when the
owner's last heartbeat closes (or, for API clients, when they have been idle), and holds every
visitor and the whole upload folder under a disk quota through a :class:`Ledger`: bytes are
reserved before they are written (an upload's from its Content-Length, a job's from its song's
length), so simultaneous uploads and jobs cannot pass the quotas together, and no check walks
the disk.
"""
import math
import os
import re
import secrets
import shutil
import threading
import time
from pathlib import Path
from typing import Callable, Dict, Iterable, Optional, Set, Tuple

from .errors import Refusal

IDLE_SECONDS = 300.0  # a session with no open heartbeat (an API client) is deleted this long after its last request
STRAY_SECONDS = 3600.0  # Gradio's copy of an upload no event took goes after this (a queued event may take it late)
MAX_AGE_SECONDS = 86400.0  # any visitor folder is deleted at this age, even with its heartbeat still open
SESSION_QUOTA = 2048 * 2**20  # bytes of uploads, stems and pictures one session may hold
DISK_QUOTA = 8192 * 2**20  # bytes the whole upload folder (Gradio's uploads and every visitor's folder) may hold
GRADIO_HASH = re.compile(r"^[0-9a-f]{64}$")  # the name of a folder Gradio's upload route writes into
DEEP_LINKS = "deep_links"  # where Gradio's deep-link route saves a session's outputs (the page closes that route)


def megabytes(size: int) -> str:
    return f"{size / 2**20:.3g} MB"


class Ledger:
    """Bytes held on disk and reserved, by owner, within a quota per owner and a total one; O(1) checks.

    A file is charged to each owner that holds a path to it; the total counts each file (inode)
    once, however many charged paths link to it. A reservation counts in both until it is settled
    into the files it became (none, when it failed).
    """

    def __init__(self, per_owner: int, total: int):
        self.per_owner, self.quota = per_owner, total
        self.total = 0
        self._lock = threading.Lock()
        self._held: Dict[object, int] = {}
        self._files: Dict[str, list] = {}  # path -> [inode, size, owners]
        self._links: Dict[Tuple[int, int], int] = {}  # inode -> charged paths to it
        self._owned: Dict[object, Set[str]] = {}

    def held(self, owner) -> int:
        return self._held.get(owner, 0)

    def reserve(self, owner, size: int, new: Optional[int] = None) -> Optional[str]:
        """Reserve ``size`` bytes for ``owner`` and ``new`` (default ``size``) on the disk; None when
        done, else why not: ``"owner"`` (over the owner's quota) or ``"disk"`` (over the total)."""
        new = size if new is None else new
        with self._lock:
            if self.held(owner) + size > self.per_owner:
                return "owner"
            if self.total + new > self.quota:
                return "disk"
            self._held[owner] = self.held(owner) + size
            self.total += new
        return None

    def settle(self, owner, size: int, new: Optional[int] = None, paths: Iterable = ()) -> None:
        """End a reservation (:meth:`reserve`'s arguments) and charge ``owner`` the files ``paths``."""
        with self._lock:
            self._held[owner] = self.held(owner) - size
            self.total -= size if new is None else new
            for path in paths:
                self._charge(owner, str(path))
            if not self._held[owner]:
                del self._held[owner]

    def _charge(self, owner, path: str) -> None:
        try:
            stat = os.stat(path)
        except OSError:
            return
        entry = self._files.setdefault(path, [(stat.st_dev, stat.st_ino), stat.st_size, set()])
        if owner in entry[2]:
            return
        if not entry[2]:
            self._links[entry[0]] = self._links.get(entry[0], 0) + 1
            self.total += entry[1] if self._links[entry[0]] == 1 else 0
        entry[2].add(owner)
        self._held[owner] = self.held(owner) + entry[1]
        self._owned.setdefault(owner, set()).add(path)

    def drop(self, path, owners: Optional[Iterable] = None) -> None:
        """Stop charging ``path`` to ``owners`` (None: to anyone): it was deleted."""
        with self._lock:
            self._drop(str(path), owners)

    def _drop(self, path: str, owners) -> None:
        entry = self._files.get(path)
        if entry is None:
            return
        for owner in list(entry[2] if owners is None else owners):
            if owner in entry[2]:
                entry[2].discard(owner)
                self._held[owner] -= entry[1]
                if not self._held[owner]:
                    del self._held[owner]
                self._owned[owner].discard(path)
                if not self._owned[owner]:
                    del self._owned[owner]
        if not entry[2]:
            del self._files[path]
            self._links[entry[0]] -= 1
            if not self._links[entry[0]]:
                del self._links[entry[0]]
                self.total -= entry[1]

    def drop_owner(self, owner) -> None:
        """Stop charging ``owner`` anything it holds (its folder was deleted)."""
        with self._lock:
            for path in list(self._owned.get(owner, ())):
                self._drop(path, [owner])

    def prune(self) -> None:
        """Forget the files deleted behind the ledger's back (the sweeper calls this, never a request)."""
        with self._lock:
            for path in [p for p in self._files if not os.path.lexists(p)]:
                self._drop(path, None)


class Visitor:
    """One session's server-side state: its secret folder, the songs it uploaded, its job."""

    def __init__(self, root: Path):
        self.folder = root / secrets.token_urlsafe(16)
        self.uploads: set = set()
        self.busy = False
        self.cancelled = -math.inf  # when the owner last cancelled (monotonic)
        self.born = self.touched = time.monotonic()


class Sessions:
    """Visitors' folders, their uploads, their running job, who owns each session id, and when files go.

    Every folder is named by the server (:func:`secrets.token_urlsafe`): a visitor's folder holds
    one sub-folder per upload and per job, so no job ever overwrites files of another. A visitor's
    folder is deleted when the last heartbeat of its owner closes (while a job runs, when it ends),
    or by :meth:`sweep`: sessions idle for ``idle_seconds`` without an open heartbeat (API clients),
    and any folder older than ``max_age``. :attr:`ledger` charges each client's uploads to its owner
    token and each session's folder to the session, within ``session_quota`` each and ``disk_quota``
    in all.

    Args:
        root: where visitor folders go.
        uploads: Gradio's upload folder (None: ``root``).
        idle_seconds: a session without an open heartbeat goes this long after its last request.
        max_age: seconds after which a visitor's folder goes whatever its connections.
        session_quota: bytes one client's uploads, and one session's folder, may hold.
        disk_quota: bytes the uploads and every folder may hold together.
    """

    def __init__(self, root: Path, uploads: Optional[Path] = None, idle_seconds: float = IDLE_SECONDS,
                 max_age: float = MAX_AGE_SECONDS, session_quota: int = SESSION_QUOTA, disk_quota: int = DISK_QUOTA):
        self.root = Path(root)
        self.uploads = Path(uploads) if uploads else self.root
        self.idle_seconds = idle_seconds
        self.max_age = max_age
        self.ledger = Ledger(session_quota, disk_quota)
        self.taken: Dict[str, float] = {}  # Gradio's uploads a session copied, by path -> when
        self._lock = threading.Lock()
        self._visitors: Dict[str, Visitor] = {}
        self._beats: Dict[str, int] = {}  # the owner's open heartbeat connections per session id
        self._owners: Dict[str, list] = {}  # session id -> [owner token, last request (monotonic)]

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

    # ----- disk quotas -----

    def reserve_upload(self, token: str, size: int) -> Optional[str]:
        """Reserve ``size`` bytes for an upload of the client holding ``token``; None, else why not (one line)."""
        refused = self.ledger.reserve(("upload", token), size)
        if refused == "owner":
            return (f"this client's uploads would take {megabytes(self.ledger.held(('upload', token)) + size)}; "
                    f"the page keeps up to {megabytes(self.ledger.per_owner)} per visitor")
        return "the page's disk is full; try again later" if refused else None

    def settle_upload(self, token: str, size: int, paths: Iterable = ()) -> None:
        """End an upload's reservation: charge the client the files Gradio wrote (none: it failed)."""
        self.ledger.settle(("upload", token), size, paths=paths)

    def make_room(self, session: str, size: int, new: Optional[int] = None) -> None:
        """Reserve ``size`` bytes for the session's folder and ``new`` (default ``size``) on the disk;
        :class:`Refusal`, with a one-line reason, when they do not fit. End it with :meth:`settle`."""
        refused = self.ledger.reserve(("folder", session), size, new)
        if refused == "owner":
            held = self.ledger.held(("folder", session)) + size
            raise Refusal(f"this tab would hold {megabytes(held)} of files; the page keeps up to "
                          f"{megabytes(self.ledger.per_owner)} per visitor: close the tab to start afresh")
        if refused:
            raise Refusal("the page's disk is full; try again later")

    def settle(self, session: str, size: int, new: Optional[int] = None, folder: Optional[Path] = None) -> None:
        """End a :meth:`make_room` reservation: charge the session the files now under ``folder``."""
        files = [p for p in Path(folder).rglob("*") if p.is_file()] if folder is not None else []
        self.ledger.settle(("folder", session), size, new, files)

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
            raise Refusal("the upload is gone: upload the song again") from None
        self.make_room(session, size, new=0)
        with self._lock:
            kept = self._visitor(session).folder / secrets.token_urlsafe(8) / upload.name
        kept.parent.mkdir(parents=True)
        try:
            try:
                os.link(upload, kept)
            except OSError:  # another file system, or links not allowed: a copy, within the quota
                self.make_room(session, 0, new=size)
                try:
                    shutil.copyfile(upload, kept)
                finally:
                    self.settle(session, 0, size)
        except (OSError, Refusal) as err:  # swept meanwhile, or no room for a copy
            shutil.rmtree(kept.parent, ignore_errors=True)
            self.settle(session, size, 0)
            if isinstance(err, Refusal):
                raise
            raise Refusal("the upload is gone: upload the song again") from None
        self.settle(session, size, 0, kept.parent)
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

    def begin(self, session: str, since: Optional[float] = None) -> Optional[Callable[[], bool]]:
        """Mark ``session`` busy; None when a job of it is still running, else whether the job must
        stop: a callable, True once the owner cancelled after ``since`` (monotonic; None: now)."""
        since = time.monotonic() if since is None else since
        with self._lock:
            visitor = self._visitor(session)
            if visitor.busy:
                return None
            visitor.busy = True
            return lambda: visitor.cancelled >= since

    def cancel(self, session: str) -> None:
        """Stop the session's job at its next chunk (one that began before now)."""
        with self._lock:
            visitor = self._visitors.get(session)
            if visitor is not None:
                visitor.cancelled = time.monotonic()

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
        """Delete the session's files if its owner had a heartbeat and has none open now; a job still
        running is told to stop, and its files go when it ends."""
        with self._lock:
            visitor = self._visitors.get(session)
            if visitor is None or self._beats.get(session, 1) > 0:
                return
            if visitor.busy:
                visitor.cancelled = time.monotonic()
                return
        self.close(session)

    def close(self, session: str) -> None:
        """Delete the session's folder (its uploads, stems and pictures) and forget it."""
        with self._lock:
            visitor = self._visitors.pop(session, None)
            self._beats.pop(session, None)
        if visitor is not None:
            shutil.rmtree(visitor.folder, ignore_errors=True)
            self.ledger.drop_owner(("folder", session))

    def sweep(self) -> None:
        """Delete what no open session will use: sessions idle without an open heartbeat (API
        clients), folders older than ``max_age``, folders under ``root`` that no session owns; and
        forget the owners of session ids nobody used for ``idle_seconds``, and files deleted elsewhere."""
        now = time.monotonic()
        with self._lock:
            doomed = [s for s, v in self._visitors.items() if not v.busy and (
                now - v.born > self.max_age or (not self._beats.get(s) and now - v.touched > self.idle_seconds))]
            for session in [s for s, (_, seen) in self._owners.items()
                            if s not in self._visitors and not self._beats.get(s) and now - seen > self.idle_seconds]:
                del self._owners[session]
                self._beats.pop(session, None)
        for session in doomed:
            self.close(session)
        with self._lock:
            owned = {v.folder.name for v in self._visitors.values()}
        for entry in self.root.glob("*"):
            if entry.name not in owned and time.time() - entry.stat().st_mtime > self.idle_seconds:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        self.ledger.prune()

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
                forget_upload(uploads, path, sessions)
                remove_empty(Path(path).parent)
        except FileNotFoundError:
            forget_upload(uploads, path, sessions)


def forget_upload(uploads: set, path: str, sessions: Sessions) -> None:
    uploads.discard(path)
    sessions.taken.pop(os.path.realpath(path), None)
    sessions.ledger.drop(path)


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
    empty ``tmp*`` files of its upload parser, and the visitors' folders; and Gradio's saved deep
    links, whatever their age. Nothing else is touched, even when the upload folder is a shared one."""
    shutil.rmtree(sessions.uploads / DEEP_LINKS, ignore_errors=True)
    for entry in [*sessions.uploads.glob("*"), *sessions.root.glob("*")]:
        try:
            stat = entry.lstat()
            ours = (entry.parent == sessions.root or GRADIO_HASH.match(entry.name)
                    or (entry.name.startswith("tmp") and stat.st_size == 0))
            if ours and stat.st_mtime < started:
                shutil.rmtree(entry, ignore_errors=True) if entry.is_dir() else entry.unlink(missing_ok=True)
        except FileNotFoundError:
            pass
