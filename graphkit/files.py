"""Reading inputs and writing outputs safely.

Writes are atomic: the data goes to a temporary file created beside the target with
``O_CREAT | O_EXCL`` and its final mode (so a secret never exists with loose
permissions), is flushed to disk, and only then takes the target's name. A failure at
any point leaves the old file, or nothing, never a partial one. Without ``force`` an
existing file is never replaced, even if it appears between our check and the rename.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from graphkit.errors import InputError, OutputExistsError

__all__ = [
    "MAX_INPUT_BYTES",
    "MAX_PASSPHRASE_BYTES",
    "PRIVATE",
    "PUBLIC",
    "UntrustedPathError",
    "atomic_write",
    "check_directory",
    "check_output",
    "ensure_private_dir",
    "input_file_problem",
    "not_private",
    "not_private_location",
    "parse_nested",
    "read_bytes",
    "read_passphrase_file",
    "read_private",
    "read_trusted",
    "remove_stale_temporaries",
    "umask_mode",
    "write_all",
]

PRIVATE = 0o600  # private keys, PFX, combined PEM, token caches
PUBLIC = 0o644  # certificates and CSRs: meant to be shared
DIR_MODE = 0o700  # directories we create hold keys

# Tests replace this to inject a failure between writing and renaming.
_fsync = os.fsync

_EXISTS_HINT = "choose another path or pass --force to replace it"


# The largest input file read whole: keys, certificates, CSRs and PFX files are a few
# kilobytes (a PEM with a long chain, tens); a passphrase file needs one line. A device
# such as /dev/zero would otherwise be read until memory runs out.
MAX_INPUT_BYTES = 1 << 20
MAX_PASSPHRASE_BYTES = 64 << 10


def parse_nested(parse: Callable[[Any], Any], text: Any) -> Any:
    """``parse(text)`` for input that may nest thousands deep (a config file, a delta
    state, batch lines), with garbage collection paused while it runs.

    Such input drives the parser to the recursion limit before it fails. A collection
    that happens down there runs other objects' finalisers with no stack left: they
    fail, and Python prints "Exception ignored ... RecursionError" tracebacks on stderr.
    The caller still gets the parser's own error (RecursionError included) to report.
    """
    import gc

    enabled = gc.isenabled()
    gc.disable()
    try:
        return parse(text)
    finally:
        if enabled:
            gc.enable()


def read_bytes(
    path: str | os.PathLike[str],
    what: str = "file",
    *,
    max_size: int = MAX_INPUT_BYTES,
    special_hint: str = "give a file on disk",
) -> bytes:
    """Read a whole input file, turning OS errors into one-line InputErrors.

    Only a regular file is read (a FIFO would wait for a writer, a device never end),
    and at most ``max_size`` bytes of it: the checks are made on the opened file, which
    is opened without blocking.

    Raises:
        InputError: missing, a directory, unreadable, not a regular file, too large.
    """
    p = Path(path)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        raise InputError(f"{what} {p} does not exist", "check the path") from None
    except IsADirectoryError:
        raise InputError(f"{what} {p} is a directory", "give a file") from None
    except PermissionError:
        raise InputError(
            f"cannot read {what} {p}: permission denied", "check its permissions"
        ) from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the name
        reason = getattr(exc, "strerror", None) or "not a usable file name"
        raise InputError(f"cannot read {what} {p}", f"{reason}; check the file") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise InputError(f"{what} {p} is a directory", "give a file")
        if not stat.S_ISREG(st.st_mode):
            raise InputError(
                f"{what} {p} is not a regular file (a device, pipe or socket)", special_hint
            )
        if st.st_size > max_size:
            raise InputError(
                f"{what} {p} is too large ({st.st_size:,} bytes; at most {max_size:,})",
                "check that you gave the right file",
            )
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, min(1 << 16, max_size + 1 - size)):
            chunks.append(chunk)
            size += len(chunk)
            if size > max_size:  # it grew while we read it
                raise InputError(
                    f"{what} {p} is too large (more than {max_size:,} bytes)",
                    "check that you gave the right file",
                )
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read {what} {p}", f"{exc.strerror}; check the file") from None
    finally:
        os.close(fd)


def read_passphrase_file(path: str | os.PathLike[str]) -> bytes:
    """Read a passphrase file like :func:`read_bytes`, but never name a missing one.

    ``--passphrase-file hunter2`` is a likely slip: the "file" is the passphrase itself,
    and an error repeating it would put it on the screen and in logs. Like every input
    file it must be a regular file (no pipe: give a piped passphrase with
    ``--prompt-passphrase``, which reads it from standard input).
    """
    try:
        exists = os.path.lexists(path)
    except (OSError, ValueError):
        exists = False
    if not exists:
        raise InputError(
            "the passphrase file does not exist (its name is not repeated: it may be "
            "the passphrase itself)",
            "give the path of a file whose first line is the passphrase",
        )
    return read_bytes(
        path,
        "passphrase file",
        max_size=MAX_PASSPHRASE_BYTES,
        special_hint="give a file on disk, or pipe the passphrase to --prompt-passphrase, "
        "or set GRAPHKIT_KEY_PASSPHRASE",
    )


def _trusted_owner(uid: int) -> bool:
    return uid in (os.getuid(), 0)


def not_private(path: str | os.PathLike[str]) -> str | None:
    """Why others could change what ``path`` holds, or None when they cannot.

    A file or directory is private when it belongs to this user (or root) and neither
    its group nor other users may write it. For a directory that also means nobody
    else can add, replace or remove the files in it. A missing path is private (there
    is nothing to trust yet). Always None outside POSIX, where modes mean little.

    Returns:
        e.g. ``"writable by other users (mode 0777)"`` or ``"owned by uid 1001"``.
    """
    if os.name != "posix":
        return None
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"not checkable ({exc.strerror})"
    return _owner_and_mode_problem(st)


def not_private_location(directory: str | os.PathLike[str]) -> str | None:
    """Why others could swap the files in ``directory`` (say, the certificate a user is
    about to upload), or None when they cannot.

    The directory itself must be private (:func:`not_private`); above it, no directory
    may belong to another user or be writable by other users without the sticky bit
    (that bit, as on /tmp, stops them renaming what is ours). Always None outside POSIX.
    """
    if os.name != "posix":
        return None
    try:
        _check_directory_chain(Path(directory).resolve())
    except UntrustedPathError as exc:
        if exc.where == Path(directory).resolve():
            return f"{directory} is {exc.problem}"
        return f"{exc.where} is {exc.problem}, so they could replace {directory}"
    return None


def read_private(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of a file only this user can have written, else None.

    For caches whose content is trusted (a pickle is code; a token cache decides which
    token is sent): the file must be a regular file, not a symbolic link, owned by this
    user (or root) and not writable by group or others, in a directory no one else
    could swap it in (see :func:`_check_directory_chain`). The checks are made on the
    opened file, so it cannot be swapped between check and read. Missing, unreadable
    or untrusted files all give None: a cache is then rebuilt, never trusted.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags | getattr(os, "O_BINARY", 0))
    except OSError:  # missing, a symbolic link (ELOOP), unreadable
        return None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block, a device never end
            return None
        if os.name == "posix" and (not _trusted_owner(st.st_uid) or st.st_mode & 0o022):
            return None
        if os.name == "posix":
            _check_directory_chain(Path(os.path.realpath(Path(path).parent)))
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        return b"".join(chunks)
    except (OSError, UntrustedPathError):
        return None
    finally:
        os.close(fd)


class UntrustedPathError(InputError):
    """A file whose content is trusted (the config) could have been written or swapped
    in by someone else. ``where`` is the file or directory at fault."""

    def __init__(self, where: Path, problem: str, *, is_directory: bool) -> None:
        super().__init__(f"{where} is {problem}")
        self.where = where
        self.problem = problem
        self.is_directory = is_directory


# A config file is small: more than this is not one (and /dev/zero never ends).
MAX_TRUSTED_SIZE = 1 << 20


def _owner_and_mode_problem(st: os.stat_result) -> str | None:
    mode = stat.S_IMODE(st.st_mode)
    if not _trusted_owner(st.st_uid):
        return f"owned by another user (uid {st.st_uid})"
    if mode & 0o022:
        who = "other users" if mode & 0o002 else "its group"
        return f"writable by {who} (mode {mode:04o})"
    return None


def _check_directory_chain(directory: Path) -> None:
    """``directory`` must be private; every directory above it must not let others
    rename what is in it (owned by this user or root, and not writable by others
    unless the sticky bit is set, as on /tmp)."""
    problem = not_private(directory)
    if problem:
        raise UntrustedPathError(directory, problem, is_directory=True)
    for parent in directory.parents:
        try:
            st = os.stat(parent)
        except OSError:
            continue
        mode = st.st_mode
        if not _trusted_owner(st.st_uid):
            raise UntrustedPathError(
                parent, f"owned by another user (uid {st.st_uid})", is_directory=True
            )
        if mode & 0o002 and not mode & stat.S_ISVTX:
            raise UntrustedPathError(
                parent,
                f"writable by other users without the sticky bit (mode {stat.S_IMODE(mode):04o})",
                is_directory=True,
            )


def read_trusted(path: str | os.PathLike[str]) -> bytes | None:
    """The bytes of a file whose content decides where secrets go (the config), or
    None when it does not exist.

    The file is opened once (a symbolic link is followed: dotfiles are often linked)
    and every check is made on what was opened: a regular file, of this user's (or
    root's), that neither group nor others may write, no larger than
    MAX_TRUSTED_SIZE; the path it resolves to still names that very file; and the
    directories holding the link and the file, and every directory above them, are
    beyond others' reach (see :func:`_check_directory_chain`). Outside POSIX only
    the file type and size are checked.

    Raises:
        UntrustedPathError: someone else could have written or swapped it.
        InputError: it cannot be read, is not a regular file, or is too large.
    """
    p = Path(os.path.abspath(path))
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(p, flags)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}", "check its permissions") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(f"{p} is not a regular file", "give a file")
        if st.st_size > MAX_TRUSTED_SIZE:
            raise InputError(f"{p} is larger than {MAX_TRUSTED_SIZE} bytes", "check the file")
        if os.name == "posix":
            problem = _owner_and_mode_problem(st)
            if problem:
                raise UntrustedPathError(p, problem, is_directory=False)
            real = Path(os.path.realpath(p))
            try:
                now = os.stat(real)
            except OSError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (st.st_dev, st.st_ino):
                raise UntrustedPathError(p, "replaced while being read", is_directory=False)
            _check_directory_chain(p.parent)
            if real.parent != p.parent:
                _check_directory_chain(real.parent)
        chunks: list[bytes] = []
        size = 0
        while chunk := os.read(fd, 1 << 16):
            size += len(chunk)
            if size > MAX_TRUSTED_SIZE:
                raise InputError(f"{p} is larger than {MAX_TRUSTED_SIZE} bytes", "check the file")
            chunks.append(chunk)
        return b"".join(chunks)
    except OSError as exc:
        raise InputError(f"cannot read {p}: {exc.strerror}", "check the file") from None
    finally:
        os.close(fd)


def ensure_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and every missing parent with mode 0700; leave existing ones alone.

    (``Path.mkdir(parents=True)`` would give the intermediate directories the default
    mode, so each missing level is created here, outermost first.)
    """
    p = Path(path)
    if p.is_dir():
        return p
    if p.exists():
        raise InputError(f"{p} exists and is not a directory", "choose another path")
    missing = [p]
    for parent in p.parents:
        if parent.exists():
            if not parent.is_dir():
                raise InputError(f"{parent} exists and is not a directory", "choose another path")
            break
        missing.append(parent)
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=DIR_MODE)
        except FileExistsError:
            if not directory.is_dir():
                raise InputError(
                    f"{directory} exists and is not a directory", "choose another path"
                ) from None
        except OSError as exc:
            raise InputError(
                f"cannot create directory {directory}", f"{exc.strerror}; choose another path"
            ) from None
    return p


