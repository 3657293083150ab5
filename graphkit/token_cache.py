"""Where tokens are cached: msal's token cache and HTTP cache, persisted, and the
warm path that reads the token cache without msal.

Two caches persist in the state directory (:func:`graphkit.settings.state_dir`), so
that a second process within the token's lifetime does not talk to the identity
platform at all:

- the token cache (msal-extensions ``PersistedTokenCache``, with its cross-process
  file lock): encrypted where the platform offers it (DPAPI, Keychain, libsecret),
  otherwise a plain file at mode 0600, replaced atomically so concurrent readers never
  see half of it. There is one cache for each authority and certificate
  (:func:`partition`): msal keys tokens by tenant, client id, authority host and scope
  but not by the certificate that obtained them, and a token got with one certificate
  must never stand in for another (a certificate that was never uploaded would seem
  to work);
- msal's ``http_cache`` (OIDC discovery answers and msal's throttling memos; never
  tokens): a pickled dict written atomically; a corrupt or foreign file is ignored.

The warm path: :func:`find_cached_token` is a transcription of msal's own lookup for
client credentials, so that a cached token is served before the certificate's key is
parsed or msal is even imported. It needs the tenant msal's authority resolved to (the
``realm`` of its cache entries), which an index file records each time msal builds its
application (:func:`record_authority`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from graphkit.errors import ConfigError

__all__ = [
    "AUTHORITY_INDEX_FILE",
    "HTTP_CACHE_FILE",
    "MSAL_EXPIRY_MARGIN",
    "PersistentHttpCache",
    "acquisition_lock",
    "build_token_cache",
    "cached_token",
    "find_cached_token",
    "forget_token_answers",
    "partition",
    "plaintext_notice",
    "private_dir",
    "record_authority",
    "token_cache_file",
]

log = logging.getLogger(__name__)

# + partition: .json (0600 file) / .bin (encrypted)
TOKEN_CACHE_PREFIX = "msal_token_cache"  # nosec B105  # a file name
HTTP_CACHE_FILE = "msal_http_cache.pickle"
# What msal's application resolved (authority -> cache environment and realm) and which
# token store it used: lets the warm path read the token cache without msal.
AUTHORITY_INDEX_FILE = "msal_authorities.json"
_INDEX_VERSION = 1
_MAX_AUTHORITIES = 32
# How long a process waits for another one that is asking for the same token.
ACQUIRE_LOCK_WAIT = 30.0
# msal treats an access token with less than this many seconds left as expired.
MSAL_EXPIRY_MARGIN = 5 * 60
PLAINTEXT_NOTICE_MARKER = ".plaintext-token-cache-notice"

# ------------------------------------------------------------ partitions


def partition(authority: str, certificate_sha256: str) -> str:
    """The name of the token cache for tokens ``authority`` issued to a client signing
    with the certificate whose SHA-256 thumbprint is ``certificate_sha256``.

    Within one partition msal itself keys tokens by client id, tenant (realm) and scope.
    """
    digest = hashlib.sha256(
        b"graphkit token cache v1\0"
        + authority.strip().rstrip("/").lower().encode("utf-8")
        + b"\0"
        + certificate_sha256.strip().upper().encode("ascii")
    )
    return digest.hexdigest()[:32]


def token_cache_file(directory: Path, name: str, *, encrypted: bool = False) -> Path:
    """The file of partition ``name``: the 0600 cache itself, or the encrypted store's
    data (Windows) or signal file (macOS, Linux)."""
    return directory / f"{TOKEN_CACHE_PREFIX}-{name}.{'bin' if encrypted else 'json'}"


# ------------------------------------------------------------------ persistence


def private_dir(path: Path) -> Path:
    """The state directory, created 0700 if missing; refused if others can write it.

    Others who can write it could plant a token cache or a pickle, swap our files, or
    put a link where msal-extensions opens its lock file for writing.
    """
    from graphkit.files import ensure_private_dir, not_private

    try:
        ensure_private_dir(path)
    except Exception as exc:  # InputError with a one-line message
        raise ConfigError(
            f"cannot create graphkit's state directory {path}",
            "check GRAPHKIT_HOME and its permissions",
        ) from exc
    problem = not_private(path)
    if problem:
        raise ConfigError(
            f"graphkit's state directory {path} is {problem}: tokens are not kept there",
            f"run chmod 700 {path} (it must be yours), or set GRAPHKIT_HOME elsewhere",
        )
    return path


# How msal's http_cache (msal.individual_cache._ExpiringMapping over our dict) keys its
# entries: "GET <url> ..." for discovery and instance metadata, "POST <url> ..." for
# token-endpoint answers it memoises (400s, 429/5xx, any answer with Retry-After), and
# one index entry. tests/test_hardening.py checks this against msal itself.
_MSAL_INDEX_KEY = "_index_"
_DISCOVERY_PREFIX = "GET "


def discovery_only(data: Mapping[str, Any]) -> dict[str, Any]:
    """The part of msal's http cache that is safe to keep on disk: its GET answers.

    A memoised token-endpoint answer (POST) may hold an access token (a 200 with
    Retry-After) or the client assertion (an error page echoing the request): those
    stay in memory. Anything not shaped as expected is dropped.
    """
    import heapq

    kept: dict[str, Any] = {
        k: v for k, v in data.items() if isinstance(k, str) and k.startswith(_DISCOVERY_PREFIX)
    }
    index = data.get(_MSAL_INDEX_KEY)
    if kept and isinstance(index, tuple | list) and len(index) == 2:
        sequence, timestamps = index
        if isinstance(sequence, list) and isinstance(timestamps, dict):
            entries = [e for e in sequence if isinstance(e, list) and len(e) == 3 and e[2] in kept]
            heapq.heapify(entries)
            kept[_MSAL_INDEX_KEY] = (
                entries,
                {k: v for k, v in timestamps.items() if k in kept},
            )
    return kept


def forget_token_answers(data: dict[str, Any]) -> None:
    """Drop msal's memos of token-endpoint answers (its POST entries) from its
    http_cache, so that a retry really asks the token endpoint again: msal would
    otherwise replay a 429/5xx for its Retry-After (5 s without one)."""
    for key in [k for k in data if isinstance(k, str) and not k.startswith(_DISCOVERY_PREFIX)]:
        if key != _MSAL_INDEX_KEY:
            del data[key]
    index = data.get(_MSAL_INDEX_KEY)
    if isinstance(index, tuple | list) and len(index) == 2 and isinstance(index[1], dict):
        for key in [k for k in index[1] if k not in data]:
            del index[1][key]


@contextlib.contextmanager
def acquisition_lock(directory: Path, name: str, timeout: float = ACQUIRE_LOCK_WAIT) -> Any:
    """Hold the lock that makes one process at a time ask for partition ``name``'s
    token (the others wait, then find it in the cache). Waits at most ``timeout``
    seconds; then, or if the lock cannot be had at all, goes on without it (a second
    token request is better than none). Yields whether the lock is held.

    A kernel lock on an open file (flock, or msvcrt.locking on Windows): it goes with
    the process, so a killed holder leaves nothing stale behind.
    """
    path = directory / f"acquire-{name}.lock"
    flags = os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        yield False
        return
    try:
        deadline = time.monotonic() + timeout
        held = _try_lock(fd)
        while not held and time.monotonic() < deadline:
            time.sleep(0.05)
            held = _try_lock(fd)
        if not held:
            log.debug("token acquisition lock %s not had in %s s", path, timeout)
        yield held
    finally:
        os.close(fd)  # releases the lock


def _try_lock(fd: int) -> bool:
    try:
        if sys.platform == "win32":
            import msvcrt

            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return False
    return True


class PersistentHttpCache(dict):
    """msal's ``http_cache``, loaded from and saved to one file.

    In memory it holds what msal puts there: OIDC discovery answers and its memos of
    token-endpoint answers. Only the discovery answers are written to disk
    (:func:`discovery_only`): never a token-endpoint answer. Saving writes a whole new
    file and renames it, so concurrent writers cannot corrupt it (the last one wins; a
    lost entry costs one discovery request). A file that cannot be read back is
    ignored and later replaced.
    """

    def __init__(self, path: Path) -> None:
        import pickle  # nosec B403  # msal's HTTP cache format; see load()

        super().__init__()
        self.path = path
        self._lock = threading.Lock()
        self._saved = pickle.dumps({}, protocol=pickle.HIGHEST_PROTOCOL)
        self.load()

    def load(self) -> None:
        import pickle  # nosec B403  # msal's HTTP cache format; see load()

        from graphkit.files import read_private

        raw = read_private(self.path)  # others could plant what pickle runs
        if raw is None:
            return
        try:
            # Only a regular file of ours that nobody else can write (read_private).
            data = pickle.loads(raw)  # nosec B301
        except Exception:  # corrupt, truncated, from another msal version...
            log.debug("ignoring unreadable http cache %s", self.path)
            return
        if isinstance(data, dict):
            self.update(discovery_only(data))  # a file from before 0.2 may hold more
            self._saved = raw

    def save(self) -> None:
        """Write the cache if it changed; failures are logged, never raised."""
        import pickle  # nosec B403  # msal's HTTP cache format; see load()

        from graphkit.files import PRIVATE, atomic_write

        with self._lock:
            try:
                raw = pickle.dumps(discovery_only(self), protocol=pickle.HIGHEST_PROTOCOL)
            except Exception:
                log.debug("http cache not picklable; not saved", exc_info=True)
                return
            if raw == self._saved:
                return
            try:
                atomic_write(self.path, raw, mode=PRIVATE, force=True)
                self._saved = raw
            except Exception:
                log.debug("could not save http cache %s", self.path, exc_info=True)


def _file_persistence(location: Path) -> Any:
    """msal-extensions' FilePersistence with atomic saves at mode 0600."""
    from msal_extensions import FilePersistence

    from graphkit.files import PRIVATE, atomic_write

    class _AtomicFilePersistence(FilePersistence):
        def save(self, content: str) -> None:
            atomic_write(self._location, content.encode("utf-8"), mode=PRIVATE, force=True)

        def load(self) -> str:
            """The cache, only from a file we wrote (see read_private): a planted
            cache would choose the token sent to Graph. Otherwise msal starts empty
            and the next save replaces the file."""
            from msal_extensions.persistence import PersistenceNotFound

            from graphkit.files import read_private

            raw = read_private(self._location)
            if raw is None:
                raise PersistenceNotFound(location=self._location)
            return raw.decode("utf-8", errors="replace")

    return _AtomicFilePersistence(str(location))


