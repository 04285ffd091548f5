"""The core modules each script imports, found from the source, and the import lists kept between runs."""

import ast
import json
import textwrap
from pathlib import Path

import pytest
from pixelflow.planning import imports
from pixelflow.planning.imports import imported_core_modules

from ..support import SCRIPTS, run_python

LOADED_MODULES = textwrap.dedent(
    """
    # Run an entry script until it first touches `snakemake` (after its imports),
    # then list the files of every module of the package it loaded.
    import json, os, runpy, sys

    class ImportsDone(Exception):
        pass

    class Snakemake:
        def __getattr__(self, name):
            raise ImportsDone(name)

    script, package = sys.argv[1], sys.argv[2]
    sys.path.insert(0, os.path.dirname(script))
    try:
        runpy.run_path(script, init_globals={"snakemake": Snakemake()}, run_name="__main__")
    except ImportsDone:
        pass
    print(json.dumps(sorted(
        os.path.realpath(module.__file__)
        for name, module in sys.modules.items()
        if name == package or name.startswith(package + ".")
    )))
    """
)


def loaded_modules(script: Path, package: str = "pixelflow") -> list[str]:
    """The package's source files Python really loads when ``script`` runs (in a fresh interpreter)."""
    result = run_python(LOADED_MODULES, str(script), package, timeout=120, PYTHONPATH="")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def resolved(paths) -> list[str]:
    return sorted(str(Path(path).resolve()) for path in paths)


ENTRY_SCRIPTS = sorted(SCRIPTS.glob("*.py"))


def test_there_are_entry_scripts():
    assert len(ENTRY_SCRIPTS) >= 3