# Temporary files are named .<target>.<pid>-<random>.tmp: a run that was killed
# (SIGKILL, power loss) leaves one behind, and the next write in that directory removes
# it once its process is gone.
_TMP_NAME = re.compile(r"^\..+\.(\d+)-[0-9a-f]{12}\.tmp$")


def _name_max(directory: Path) -> int:
    """The longest file name (in bytes) the file system holding ``directory`` takes."""
    try:
        return int(os.pathconf(directory if str(directory) else ".", "PC_NAME_MAX"))
    except (OSError, ValueError, AttributeError):
        return 255  # POSIX's usual NAME_MAX (and Windows')


def _temp_name(target: Path) -> Path:
    suffix = f".{os.getpid()}-{secrets.token_hex(6)}.tmp"
    name = target.name
    # A name close to the limit still gets a temporary beside it: shorten its copy.
    room = _name_max(target.parent) - len(suffix) - 1
    while len(os.fsencode(name)) > room:
        name = name[:-1]
    return target.parent / f".{name}{suffix}"


def input_file_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be read as an input file (see :func:`read_bytes`), or None."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return "does not exist"
    except (OSError, ValueError) as exc:
        return f"cannot be used ({getattr(exc, 'strerror', None) or 'not a usable path'})"
    if stat.S_ISDIR(st.st_mode):
        return "is a directory"
    if not stat.S_ISREG(st.st_mode):
        return "is not a regular file (a device, pipe or socket)"
    return None