def _encrypted_persistence(directory: Path, name: str) -> Any:
    """msal-extensions' encrypted store for partition ``name``.

    Its ``build_encrypted_persistence`` gives every location the same Keychain item
    and the same libsecret secret: partitions would overwrite each other there, so each
    gets its own account name / attributes.
    """
    import sys

    from msal_extensions import persistence as p

    location = str(token_cache_file(directory, name, encrypted=True))
    if sys.platform.startswith("win"):
        return p.FilePersistenceWithDataProtection(location)
    if sys.platform.startswith("darwin"):
        return p.KeychainPersistence(location, "graphkit token cache", name)
    if sys.platform.startswith("linux"):
        return p.LibsecretPersistence(
            location, schema_name="graphkit.token_cache", attributes={"partition": name}
        )
    raise RuntimeError(f"no encrypted storage on {sys.platform}")


def build_token_cache(directory: Path, name: str) -> tuple[Any, bool]:
    """Partition ``name``'s PersistedTokenCache, encrypted if the platform allows;
    (cache, encrypted)."""
    from msal_extensions import PersistedTokenCache
    from msal_extensions.persistence import PersistenceNotFound

    persistence: Any = None
    encrypted = False
    try:
        persistence = _encrypted_persistence(directory, name)
        # build_encrypted_persistence has no plaintext fallback and may fail only on
        # first use (no keyring daemon, locked keychain): try a read now.
        with contextlib.suppress(PersistenceNotFound):
            persistence.load()
        encrypted = True
    except Exception:
        log.debug("encrypted token cache unavailable; using a 0600 file", exc_info=True)
        persistence = _file_persistence(token_cache_file(directory, name))

    class _TokenCache(PersistedTokenCache):
        """A lock held too long (e.g. left by a killed process) is cleared once; if the
        lock still cannot be had, the token is kept in memory for this run, not lost."""

        def modify(
            self, credential_type: Any, old_entry: Any, new_key_value_pairs: Any = None
        ) -> None:
            from msal import SerializableTokenCache
            from msal_extensions import LockError

            lock = Path(self._lock_location)
            _remove_stale_lock(lock)
            existed = lock.exists()
            try:
                super().modify(credential_type, old_entry, new_key_value_pairs)
                return
            except LockError:
                log.warning(
                    "token cache lock %s is held by another process; this token is not saved",
                    lock,
                )
            except OSError as exc:
                # The disk is full (or read-only...): msal-extensions created its lock
                # file but could not write it. Remove that empty file, or every later
                # run would wait for it and then blame "another process".
                if not existed:
                    with contextlib.suppress(OSError):
                        if lock.stat().st_size == 0:
                            lock.unlink()
                log.warning(
                    "cannot save the token cache in %s (%s); this token is used for this "
                    "run only: free some space or check %s",
                    lock.parent,
                    exc.strerror or type(exc).__name__,
                    lock.parent,
                )
            SerializableTokenCache.modify(self, credential_type, old_entry, new_key_value_pairs)

    return _TokenCache(persistence), encrypted