def imported_in_functions(path: str) -> set[str]:
    """The pixelflow modules a file imports inside a function body (loaded only when the function runs)."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"))
    names = set()
    for function in ast.walk(tree):
        if isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("pixelflow."):
                    names.add(node.module)
                elif isinstance(node, ast.Import):
                    names.update(alias.name for alias in node.names if alias.name.startswith("pixelflow."))
    return names


def module_path(name: str) -> str:
    return str((SCRIPTS / Path(*name.split("."))).with_suffix(".py").resolve())


@pytest.mark.parametrize("script", ENTRY_SCRIPTS, ids=lambda path: path.name)
def test_imported_core_modules_of_the_real_scripts(script):
    """The tracker finds what the script loads, and the modules imported inside functions that it runs later."""
    found = imported_core_modules(script)
    assert found == sorted(found)
    loaded = loaded_modules(script)
    assert loaded, "the script imports no pixelflow module"
    assert all(path.startswith(str((SCRIPTS / "pixelflow").resolve())) for path in loaded)
    lazy = {module_path(name) for path in found for name in imported_in_functions(path)}
    assert set(loaded) <= set(resolved(found))
    for extra in set(resolved(found)) - set(loaded):
        assert extra in lazy or extra.endswith("__init__.py"), (
            f"{extra} is tracked but neither loaded nor imported lazily"
        )


def write_package(root: Path, files: dict) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text))
    return root


def test_imported_core_modules_follows_every_import_form(tmp_path):
    scripts = write_package(
        tmp_path / "scripts",
        {
            "job.py": """
                from pixelflow import alpha
                import pixelflow.bravo
                import os
            """,
            "pixelflow/__init__.py": "",
            "pixelflow/alpha.py": "from pixelflow.charlie import thing\n",
            "pixelflow/bravo.py": "from . import delta\nfrom .echo import value as v\n",
            "pixelflow/charlie.py": "thing = 1\n",
            "pixelflow/delta.py": "import json\nimport pixelflow.foxtrot as fox\n",
            "pixelflow/echo.py": "value = 2\n",
            "pixelflow/foxtrot.py": "def lazy():\n    from pixelflow import alpha\n",
            "pixelflow/unused.py": "raise RuntimeError('never imported')\n",
            "otherpkg/__init__.py": "",
        },
    )
    found = imported_core_modules(scripts / "job.py")
    package = scripts / "pixelflow"
    expected = ["__init__.py", "alpha.py", "bravo.py", "charlie.py", "delta.py", "echo.py", "foxtrot.py"]
    assert found == sorted(str(package / name) for name in expected)
    assert resolved(found) == loaded_modules(scripts / "job.py")


def test_imported_core_modules_of_a_script_without_core_imports_is_empty(tmp_path):
    scripts = write_package(tmp_path / "scripts", {"job.py": "import os\n", "pixelflow/__init__.py": ""})
    assert imported_core_modules(scripts / "job.py") == []


def test_imported_core_modules_follows_imports_of_the_package_init(tmp_path):
    # Importing any pixelflow module runs pixelflow/__init__.py, so what it imports is loaded too.
    scripts = write_package(
        tmp_path / "scripts",
        {
            "job.py": "from pixelflow import alpha\n",
            "pixelflow/__init__.py": "from . import version\n",
            "pixelflow/alpha.py": "",
            "pixelflow/version.py": "",
        },
    )
    found = resolved(imported_core_modules(scripts / "job.py"))
    loaded = loaded_modules(scripts / "job.py")
    assert found == loaded, f"missed {sorted(set(loaded) - set(found))}, extra {sorted(set(found) - set(loaded))}"


def test_imported_core_modules_follows_relative_imports_inside_subpackages(tmp_path):
    scripts = write_package(
        tmp_path / "scripts",
        {
            "job.py": "from pixelflow.maps import project\nimport pixelflow.maps.grids\n",
            "pixelflow/__init__.py": "",
            "pixelflow/common.py": "",
            "pixelflow/maps/__init__.py": "",
            "pixelflow/maps/project.py": "from . import tiles\nfrom .. import common\n",
            "pixelflow/maps/grids.py": "",
            "pixelflow/maps/tiles.py": "",
        },
    )
    found = resolved(imported_core_modules(scripts / "job.py"))
    loaded = loaded_modules(scripts / "job.py")
    assert found == loaded, f"missed {sorted(set(loaded) - set(found))}, extra {sorted(set(found) - set(loaded))}"


def test_imported_core_modules_finds_imports_nested_in_any_statement(tmp_path):
    nested = """
        import os
        if os.name:
            from pixelflow import a
        else:
            from pixelflow import b
        try:
            from pixelflow import c
        except ImportError:
            from pixelflow import d
        finally:
            from pixelflow import e
        with open(os.devnull) as handle:
            from pixelflow import f
        class Thing:
            def method(self):
                from pixelflow import g
        async def run():
            for _ in ():
                from pixelflow import h
        match os.sep:
            case "/":
                from pixelflow import i
        text = "from pixelflow import unused"
    """
    names = "abcdefghi"
    files = {"job.py": nested, "pixelflow/__init__.py": "", "pixelflow/unused.py": ""}
    files.update({f"pixelflow/{name}.py": "" for name in names})
    scripts = write_package(tmp_path / "scripts", files)
    found = imported_core_modules(scripts / "job.py")
    assert found == sorted(str(scripts / "pixelflow" / name) for name in ["__init__.py", *(f"{n}.py" for n in names)])


def test_import_lists_saved_by_one_run_serve_the_next_until_a_file_changes(tmp_path):
    files = {"job.py": "from pixelflow import a\n", "pixelflow/__init__.py": ""}
    scripts = write_package(tmp_path / "scripts", files | {"pixelflow/a.py": "", "pixelflow/b.py": ""})
    cache = tmp_path / ".snakemake" / "pixelflow" / "imports.json"
    first = imported_core_modules(scripts / "job.py")
    imports.save_imports_cache(cache)
    saved = json.loads(cache.read_text())["files"]
    assert any(key.startswith(str((scripts / "job.py").resolve())) for key in saved)

    # A fresh run (empty memory) reads the saved lists and gets the same answer.
    imports._KNOWN_IMPORTS.clear()
    imports.load_imports_cache(cache)
    assert imported_core_modules(scripts / "job.py") == first

    # An edit changes the file's size and mtime: it is parsed again, not served stale.
    (scripts / "job.py").write_text("from pixelflow import a, b  # now both\n")
    assert imported_core_modules(scripts / "job.py") == first + [str(scripts / "pixelflow" / "b.py")]

    # A broken cache file is ignored.
    cache.write_text("{not json")
    imports._KNOWN_IMPORTS.clear()
    imports.load_imports_cache(cache)
    assert imported_core_modules(scripts / "job.py") == first + [str(scripts / "pixelflow" / "b.py")]


def test_the_import_lists_live_in_the_users_cache_folder():
    assert imports.imports_cache_path({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/pixelflow/imports.json")
    assert imports.imports_cache_path({"HOME": "/h"}) == Path("/h/.cache/pixelflow/imports.json")


def test_saved_import_lists_drop_files_that_are_gone(tmp_path):
    kept = write_package(tmp_path / "kept", {"job.py": "from pixelflow import a\n", "pixelflow/a.py": ""})
    gone = write_package(tmp_path / "gone", {"job.py": "from pixelflow import b\n", "pixelflow/b.py": ""})
    imported_core_modules(kept / "job.py")
    imported_core_modules(gone / "job.py")
    (gone / "job.py").unlink()
    cache = tmp_path / "imports.json"
    imports.save_imports_cache(cache)
    saved = json.loads(cache.read_text())["files"]
    assert any(key.startswith(str((kept / "job.py").resolve())) for key in saved)
    assert not any(key.startswith(str((gone / "job.py").resolve())) for key in saved)
    assert any(key.startswith(str((gone / "pixelflow" / "b.py").resolve())) for key in saved)