def check_directory(directory: Path, what: str = "directory") -> None:
    """Refuse a directory path that cannot hold files (a name too long, a file in the
    way, a loop), before any work is done; a missing one is fine (it is created).

    Raises:
        InputError: with the reason.
    """
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable path"
        raise InputError(f"{what} {directory} cannot be used: {reason}", "choose another") from None
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{what} {directory} exists and is not a directory", "choose another")


def check_output(target: Path, force: bool = False) -> None:
    """Refuse an output name that cannot be written, before any work is done.

    Raises:
        InputError: the name is too long for the file system, or is a directory.
        OutputExistsError: it exists and ``force`` is false.
    """
    limit = _name_max(target.parent)
    size = len(os.fsencode(target.name))
    if size > limit:
        raise InputError(
            f"the file name {target.name[:40]}... is {size} bytes long; the file system "
            f"takes at most {limit}",
            "choose a shorter name",
        )
    try:
        st = os.lstat(target)
    except (FileNotFoundError, NotADirectoryError):
        return  # (a file where a directory should be: ensure_private_dir names it)
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or "not a usable path"
        raise InputError(f"cannot write {target}: {reason}", "choose another path") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{target} is a directory", "give a file name")
    if not force:
        raise OutputExistsError(f"{target} already exists", _EXISTS_HINT)


