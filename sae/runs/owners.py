"""Who may change a run: identities, the signed tokens that carry them, and the one rule the run store applies.

A run belongs to whoever made it. Everyone may see, compare, load, copy and continue any run (a continuation or
a copy is a new run, the copier's); only its owner may rename, delete (trash), restore or otherwise change the
original, and a *teacher* may change any run (moderation). The run store enforces this on every call that changes
an existing run (``actor=``), so a page, a notebook and a forged request meet the same rule.

An :class:`Identity` is a user name and a role (``student`` or ``teacher``). It travels as a *token* that
:class:`Signer` issues: ``v1.<payload>.<HMAC-SHA256 of it>`` with the store's secret key (32 random bytes in
``<data directory>/identity.key``, made on first use with mode 0600, so every server process on one store issues
and accepts the same tokens). :meth:`Signer.verify` gives the identity back, or raises
:class:`ForgedIdentityError` for anything this key did not sign: a changed user or role, another store's key,
garbage. Nobody can choose a user name or a role without the key; the key never leaves the server.

``actor=None`` is the library's local user: Python code and the command line, which run with the rights of the
files' owner anyway (they could edit the database directly). It may change anything, as before ownership
existed. The dashboard always passes its session's token (``sae.ui.identity.actor``).

Runs recorded before runs had owners, and runs a local user records without ``owner=``, have no owner: a student
may copy them but not change them; a teacher and the local user may.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path

from sae.runs.errors import ForgedIdentityError, PermissionDeniedError, StoreError

STUDENT, TEACHER = "student", "teacher"
ROLES = (STUDENT, TEACHER)
KEY_FILE = "identity.key"  # in the store's data directory
KEY_BYTES = 32
MAX_USER = 200  # characters of a user name
MAX_TOKEN = 1024  # characters of a token: anything longer is refused before any work
_VERSION = "v1"
_CONTEXT = b"sae-lab identity token v1\n"  # signs identity tokens and nothing else
FORGED = ("this identity token was not issued by this server's run store (altered, made up, or from another "
          "store), so it is refused.")


@dataclass(frozen=True)
class Identity:
    """Who is asking: ``user`` (a browser's random name, or a login's e-mail) and ``role`` (student, teacher)."""

    user: str
    role: str = STUDENT

    def __post_init__(self) -> None:
        if not isinstance(self.user, str) or not 0 < len(self.user) <= MAX_USER or \
                any(ord(c) < 32 or ord(c) == 127 for c in self.user):
            raise StoreError(f"a user name must be one line of 1 to {MAX_USER} characters.")
        if self.role not in ROLES:
            raise StoreError(f"unknown role {self.role!r}; a role is one of {', '.join(ROLES)}.")

    @property
    def is_teacher(self) -> bool:
        return self.role == TEACHER


def new_user() -> str:
    """A fresh anonymous user name (a browser that has no identity yet): ``browser-`` and 32 random hex digits."""
    return f"browser-{uuid.uuid4().hex}"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """Issues identity tokens and verifies them, with one secret key.

    Args:
        key: the secret (at least 16 bytes); :meth:`for_directory` reads or makes a store's.

    Example:
        >>> signer = Signer(secrets.token_bytes(32))
        >>> token = signer.issue("alice")
        >>> signer.verify(token)
        Identity(user='alice', role='student')
    """

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, (bytes, bytearray)) or len(key) < 16:
            raise StoreError("an identity key must be at least 16 bytes.")
        self._key = bytes(key)

    def __repr__(self) -> str:  # never the key
        return "Signer(<key>)"

    @classmethod
    def for_directory(cls, root: str | os.PathLike) -> "Signer":
        """The signer of the store in ``root``: its ``identity.key``, made (32 random bytes, mode 0600) if absent."""
        return cls(read_or_create_key(Path(root).expanduser() / KEY_FILE))

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, _CONTEXT + payload.encode("ascii"), hashlib.sha256).digest()

    def issue(self, user: str, role: str = STUDENT) -> str:
        """A token that says ``user`` has ``role``; StoreError for an empty or multi-line user or an unknown role."""
        who = Identity(user, role)
        payload = _b64(json.dumps({"u": who.user, "r": who.role}, separators=(",", ":")).encode("utf-8"))
        return f"{_VERSION}.{payload}.{_b64(self._mac(payload))}"

    def verify(self, token: object) -> Identity:
        """The identity a token carries; ForgedIdentityError for anything this key did not issue."""
        if not isinstance(token, str) or len(token) > MAX_TOKEN or not token.isascii():
            raise ForgedIdentityError(FORGED)
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != _VERSION:
            raise ForgedIdentityError(FORGED)
        try:
            signature = _unb64(parts[2])
        except (binascii.Error, ValueError):
            raise ForgedIdentityError(FORGED) from None
        if not hmac.compare_digest(signature, self._mac(parts[1])):
            raise ForgedIdentityError(FORGED)
        try:  # signed by this key, so well formed; checked all the same
            fields = json.loads(_unb64(parts[1]).decode("utf-8"))
            return Identity(fields["u"], fields["r"])
        except (binascii.Error, ValueError, KeyError, TypeError, StoreError):
            raise ForgedIdentityError(FORGED) from None

    def identity(self, token: str | None) -> Identity | None:
        """:meth:`verify`, with None (the library's local user) passed through."""
        return None if token is None else self.verify(token)


def read_or_create_key(path: Path) -> bytes:
    """The key in ``path``; made first if the file does not exist (written whole to a temporary file, then linked
    into place, so two processes starting at once end up with the same key). StoreError if it cannot be."""
    for _ in range(2):
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            _create_key(path)
            continue
        except OSError as exc:
            raise StoreError(f"cannot read the identity key {path} ({exc.strerror or exc}).") from None
        if len(data) != KEY_BYTES:
            raise StoreError(f"the identity key {path} is damaged ({len(data)} bytes, not {KEY_BYTES}); delete it to "
                             f"make a new one (every identity issued with the old key is then refused).")
        return data
    raise StoreError(f"cannot create the identity key {path}.")


def _create_key(path: Path) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, secrets.token_bytes(KEY_BYTES))
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # fails if another process made the key first: then that one is read
        except FileExistsError:
            pass
    except OSError as exc:
        raise StoreError(f"cannot create the identity key {path} ({exc.strerror or exc}).") from None
    finally:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass


def may_change(owned_by: str | None, who: Identity | None) -> bool:
    """The rule: the local user (None) and a teacher may change any run; anyone else only the runs they own."""
    if who is None or who.is_teacher:
        return True
    return owned_by is not None and owned_by == who.user


def denial(owned_by: str | None, what: str = "run") -> str:
    """Why a student may not change a run (or a sweep: ``what``) owned by ``owned_by``, and what to do instead."""
    advice = "you can copy it and continue the copy" if what == "run" else \
        "you can copy its runs and continue the copies"
    if owned_by is None:
        return (f"this {what} has no owner (it was recorded before runs had owners, or from Python), so only a "
                f"teacher can change it: {advice}.")
    return f"this {what} belongs to someone else: {advice}."


def require(owned_by: str | None, who: Identity | None, what: str = "run") -> None:
    """Raise PermissionDeniedError unless :func:`may_change`."""
    if not may_change(owned_by, who):
        raise PermissionDeniedError(denial(owned_by, what))


def owner_label(owned_by: str | None, viewer: Identity | None) -> str:
    """How a run's owner reads to ``viewer``: ``you``, ``nobody`` (no owner), or, to a teacher, the owner's
    name; ``someone else`` to anyone else (a student does not see who)."""
    if owned_by is None:
        return "nobody"
    if viewer is not None and owned_by == viewer.user:
        return "you"
    if viewer is None or viewer.is_teacher:
        return owned_by
    return "someone else"


__all__ = ["Identity", "Signer", "ForgedIdentityError", "PermissionDeniedError", "may_change", "require", "denial",
           "owner_label", "new_user", "read_or_create_key", "STUDENT", "TEACHER", "ROLES", "KEY_FILE", "KEY_BYTES"]
