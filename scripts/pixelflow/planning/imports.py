"""Which core modules a job script imports, so that rules declare them as inputs (standard library only).

A rule's script imports modules of ``pixelflow``; declaring their source files
as inputs makes an edit to one rerun exactly the rules whose scripts import it.
The imports are read from the source with :mod:`ast` (nothing is imported),
following each module's own imports. The lists are kept per user between runs
(:func:`imports_cache_path`): an entry counts only while its file's mtime and
size match.
"""

import ast
import json
import os
from pathlib import Path

from pixelflow.atomic import write_text


def imported_core_modules(script, package: str = "pixelflow") -> list[str]:
    """Source files of ``package`` that ``script`` imports, directly or through each other.

    The package is looked up beside the script. Importing a module also runs
    the ``__init__.py`` of every package above it, so those are included and
    followed too. Relative imports in the script itself are not followed.

    Parameters
    ----------
    script : str or path
        The job script.
    package : str
        The package's name (its folder lies beside the script).

    Returns
    -------
    list of str
        Sorted paths of the files, so that rules can declare them as inputs.
    """
    script = Path(script)
    package_dir = script.parent / package
    seen: set[Path] = set()
    pending: list[tuple[Path, tuple | None]] = [(script, None)]
    while pending:
        source, parts = pending.pop()
        stat = source.stat()
        for module in _file_imports(source, stat.st_mtime_ns, stat.st_size, package, parts):
            for path, module_parts in _module_files(package_dir, module):
                if path not in seen:
                    seen.add(path)
                    pending.append((path, module_parts))
    return sorted(str(path) for path in seen)


# Import lists by file, kept across runs in a JSON file (see load_imports_cache):
# key -> [mtime_ns, size, modules]. Parsing every core module costs about 0.1 s.
_KNOWN_IMPORTS: dict[str, list] = {}
_CHANGED_IMPORTS: set[str] = set()
IMPORTS_CACHE_VERSION = 1


def imports_cache_path(environ=os.environ) -> Path:
    """Where the import lists are kept: one file per user, like Python's bytecode caches.

    Entries are keyed by resolved source paths, so every run folder and every
    checkout can share it.

    Parameters
    ----------
    environ : mapping
        Where ``XDG_CACHE_HOME`` and ``HOME`` are read; ``os.environ`` by default.

    Returns
    -------
    Path
        ``imports.json`` in ``$XDG_CACHE_HOME/pixelflow``, else in
        ``~/.cache/pixelflow`` (``~`` from ``HOME``, else from ``os.path.expanduser``).
    """
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "pixelflow" / "imports.json"


def load_imports_cache(path) -> None:
    """Reuse the import lists an earlier run saved to ``path`` (a missing, unreadable or other-version file: none)."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and data.get("version") == IMPORTS_CACHE_VERSION:
        _KNOWN_IMPORTS.update(data.get("files", {}))


def save_imports_cache(path) -> None:
    """Save the import lists to ``path`` (atomically) if any was parsed anew since the last save.

    An unwritable path is skipped: the lists are then parsed again next time.
    """
    if not _CHANGED_IMPORTS:
        return
    # Entries of files that no longer exist (deleted checkouts) are dropped.
    files = {key: entry for key, entry in _KNOWN_IMPORTS.items() if os.path.exists(key.split("|", 1)[0])}
    try:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        write_text(path, json.dumps({"version": IMPORTS_CACHE_VERSION, "files": files}, sort_keys=True))
    except OSError:
        return
    _CHANGED_IMPORTS.clear()


def _file_imports(source: Path, mtime_ns: int, size: int, package: str, parts) -> tuple[tuple, ...]:
    """Modules of ``package`` that one file imports; each version of a file is parsed once."""
    key = f"{source.resolve()}|{package}|{parts!r}"
    known = _KNOWN_IMPORTS.get(key)
    if known is not None and known[:2] == [mtime_ns, size]:
        return tuple(tuple(module) for module in known[2])
    tree = ast.parse(source.read_text(encoding="utf-8"), filename=str(source))
    is_init = source.name == "__init__.py"
    modules = tuple(module for node in _statements(tree) for module in _imported_modules(node, package, parts, is_init))
    _KNOWN_IMPORTS[key] = [mtime_ns, size, [list(module) for module in modules]]
    _CHANGED_IMPORTS.add(key)
    return modules


def _statements(tree):
    """Every statement of a module, nested ones included (imports are statements; expressions are skipped)."""
    pending = list(tree.body)
    while pending:
        node = pending.pop()
        yield node
        for field in ("body", "orelse", "finalbody", "handlers", "cases"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                pending.extend(child for child in children if isinstance(child, ast.AST))


def _imported_modules(node, package: str, parts, is_init: bool) -> list[tuple]:
    """Module names (tuples of parts below ``package``) that an import node may load.

    ``parts`` names the importing file inside the package (None for the script).
    """
    if isinstance(node, ast.Import):
        return [
            tuple(alias.name.split(".")[1:])
            for alias in node.names
            if alias.name == package or alias.name.startswith(package + ".")
        ]
    if not isinstance(node, ast.ImportFrom):
        return []
    module = node.module.split(".") if node.module else []
    if node.level == 0:
        if not module or module[0] != package:
            return []
        base = tuple(module[1:])
    else:
        if parts is None:
            return []
        current = parts if is_init else parts[:-1]
        up = node.level - 1
        if up > len(current):
            return []
        base = tuple(current[: len(current) - up]) + tuple(module)
    return [base] + [base + (alias.name,) for alias in node.names if alias.name != "*"]


def _module_files(package_dir: Path, parts: tuple) -> list[tuple[Path, tuple]]:
    """Files Python runs to import module ``parts``: each enclosing package's __init__.py, then the module."""
    module = package_dir.joinpath(*parts)
    if module.with_suffix(".py").is_file() and parts:
        own = (module.with_suffix(".py"), parts)
    elif (module / "__init__.py").is_file():
        own = (module / "__init__.py", parts)
    else:
        return []
    enclosing = [(package_dir.joinpath(*parts[:k], "__init__.py"), parts[:k]) for k in range(len(parts))]
    return [(path, names) for path, names in enclosing if path.is_file()] + [own]
