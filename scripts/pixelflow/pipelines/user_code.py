"""Users' own step and metric functions, named ``"module:function"`` in the config (standard library only).

A module is a Python file in the working directory (the folder ``snakemake``
runs in, which holds the config): ``myops:count`` is the function ``count`` of
``./myops.py``, and ``lab.filters:smooth`` that of ``./lab/filters.py`` (or
``./lab/filters/__init__.py``). The planning declares these files as inputs
of the jobs that use them, so editing one reruns them; files the module
imports itself are not tracked.
"""

import importlib
import os
import re
import sys
from pathlib import Path

from pixelflow.errors import ConfigError

REFERENCE = re.compile(r"^(?P<module>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*):(?P<name>[A-Za-z_]\w*)$")


def parse_reference(reference, key: str) -> tuple[str, str]:
    """Split ``"module:function"`` into its module and function names.

    Parameters
    ----------
    reference : str
        As the config gives it, e.g. ``"myops:count_objects"``.
    key : str
        The config key holding it, for errors.

    Returns
    -------
    tuple of str
        ``(module, function)``.

    Raises
    ------
    ConfigError
        Naming ``key``, when ``reference`` is not of that form.
    """
    match = REFERENCE.match(reference) if isinstance(reference, str) else None
    if match is None:
        raise ConfigError(
            f'config key {key}: expected "module:function", such as "myops:count_objects" '
            f"(module myops.py in the working directory), got {reference!r}"
        )
    return match["module"], match["name"]


def module_file(module: str, workdir) -> Path | None:
    """The file of a user module in ``workdir``, relative to it, or None when there is none.

    ``a.b`` is ``a/b.py``, else ``a/b/__init__.py``.
    """
    base = Path(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if (Path(workdir) / candidate).is_file():
            return candidate
    return None


def source_file(reference: str, key: str, workdir) -> str:
    """The file of the module a ``"module:function"`` names, relative to ``workdir``, as a string.

    Raises
    ------
    ConfigError
        Naming ``key``: a malformed reference, or a module with no file in ``workdir``.
    """
    module, _ = parse_reference(reference, key)
    path = module_file(module, workdir)
    if path is None:
        dotted = Path(*module.split("."))
        raise ConfigError(
            f"config key {key}: module {module!r} not found: no {dotted.with_suffix('.py')} "
            f"or {dotted / '__init__.py'} in the working directory {os.fspath(workdir)}"
        )
    return str(path)


def load_function(reference: str, workdir, key: str):
    """Import the function a ``"module:function"`` names from ``workdir``.

    ``workdir`` is put first on ``sys.path``, so the module may import its
    sibling files.

    Parameters
    ----------
    reference : str
        ``"module:function"``.
    workdir : str or path-like
        The working directory holding the module.
    key : str
        The config key naming the function, for errors.

    Returns
    -------
    callable

    Raises
    ------
    ConfigError
        Naming ``key``: a malformed reference, a module with no file in
        ``workdir``, a module of the same name imported from elsewhere (an
        installed package), or a name that is not a callable of the module.
    Exception
        Whatever importing the module raises, with the user's traceback.
    """
    module_name, name = parse_reference(reference, key)
    expected = (Path(workdir) / source_file(reference, key, workdir)).resolve()
    folder = os.fspath(Path(workdir).resolve())
    if sys.path[:1] != [folder]:
        sys.path.insert(0, folder)
    module = importlib.import_module(module_name)
    found = getattr(module, "__file__", None)
    if found is None or Path(found).resolve() != expected:
        raise ConfigError(
            f"config key {key}: module {module_name!r} was imported from {found}, not from {expected}; "
            "rename your module so that it does not clash with an installed one"
        )
    function = getattr(module, name, None)
    if not callable(function):
        raise ConfigError(f"config key {key}: {expected} has no function {name!r}")
    return function