# A cache write takes milliseconds; a lock file older than this was left behind.
STALE_LOCK_SECONDS = 30.0


def _remove_stale_lock(lock: Path) -> bool:
    """Remove ``lock`` if it is older than STALE_LOCK_SECONDS; True if removed."""
    try:
        age = time.time() - lock.stat().st_mtime
    except OSError:
        return False
    if age < STALE_LOCK_SECONDS:
        return False
    try:
        lock.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    log.info("removed stale token cache lock %s (%.0f s old)", lock, age)
    return True


def plaintext_notice(directory: Path) -> str | None:
    """The plaintext-cache notice the first time it is due in ``directory``, else None."""
    marker = directory / PLAINTEXT_NOTICE_MARKER
    try:
        fd = os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return None
    except OSError:
        return None
    os.close(fd)
    return (
        f"no encrypted storage is available here, so tokens are cached in "
        f"{directory}/{TOKEN_CACHE_PREFIX}-*.json (readable only by you, mode 0600); "
        "this notice is shown once"
    )


# ------------------------------------------------------------ the warm path


def _matches(entry: Mapping[str, Any], query: Mapping[str, Any]) -> bool:
    """msal's ``is_subdict_of(query, entry)``: each queried key present and equal."""
    return all(k in entry and entry[k] == v for k, v in query.items())