def _process_gone(pid: int) -> bool:
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:  # exists (another user's, or not ours to signal)
        return False
    return False


def remove_stale_temporaries(directory: str | os.PathLike[str]) -> list[Path]:
    """Remove the temporary files that killed graphkit runs left in ``directory``.

    Only regular files of ours, named as :func:`atomic_write` names them, whose
    process no longer exists. Returns what was removed. Never raises.
    """
    removed: list[Path] = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        match = _TMP_NAME.match(entry.name)
        if match is None:
            continue
        try:
            st = entry.stat(follow_symlinks=False)
            if not stat.S_ISREG(st.st_mode) or (os.name == "posix" and st.st_uid != os.getuid()):
                continue
            if not _process_gone(int(match.group(1))):
                continue
            os.unlink(entry.path)
            removed.append(Path(entry.path))
        except (OSError, ValueError, OverflowError):
            continue
    return removed


def umask_mode(mode: int = 0o666) -> int:
    """``mode`` less the process's umask: what ``>`` in a shell, or ``curl -o``, gives a
    new file. For outputs that are not secret (a Graph answer saved with --output-file)."""
    current = os.umask(0o077)
    os.umask(current)
    return mode & ~current


Data = bytes | Iterable[bytes]


def _stage(target: Path, data: Data, mode: int) -> Path:
    """Write ``data`` (bytes, or chunks of bytes as they arrive) to a new temporary file
    beside ``target``, with mode ``mode`` from the first byte (set on the descriptor,
    never by path), flushed to disk."""
    tmp = _temp_name(target)
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), mode)
    except OSError as exc:
        raise InputError(
            f"cannot write in {target.parent}", f"{exc.strerror}; check its permissions"
        ) from None
    try:
        try:
            if os.name == "posix":
                # O_CREAT honours the umask; make the mode exact on the open file, so
                # a name swapped by someone else is never chmod-ed.
                os.fchmod(fd, mode)
            chunks = [data] if isinstance(data, bytes | bytearray | memoryview) else data
            for chunk in chunks:
                view = memoryview(chunk)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            _fsync(fd)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return tmp


def _check_target(target: Path, force: bool) -> None:
    if os.path.isdir(target):  # a symbolic link to a directory is refused too
        raise InputError(f"{target} is a directory", "give a file name")
    check_output(target, force)


