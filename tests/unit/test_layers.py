"""The package's layers point one way: planning -> stage core -> shared leaves, without import cycles.

The job scripts' declared code inputs come from the project's own import
tracker (pixelflow.planning.imports); the package's import graph is read here
from the source with ast, independently of it.
"""

import ast
from pathlib import Path

import pytest
from pixelflow.planning.imports import imported_core_modules

from .support import SCRIPTS

PACKAGE = SCRIPTS / "pixelflow"
ENTRY_SCRIPTS = sorted(SCRIPTS.glob("*.py"))
LEAVES = {"errors", "formats", "atomic", "runner", "joblog", "progress", "benchtable"}
STAGES = {"datasets", "maps", "mosaics", "pipelines", "stats"}
# A stage may use another stage only through these documented functions' modules.
CROSS_STAGE = {
    ("stats", "datasets.generators"),
    ("stats", "pipelines.filters"),
    ("stats", "pipelines.kernel"),
    ("stats", "pipelines.metrics"),
    ("stats", "pipelines.operations"),
    ("pipelines", "datasets.montage"),
}


def module_name(path: Path) -> str:
    """``maps.reproject`` for scripts/pixelflow/maps/reproject.py (``maps`` for its __init__.py)."""
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path) -> set[str]:
    """The pixelflow modules a source file imports (``from pixelflow.x import y`` counts x.y when it is a module)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names if alias.name.startswith("pixelflow.")}
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "pixelflow":
            assert node.level == 0, f"{path}: relative import"
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    modules = set()
    for name in names:
        relative = name.split(".")[1:]
        target = PACKAGE.joinpath(*relative)
        if relative and (target.with_suffix(".py").is_file() or (target / "__init__.py").is_file()):
            modules.add(".".join(relative))
    return modules


GRAPH = {module_name(path): imported(path) for path in sorted(PACKAGE.rglob("*.py"))}


def layer(module: str) -> str:
    top = module.split(".")[0]
    if top == "planning":
        return "planning"
    if top in STAGES:
        return "stage"
    if top == "io":
        return "io"
    assert top in LEAVES or top == "", f"{module}: not a leaf, io, stage or planning module"
    return "leaf"


def test_the_graph_is_read():
    assert GRAPH["maps.reproject"] >= {"maps.projections", "io.images", "atomic"}
    assert "planning.config" in GRAPH["planning.datasets"]


@pytest.mark.parametrize("script", ENTRY_SCRIPTS, ids=lambda path: path.name)
def test_no_job_script_declares_a_planning_module_as_code(script):
    code = imported_core_modules(script)
    assert code, f"{script.name} imports no core module"
    planning = [path for path in code if Path(path).parent.name == "planning"]
    assert not planning, f"{script.name} would rerun on planning edits: {planning}"


def test_core_never_imports_planning():
    offenders = {
        module: sorted(target for target in targets if layer(target) == "planning")
        for module, targets in GRAPH.items()
        if layer(module) != "planning"
    }
    assert not {module: targets for module, targets in offenders.items() if targets}


def test_shared_leaves_and_io_import_no_stage():
    for module, targets in GRAPH.items():
        if layer(module) == "leaf":
            assert all(layer(target) == "leaf" for target in targets), (module, targets)
        if layer(module) == "io":
            assert all(layer(target) in ("leaf", "io") for target in targets), (module, targets)


def test_stages_use_each_other_only_through_documented_modules():
    for module, targets in GRAPH.items():
        if layer(module) != "stage":
            continue
        stage = module.split(".")[0]
        for target in targets:
            if layer(target) == "stage" and target.split(".")[0] != stage:
                assert (stage, target) in CROSS_STAGE, f"{module} imports {target}"


def test_the_package_has_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module, trail):
        state[module] = "open"
        for target in sorted(GRAPH.get(module, ())):
            if state.get(target) == "open":
                cycle = trail[trail.index(target) :] + [target]
                pytest.fail(f"import cycle: {' -> '.join(cycle)}")
            if target not in state:
                visit(target, trail + [target])
        state[module] = "done"

    for module in GRAPH:
        if module not in state:
            visit(module, [module])


def test_package_init_files_are_empty():
    """An __init__.py runs on every import below it, so it is a code input of every rule: it holds nothing."""
    for path in PACKAGE.rglob("__init__.py"):
        assert path.read_text(encoding="utf-8").strip() == "", path