def find_cached_token(
    cache: Mapping[str, Any],
    *,
    client_id: str,
    environment: str,
    realm: str,
    scopes: list[str],
    now: float | None = None,
) -> dict[str, Any] | None:
    """The access-token entry msal's ``acquire_token_for_client(scopes)`` would serve
    from ``cache`` (msal's serialised token cache, parsed), or None when msal would
    call the token endpoint instead.

    A transcription of msal 1.39's cache lookup for client credentials
    (``ClientApplication._acquire_token_silent_from_cache_and_possibly_refresh_it``
    with no account, and ``TokenCache.search``): first the entry under its exact
    key, then any other unexpired entry of this client, cache environment and realm,
    with no ``home_account_id`` and no ``ext_cache_key``, whose target includes every
    requested scope; the first with at least five minutes left wins, unless its
    ``refresh_on`` has passed (msal would then ask for a new one). ``environment`` and
    ``realm`` are msal's ``authority.instance`` and ``authority.tenant``. Anything
    malformed returns None: msal then decides. tests/test_fast_path.py checks this
    against msal itself.
    """
    try:
        entries = cache.get("AccessToken")
        if not isinstance(entries, dict):
            return None
        now = time.time() if now is None else now
        query = {
            "client_id": client_id,
            "environment": environment.lower(),
            "realm": realm,
            "home_account_id": None,
        }
        target = sorted(scopes)
        key = "-".join(["", environment, "AccessToken", client_id, realm, " ".join(target)])
        preferred = entries.get(key.lower())
        candidates: list[Mapping[str, Any]] = []
        if isinstance(preferred, dict) and _matches(preferred, query):
            candidates.append(preferred)
        wanted = set(target)
        for entry in entries.values():
            if int(entry["expires_on"]) < int(now):
                continue
            if (
                entry != preferred
                and _matches(entry, query)
                and wanted <= set(entry.get("target", "").split())
                and "ext_cache_key" not in entry
            ):
                candidates.append(entry)
        for entry in candidates:
            if int(entry["expires_on"]) - now < MSAL_EXPIRY_MARGIN:
                continue
            if "refresh_on" in entry and int(entry["refresh_on"]) < now:
                return None  # msal would refresh it now (keeping it only as a fallback)
            if not isinstance(entry.get("secret"), str):
                return None
            return dict(entry)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return None


