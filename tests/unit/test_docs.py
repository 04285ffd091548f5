"""The user docs: the README and docs/*.md link to files that exist, and docs/configuration.md matches the schema."""

import importlib.util
import re

import pytest

from .support import REPO, SCHEMA_PATH

README = REPO / "README.md"
PAGES = [README, *sorted((REPO / "docs").glob("*.md"))]
# Markdown links and images [text](target), and HTML src="target"; the target without a #fragment.
LINK = re.compile(r"\]\(([^)\s]+)\)|src=\"([^\"]+)\"")
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)|<img [^>]*src=\"([^\"]+)\"")


def docs_script(name: str):
    """The module docs/{name}.py (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "docs" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_configuration():
    """The module docs/make_configuration.py."""
    return docs_script("make_configuration")


def targets(pattern: re.Pattern, text: str) -> list[str]:
    """Link targets matched by ``pattern`` that point into the repository (not URLs or #anchors)."""
    found = [first or second for first, second in pattern.findall(text)]
    return [target.split("#")[0] for target in found if not re.match(r"[a-z]+:|#", target)]


def schema_keys(node, found=None) -> set[str]:
    """Every property name anywhere in a schema, $defs included."""
    found = set() if found is None else found
    if isinstance(node, dict):
        found.update(node.get("properties", {}))
        for child in node.values():
            schema_keys(child, found)
    elif isinstance(node, list):
        for child in node:
            schema_keys(child, found)
    return found


def test_configuration_page_is_generated_from_the_current_schema(schema):
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    assert page == make_configuration().render(schema), "run: python docs/make_configuration.py"


def test_pipelines_page_lists_every_operation_and_metric_of_the_registries():
    from pixelflow.pipelines.metrics import METRICS
    from pixelflow.pipelines.operations import OPERATIONS

    script = docs_script("make_operations")
    page = script.PAGE.read_text(encoding="utf-8")
    assert page == script.updated(page), "run: python docs/make_operations.py"
    for name in [*OPERATIONS, *METRICS]:
        assert f"| `{name}` |" in page


def test_configuration_page_names_every_key_of_the_schema(schema):
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    keys = schema_keys(schema)
    assert {"seed", "generator", "path", "cache_inverse", "features", "grid", "save_filtered"} <= keys
    missing = [key for key in sorted(keys) if not re.search(rf"`(\S*\.)?{re.escape(key)}`", page)]
    assert not missing


def test_the_generator_reads_the_schema_file():
    assert make_configuration().SCHEMA == SCHEMA_PATH


@pytest.mark.parametrize("page", PAGES, ids=lambda path: path.relative_to(REPO).as_posix())
def test_relative_links_point_to_existing_files(page):
    text = page.read_text(encoding="utf-8")
    missing = [target for target in targets(LINK, text) if not (page.parent / target).exists()]
    assert not missing


def test_readme_images_exist_and_are_small():
    images = targets(IMAGE, README.read_text(encoding="utf-8"))
    assert len(images) >= 4
    for image in images:
        path = README.parent / image
        assert path.is_file(), image
        assert path.stat().st_size < 300_000, f"{image}: {path.stat().st_size} bytes"


def test_readme_is_a_short_guide_with_the_test_command():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= 260
    marker = lines.index("<!-- test-command -->")
    assert lines[marker + 1] == "```bash" and "pytest" in lines[marker + 2]
    assert not any("DESIGN.md" in line for line in lines)


def test_defaults_that_depend_on_the_storage_are_shown_for_each(schema):
    page = make_configuration().render(schema)
    assert "| `datasets.<name>.stack` | boolean | `true`; `false` with `storage: zarr` |" in page
    assert "| `datasets.<name>.compression` | integer 0 to 9 or string | `0`; `none` with `storage: zarr` |" in page
    assert "| `datasets.<name>.format` | `png`, `tiff`, `tif`, `bmp` | `png` |" in page