def atomic_write(
    path: str | os.PathLike[str], data: Data, *, mode: int = PRIVATE, force: bool = False
) -> Path:
    """Write ``data`` to ``path`` atomically with permission bits ``mode``.

    Args:
        path: the target file.
        data: the whole content, or an iterable of chunks (a download, streamed: it is
            consumed once; if it raises, nothing is left behind).
        mode: permission bits the file is created with (never loosened afterwards).
        force: replace an existing file; without it an existing file is an error.

    Returns:
        The target path.

    Raises:
        OutputExistsError: the target exists and ``force`` is false.
        InputError: the directory cannot be created or written.
    """
    return write_all([(Path(path), data, mode)], force=force)[0]


def write_all(outputs: Sequence[tuple[Path, Data, int]], *, force: bool = False) -> list[Path]:
    """Write several files as one change: all of them, or none.

    Each ``(path, data, mode)`` is staged in full first (as :func:`atomic_write`
    does); only then do they take their names. If any step fails, the files already
    renamed are removed again and any file ``force`` replaced is put back, so the
    directory is as it was.

    Raises:
        OutputExistsError, InputError: as :func:`atomic_write`; the message says that
            nothing was changed (or, if putting things back failed, what was left).
    """
    targets = [Path(p) for p, _, _ in outputs]
    for target in targets:
        _check_target(target, force)
    for target in targets:
        ensure_private_dir(target.parent if str(target.parent) else Path("."))
        remove_stale_temporaries(target.parent if str(target.parent) else Path("."))
    staged: list[Path] = []
    done: list[tuple[Path, Path | None]] = []  # (target, the replaced file kept aside)
    try:
        for target, (_, data, mode) in zip(targets, outputs, strict=True):
            staged.append(_stage(target, data, mode))
        for target, tmp in zip(targets, staged, strict=True):
            aside = _set_aside(target) if force else None
            try:
                if force:
                    os.replace(tmp, target)
                else:
                    _link_no_clobber(tmp, target)
            except BaseException:
                if aside is not None:
                    os.replace(aside, target)
                raise
            done.append((target, aside))
    except BaseException as exc:
        left = _roll_back(done)
        for tmp in staged:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        if isinstance(exc, OutputExistsError):
            raise
        if isinstance(exc, OSError):
            reason = exc.strerror or type(exc).__name__
            where = targets[len(done)] if len(done) < len(targets) else targets[-1]
            outcome = (
                "nothing was changed"
                if not left
                else f"could not undo {', '.join(map(str, left))}: check those files"
            )
            raise InputError(
                f"cannot write {where}: {reason}", f"{outcome}; fix that and retry"
            ) from exc
        raise
    for _, aside in done:
        if aside is not None:
            with contextlib.suppress(OSError):
                os.unlink(aside)
    for directory in {t.parent for t in targets}:
        _fsync_dir(directory)
    return targets


def _set_aside(target: Path) -> Path | None:
    """Keep an existing ``target`` under a temporary name (a hard link) until the new
    one is in place, so that a failed multi-file write can put it back."""
    if not os.path.lexists(target):
        return None
    aside = _temp_name(target)
    try:
        os.link(target, aside, follow_symlinks=False)
    except (OSError, NotImplementedError):
        return None  # no hard links here: the replaced file cannot be put back
    return aside


def _roll_back(done: list[tuple[Path, Path | None]]) -> list[Path]:
    """Undo the renames in ``done`` (newest first); the targets that could not be."""
    left: list[Path] = []
    for target, aside in reversed(done):
        try:
            if aside is not None:
                os.replace(aside, target)
            else:
                os.unlink(target)
        except OSError:
            left.append(target)
    return left


def _fsync_dir(directory: Path) -> None:
    """Make the new name durable too (best effort: not every platform can open a dir)."""
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _link_no_clobber(tmp: Path, target: Path) -> None:
    """Give ``tmp`` the name ``target`` only if ``target`` does not exist (atomically)."""
    try:
        os.link(tmp, target)
    except FileExistsError:
        raise OutputExistsError(f"{target} already exists", _EXISTS_HINT) from None
    except OSError:
        # Filesystems without hard links: check-then-rename is the best we can do.
        # lexists: a dangling symbolic link is an existing name too.
        if os.path.lexists(target):
            raise OutputExistsError(f"{target} already exists", _EXISTS_HINT) from None
        os.replace(tmp, target)
        return
    os.unlink(tmp)
