"""graphkit.files: atomic, no-clobber writes with exact modes, and friendly reads."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from graphkit import files
from graphkit.errors import ExitCode, InputError, OutputExistsError


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def leftovers(directory: Path) -> list[str]:
    """Temporary files atomic_write might have left behind."""
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


@pytest.fixture(params=[0o022, 0o077, 0o000], ids=["umask022", "umask077", "umask000"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


# -------------------------------------------------------------------- writing


def test_modes_are_exact_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    secret = files.atomic_write(tmp_path / "k.key", b"secret", mode=files.PRIVATE)
    public = files.atomic_write(tmp_path / "c.crt", b"public", mode=files.PUBLIC)
    assert secret.read_bytes() == b"secret" and public.read_bytes() == b"public"
    assert mode(secret) == 0o600
    assert mode(public) == 0o644
    assert leftovers(tmp_path) == []


def test_default_mode_is_private(tmp_path: Path) -> None:
    assert mode(files.atomic_write(tmp_path / "x", b"x")) == 0o600


def test_secret_never_exists_with_loose_mode(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Observed from inside the write: the temporary file is already 0600."""
    seen: list[int] = []
    real_write = os.write

    def spying_write(fd: int, data: bytes | memoryview) -> int:
        seen.append(stat.S_IMODE(os.fstat(fd).st_mode))
        return real_write(fd, data)

    old = os.umask(0)  # the loosest umask: O_CREAT alone would give 0666
    try:
        monkeypatch.setattr(files.os, "write", spying_write)
        files.atomic_write(tmp_path / "k.key", b"secret" * 1000, mode=files.PRIVATE)
    finally:
        os.umask(old)
    assert seen and all(m == 0o600 for m in seen)


def test_missing_directories_created_0700(tmp_path: Path) -> None:
    target = tmp_path / "a" / "b" / "c" / "k.key"
    files.atomic_write(target, b"k")
    for d in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert mode(d) == 0o700, d


def test_existing_directory_left_alone(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o755)
    shared.chmod(0o755)
    files.atomic_write(shared / "c.crt", b"c", mode=files.PUBLIC)
    assert mode(shared) == 0o755


def test_relative_path_in_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    files.atomic_write("plain.txt", b"x")
    assert (tmp_path / "plain.txt").read_bytes() == b"x"


def test_no_overwrite_without_force(tmp_path: Path) -> None:
    target = tmp_path / "k.key"
    target.write_bytes(b"old")
    target.chmod(0o600)
    with pytest.raises(OutputExistsError, match="already exists") as info:
        files.atomic_write(target, b"new")
    assert "--force" in (info.value.hint or "")
    assert info.value.exit_code == ExitCode.INPUT
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_force_replaces_and_sets_mode(tmp_path: Path) -> None:
    target = tmp_path / "c.crt"
    target.write_bytes(b"old")
    target.chmod(0o666)
    files.atomic_write(target, b"new", mode=files.PUBLIC, force=True)
    assert target.read_bytes() == b"new"
    assert mode(target) == 0o644
    files.atomic_write(target, b"newer", mode=files.PRIVATE, force=True)
    assert mode(target) == 0o600
    assert leftovers(tmp_path) == []


def test_race_target_appears_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without --force, a file created between our check and the rename is not replaced."""
    target = tmp_path / "k.key"

    def fsync_then_someone_writes(fd: int) -> None:
        os.fsync(fd)
        target.write_bytes(b"theirs")

    monkeypatch.setattr(files, "_fsync", fsync_then_someone_writes)
    with pytest.raises(OutputExistsError):
        files.atomic_write(target, b"ours")
    assert target.read_bytes() == b"theirs"
    assert leftovers(tmp_path) == []


def test_filesystem_without_hard_links(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def no_links(src: object, dst: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    target = files.atomic_write(tmp_path / "k.key", b"data")
    assert target.read_bytes() == b"data"
    assert leftovers(tmp_path) == []
    with pytest.raises(OutputExistsError):
        files.atomic_write(target, b"again")
    assert target.read_bytes() == b"data"


# --------------------------------------------------------- interrupted writes


def _fail_fsync(fd: int) -> None:
    raise OSError(28, "No space left on device")


def _fail_write(fd: int, data: object) -> int:
    raise OSError(5, "Input/output error")


@pytest.mark.parametrize(("attr", "fake"), [("_fsync", _fail_fsync), ("write", _fail_write)])
@pytest.mark.parametrize("existing", [False, True], ids=["new", "replacing"])
def test_interrupted_write_leaves_old_file_or_nothing(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    attr: str,
    fake: object,
    existing: bool,
) -> None:
    target = tmp_path / "k.key"
    if existing:
        target.write_bytes(b"old content")
    owner = files if attr == "_fsync" else files.os
    monkeypatch.setattr(owner, attr, fake)
    with pytest.raises(InputError, match="cannot write") as info:
        files.atomic_write(target, b"new content" * 1000, force=True)
    monkeypatch.undo()
    assert "nothing was changed" in (info.value.hint or "")
    if existing:
        assert target.read_bytes() == b"old content"
    else:
        assert not target.exists()
    assert leftovers(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == (["k.key"] if existing else [])


def test_interrupted_by_keyboard_interrupt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    target = tmp_path / "k.key"
    target.write_bytes(b"old")
    monkeypatch.setattr(files, "_fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        files.atomic_write(target, b"new", force=True)
    assert target.read_bytes() == b"old"
    assert leftovers(tmp_path) == []


def test_partial_os_write_is_completed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """os.write may write less than asked; the loop must finish the job."""
    real_write = os.write

    def short_write(fd: int, data: bytes | memoryview) -> int:
        return real_write(fd, bytes(data[:7]))

    monkeypatch.setattr(files.os, "write", short_write)
    payload = bytes(range(256)) * 10
    files.atomic_write(tmp_path / "x", payload)
    monkeypatch.undo()
    assert (tmp_path / "x").read_bytes() == payload


# -------------------------------------------------------------------- refusals


def test_target_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="is a directory"):
        files.atomic_write(tmp_path, b"x")


def test_parent_is_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    with pytest.raises(InputError, match="not a directory"):
        files.atomic_write(blocker / "sub" / "k.key", b"x")
    with pytest.raises(InputError, match="not a directory"):
        files.ensure_private_dir(blocker)


def test_cannot_create_temporary_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What an unwritable directory looks like (simulated: tests may run as root)."""

    def denied(*args: object, **kwargs: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(files.os, "open", denied)
    with pytest.raises(InputError, match="cannot write in") as info:
        files.atomic_write(tmp_path / "k.key", b"x")
    monkeypatch.undo()
    assert "Permission denied" in str(info.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_unwritable_directory(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(InputError, match="cannot write in"):
            files.atomic_write(locked / "k.key", b"x")
    finally:
        locked.chmod(0o700)


# ---------------------------------------------------------------------- reading


def test_read_bytes(tmp_path: Path) -> None:
    path = tmp_path / "a.crt"
    path.write_bytes(b"data")
    assert files.read_bytes(path) == b"data"
    with pytest.raises(InputError, match=r"certificate file .*nope\.crt does not exist"):
        files.read_bytes(tmp_path / "nope.crt", "certificate file")
    with pytest.raises(InputError, match="is a directory"):
        files.read_bytes(tmp_path, "key file")


@pytest.mark.skipif(os.geteuid() == 0, reason="root can read anything")
def test_read_bytes_permission_denied(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(InputError, match="permission denied"):
        files.read_bytes(path, "key file")
