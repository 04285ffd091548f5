"""Atomic outputs: write under a temporary name in the same folder, then rename.

A job that fails or is killed leaves at most a hidden ``.<name>.partial-*``
entry, never a file or folder that looks finished. Stale partial entries of
the same target are removed the next time the target is written.
"""

import contextlib
import os
import re
import secrets
import shutil
from pathlib import Path

PARTIAL_MARK = ".partial-"


def partial_name(target: Path) -> Path:
    """Return a fresh hidden temporary path beside ``target`` keeping its suffix.

    The name is ``.<stem>.partial-<process id><6 hex digits><suffix>``; nothing is
    created there.

    Parameters
    ----------
    target : Path
        The file or folder that will be written.

    Returns
    -------
    Path
        The temporary path, in ``target``'s folder.
    """
    token = f"{os.getpid()}{secrets.token_hex(3)}"
    return target.with_name(f".{target.stem}{PARTIAL_MARK}{token}{target.suffix}")


def remove_stale_partials(target: Path) -> None:
    """Delete leftovers of earlier interrupted writes of ``target``.

    Every file or folder in ``target``'s folder named as :func:`partial_name`
    names them goes, whichever process left it; a missing folder is no error.

    Parameters
    ----------
    target : Path
        The file or folder whose partial entries are removed.
    """
    pattern = re.compile(re.escape(f".{target.stem}{PARTIAL_MARK}") + "[0-9a-f]+" + re.escape(target.suffix))
    if not target.parent.is_dir():
        return
    for entry in target.parent.iterdir():
        if pattern.fullmatch(entry.name):
            _remove(entry)


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def atomic_file(target):
    """Yield a temporary path; on success it is renamed to ``target``.

    The temporary file keeps ``target``'s suffix so that writers choosing a
    format by extension (OpenCV, numpy) still work. ``target``'s folder is
    created and its stale partial entries removed first. If the block raises
    (or is interrupted), the temporary file is deleted and ``target`` is left
    as it was.

    Parameters
    ----------
    target : str or path-like
        The file to write.

    Yields
    ------
    Path
        Where to write the content; nothing exists there yet.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    temporary = partial_name(target)
    try:
        yield temporary
        os.replace(temporary, target)
    except BaseException:
        _remove(temporary)
        raise


@contextlib.contextmanager
def atomic_dir(target):
    """Yield a fresh temporary folder; on success it replaces ``target``.

    An existing ``target`` (for instance an empty folder made by the
    scheduler) is removed only once the new content is complete. If the block
    raises (or is interrupted), the temporary folder is deleted and ``target``
    is left as it was.

    Parameters
    ----------
    target : str or path-like
        The folder to write; its parent is created.

    Yields
    ------
    Path
        An empty folder beside ``target`` to fill.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_partials(target)
    temporary = partial_name(target)
    temporary.mkdir()
    try:
        yield temporary
        if target.exists():
            _remove(target)
        os.replace(temporary, target)
    except BaseException:
        _remove(temporary)
        raise


def write_bytes(target, data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_file(target) as temporary:
        Path(temporary).write_bytes(data)


def write_text(target, text: str) -> None:
    """Write ``text`` (UTF-8) to ``target`` atomically."""
    write_bytes(target, text.encode("utf-8"))
