"""Users' own functions are found and imported from the working directory, with errors naming the config key."""

import sys

import pytest
from pixelflow.errors import ConfigError
from pixelflow.pipelines.user_code import load_function, parse_reference, source_file


@pytest.fixture
def clean_modules():
    """Forget the modules a test imports, and the folders it put on sys.path."""
    modules, path = set(sys.modules), list(sys.path)
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    sys.path[:] = path


@pytest.mark.parametrize(
    ("reference", "parts"),
    [("myops:count", ("myops", "count")), ("lab.filters:smooth_2", ("lab.filters", "smooth_2"))],
)
def test_references_split_into_module_and_function(reference, parts):
    assert parse_reference(reference, "k") == parts


@pytest.mark.parametrize("reference", ["myops", "myops:", ":count", "my-ops:count", "a..b:c", "a:b:c", 3, None])
def test_malformed_references_name_the_key(reference):
    with pytest.raises(
        ConfigError, match=r"^config key pipelines\.p\.steps\.0\.function: expected \"module:function\""
    ):
        parse_reference(reference, "pipelines.p.steps.0.function")


def test_source_files_are_modules_or_packages_in_the_working_directory(tmp_path):
    (tmp_path / "myops.py").write_text("")
    (tmp_path / "lab" / "filters").mkdir(parents=True)
    (tmp_path / "lab" / "filters" / "__init__.py").write_text("")
    assert source_file("myops:f", "k", tmp_path) == "myops.py"
    assert source_file("lab.filters:f", "k", tmp_path) == "lab/filters/__init__.py"
    with pytest.raises(ConfigError, match=r"^config key k: module 'missing' not found: no missing\.py"):
        source_file("missing:f", "k", tmp_path)


def test_functions_are_imported_from_the_working_directory(tmp_path, clean_modules):
    (tmp_path / "pf_helper_a.py").write_text("OFFSET = 2\n")
    (tmp_path / "pf_user_ops.py").write_text(
        "from pf_helper_a import OFFSET\n\ndef shift(image):\n    return image + OFFSET\n"
    )
    shift = load_function("pf_user_ops:shift", tmp_path, "k")
    assert shift(1) == 3


def test_a_module_shadowed_by_an_installed_one_is_refused(tmp_path, clean_modules):
    (tmp_path / "json.py").write_text("def loads(text):\n    return text\n")
    with pytest.raises(ConfigError, match=r"^config key k: module 'json' was imported from .*rename your module"):
        load_function("json:loads", tmp_path, "k")


def test_a_missing_function_names_the_key(tmp_path, clean_modules):
    (tmp_path / "pf_user_ops2.py").write_text("VALUE = 3\n")
    with pytest.raises(ConfigError, match=r"^config key k: .*pf_user_ops2\.py has no function 'VALUE'"):
        load_function("pf_user_ops2:VALUE", tmp_path, "k")
    with pytest.raises(ConfigError, match="has no function 'nothing'"):
        load_function("pf_user_ops2:nothing", tmp_path, "k")