def _read_json(path: Path) -> Any:
    """The JSON in ``path`` if it is a file we wrote (see read_private), else None."""
    from graphkit.files import read_private

    raw = read_private(path)
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return None


def cached_token(
    directory: Path,
    *,
    authority: str,
    certificate_sha256: str,
    client_id: str,
    scope: str,
    now: float | None = None,
) -> dict[str, Any] | None:
    """The warm path: the access-token entry msal would serve for this authority,
    certificate, client id and scope from the plain-file cache, found without msal;
    None when msal must be asked (no index entry, an encrypted store, no usable token).
    """
    from graphkit.files import not_private

    if not_private(directory):
        return None  # msal's path refuses the directory, saying why
    index = _read_index(directory)
    authorities = index.get("authorities")
    entry = authorities.get(authority) if isinstance(authorities, dict) else None
    if index.get("token_cache") != "file" or not isinstance(entry, dict):
        return None
    environment, realm = entry.get("environment"), entry.get("realm")
    if not isinstance(environment, str) or not isinstance(realm, str):
        return None
    cache = _read_json(token_cache_file(directory, partition(authority, certificate_sha256)))
    if not isinstance(cache, dict):
        return None
    return find_cached_token(
        cache,
        client_id=client_id,
        environment=environment,
        realm=realm,
        scopes=[scope],
        now=time.time() if now is None else now,
    )


def _read_index(directory: Path) -> dict[str, Any]:
    data = _read_json(directory / AUTHORITY_INDEX_FILE)
    if not isinstance(data, dict) or data.get("version") != _INDEX_VERSION:
        return {}
    return data


def record_authority(
    directory: Path, authority: str, environment: str, realm: str, store: str
) -> None:
    """Remember what msal resolved ``authority`` to, and the token store it used."""
    from graphkit.files import PRIVATE, atomic_write

    index = _read_index(directory)
    known = index.get("authorities")
    known = known if isinstance(known, dict) else {}
    entry = {"environment": environment, "realm": realm}
    if index.get("token_cache") == store and known.get(authority) == entry:
        return
    authorities: dict[str, Any] = {authority: entry}
    for key, value in known.items():
        if key != authority and len(authorities) < _MAX_AUTHORITIES:
            authorities[key] = value
    data = {"version": _INDEX_VERSION, "token_cache": store, "authorities": authorities}
    try:
        atomic_write(
            directory / AUTHORITY_INDEX_FILE,
            json.dumps(data, indent=1).encode("utf-8"),
            mode=PRIVATE,
            force=True,
        )
    except Exception:
        log.debug("could not save %s", AUTHORITY_INDEX_FILE, exc_info=True)
