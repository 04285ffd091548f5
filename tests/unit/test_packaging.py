"""The conda environments pin the same packages that pyproject.toml declares."""

import re
import tomllib

import pytest
import yaml

from .support import REPO

IGNORED = {"python", "pip"}
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))


def normalized(name: str) -> str:
    """Package names compare case-insensitively with '-', '_' and '.' alike (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_name(requirement: str) -> str:
    """The distribution name of a PEP 508 requirement or a conda match spec (``numpy=2.4``, ``pkg >=1``)."""
    requirement = requirement.split("::")[-1]  # conda channel prefix
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"cannot read a package name from {requirement!r}"
    return normalized(match.group(1))


def environment_names(path) -> set[str]:
    environment = yaml.safe_load(path.read_text(encoding="utf-8"))
    names = set()
    for entry in environment["dependencies"]:
        if isinstance(entry, dict):
            assert set(entry) == {"pip"}, f"{path.name}: unexpected section {sorted(entry)}"
            names |= {requirement_name(requirement) for requirement in entry["pip"]}
        else:
            names.add(requirement_name(entry))
    return names - IGNORED


def project_names() -> set[str]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return {requirement_name(requirement) for requirement in project["dependencies"]} - IGNORED


def test_requirement_names_are_read_from_either_syntax():
    assert requirement_name("numpy=2.4.6") == "numpy"
    assert requirement_name("conda-forge::scikit-image >=0.24") == "scikit-image"
    assert requirement_name("opencv_python_headless==5.0") == requirement_name("OpenCV-Python-Headless>=4")
    assert requirement_name("jsonschema[format]>=4.18; python_version>'3'") == "jsonschema"


def test_there_is_an_environment_file():
    assert ENV_FILES


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_environment_packages_equal_the_project_dependencies(path):
    in_environment, in_project = environment_names(path), project_names()
    assert in_environment == in_project, (
        f"only in {path.name}: {sorted(in_environment - in_project)}; "
        f"only in pyproject.toml: {sorted(in_project - in_environment)}"
    )


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda path: path.name)
def test_environment_packages_are_pinned(path):
    environment = yaml.safe_load(path.read_text(encoding="utf-8"))
    for entry in environment["dependencies"]:
        for requirement in entry["pip"] if isinstance(entry, dict) else [entry]:
            assert re.search(r"[^=<>!]==?\d", requirement), f"{path.name}: {requirement!r} is not pinned"
