"""Config validation, dataset shard plans and the core modules each script imports."""

import copy
import json
import math
import textwrap
from pathlib import Path

import pytest
from pixelflow import plan
from pixelflow.plan import (
    ConfigError,
    DatasetPlan,
    external_files,
    generated_shard_spec,
    imported_core_modules,
    plan_datasets,
    validate_config,
)

from .support import SCRIPTS, run_python


def minimal_config(**datasets):
    return {"datasets": datasets or {"noise": {"generator": "uniform", "count": 5, "shape": [4, 6]}}}


def validated(schema, config):
    return validate_config(copy.deepcopy(config), schema)


def config_error(schema, config) -> str:
    with pytest.raises(ConfigError) as caught:
        validate_config(copy.deepcopy(config), schema)
    return str(caught.value)


# validate_config ---------------------------------------------------------------


def test_validation_fills_every_default(schema):
    config = validated(schema, minimal_config())
    top = schema["properties"]
    for key in ("seed", "shard_size", "max_threads"):
        assert config[key] == top[key]["default"]
    montage = top["montage"]["properties"]
    assert config["montage"] == {key: montage[key]["default"] for key in montage}
    generated = schema["$defs"]["generated"]["properties"]
    defaulted = {key for key, value in generated.items() if "default" in value}
    assert {"dtype", "format", "compression", "stack"} <= defaulted
    for key in defaulted:
        assert config["datasets"]["noise"][key] == generated[key]["default"]
    assert "seed" not in config["datasets"]["noise"]  # falls back to the top-level seed at use


def test_validation_keeps_given_values_and_fills_the_rest(schema):
    config = minimal_config(noise={"generator": "uniform", "count": 5, "shape": [4, 6], "dtype": "uint16"})
    config["montage"] = {"count": 3}
    config["seed"] = 99
    config = validated(schema, config)
    assert config["seed"] == 99
    assert config["montage"]["count"] == 3
    assert config["montage"]["cell"] == schema["properties"]["montage"]["properties"]["cell"]["default"]
    assert config["datasets"]["noise"]["dtype"] == "uint16"


def test_validation_fills_defaults_of_external_datasets(schema):
    config = validated(schema, {"datasets": {"photos": {"path": "photos/*.jpg"}}})
    photos = config["datasets"]["photos"]
    assert photos["stack"] == schema["$defs"]["external"]["properties"]["stack"]["default"]
    assert "dtype" not in photos and "format" not in photos  # generated-only defaults stay out


def test_the_shipped_config_is_valid(schema):
    import yaml

    config = yaml.safe_load((SCRIPTS.parent / "config" / "config.yaml").read_text())
    validated(schema, config)


def with_dataset_key(key, value):
    config = minimal_config()
    config["datasets"]["noise"][key] = value
    return config


@pytest.mark.parametrize(
    ("config", "where"),
    [
        (with_dataset_key("count", 0), "datasets.noise.count"),
        (with_dataset_key("count", "many"), "datasets.noise.count"),
        (with_dataset_key("shape", [4, 0]), "datasets.noise.shape.1"),
        (with_dataset_key("shape", [0, 4, 3]), "datasets.noise.shape.0"),
        (with_dataset_key("shape", [4]), "datasets.noise.shape"),
        (with_dataset_key("generator", "perlin"), "datasets.noise.generator"),
        (with_dataset_key("dtype", "int8"), "datasets.noise.dtype"),
        (with_dataset_key("compression", 10), "datasets.noise.compression"),
        (with_dataset_key("colour", "blue"), "datasets.noise"),
        ({**minimal_config(), "seed": "abc"}, "seed"),
        ({**minimal_config(), "seed": -1}, "seed"),
        ({**minimal_config(), "shard_size": 2.5}, "shard_size"),
        ({**minimal_config(), "montage": {"cell": 4}}, "montage.cell"),
        ({**minimal_config(), "montage": []}, "montage"),
        ({"datasets": {"photos": {"path": ""}}}, "datasets.photos.path"),
        ({"datasets": {"photos": {"path": "*.png", "generator": "uniform"}}}, "datasets.photos"),
    ],
)
def test_validation_errors_name_the_dotted_key(schema, config, where):
    message = config_error(schema, config)
    assert f"config key {where}:" in message


def test_unknown_top_level_key_is_named(schema):
    message = config_error(schema, {**minimal_config(), "sead": 3})
    assert "'sead'" in message


def test_unknown_dataset_key_is_named(schema):
    message = config_error(schema, with_dataset_key("colour", "blue"))
    assert "colour" in message


@pytest.mark.parametrize("name", ["a/b", "..", "../up", "my data", " lead", "-dash", "x.y", ""])
def test_unsafe_dataset_names_are_rejected_by_name(schema, name):
    config = {"datasets": {name: {"generator": "uniform", "count": 1, "shape": [2, 2]}}}
    message = config_error(schema, config)
    assert repr(name) in message


@pytest.mark.parametrize("name", ["noise", "Noise_2", "a-b", "0"])
def test_safe_dataset_names_pass(schema, name):
    validated(schema, {"datasets": {name: {"generator": "uniform", "count": 1, "shape": [2, 2]}}})


# plan_datasets ---------------------------------------------------------------


def generated(count, **extra):
    return {"generator": "uniform", "count": count, "shape": [4, 4], **extra}


@pytest.mark.parametrize("count", [1, 9, 10, 11, 25, 100])
@pytest.mark.parametrize("shard_size", [1, 10, 10000])
def test_generated_datasets_split_into_covering_shards(schema, tmp_path, count, shard_size):
    config = validated(schema, {"shard_size": shard_size, "datasets": {"noise": generated(count)}})
    plan = plan_datasets(config, tmp_path)["noise"]
    assert plan.kind == "generated" and plan.count == count
    assert len(plan.shards) == math.ceil(count / shard_size)
    assert plan.shards == sorted(plan.shards) and all(len(shard) == 4 and shard.isdigit() for shard in plan.shards)
    indexes = [index for shard in plan.shards for index in range(*plan.bounds(shard))]
    assert indexes == list(range(count))
    assert all(plan.bounds(shard)[1] - plan.bounds(shard)[0] == shard_size for shard in plan.shards[:-1])
    past_the_end = f"{len(plan.shards):04d}"
    with pytest.raises(ConfigError, match=past_the_end):
        plan.bounds(past_the_end)


@pytest.mark.parametrize("wanted", [0, 1, 9, 10, 11, 20, 24, 25, 26, 1000])
def test_shards_covering_is_the_shortest_prefix_holding_the_images(wanted):
    plan = DatasetPlan("noise", "generated", 25, 10)
    covering = plan.shards_covering(wanted)
    assert covering == plan.shards[: len(covering)]
    held = {index for shard in covering for index in range(*plan.bounds(shard))}
    assert set(range(min(wanted, plan.count))) <= held
    if covering:  # without its last shard it no longer holds them all
        fewer = {index for shard in covering[:-1] for index in range(*plan.bounds(shard))}
        assert not set(range(min(wanted, plan.count))) <= fewer


@pytest.mark.parametrize(
    ("spec", "where"),
    [
        ({"dtype": "float32", "format": "png"}, "datasets.noise.dtype"),
        ({"dtype": "uint16", "format": "bmp"}, "datasets.noise.dtype"),
        ({"dtype": "float32", "format": "bmp"}, "datasets.noise.dtype"),
        ({"shape": [4, 4, 2]}, "datasets.noise.shape.2"),
        ({"shape": [4, 4, 1]}, "datasets.noise.shape.2"),
        ({"shape": [4, 4, 4], "format": "bmp"}, "datasets.noise.format"),
    ],
)
def test_rules_beyond_the_schema_raise_naming_the_key(schema, tmp_path, spec, where):
    config = validated(schema, {"datasets": {"noise": {**generated(3), **spec}}})
    with pytest.raises(ConfigError) as caught:
        plan_datasets(config, tmp_path)
    assert f"config key {where}:" in str(caught.value)


@pytest.mark.parametrize(
    "spec", [{"dtype": "float32", "format": "tiff"}, {"dtype": "uint16", "format": "png"}, {"shape": [4, 4, 4]}]
)
def test_allowed_combinations_plan_fine(schema, tmp_path, spec):
    config = validated(schema, {"datasets": {"noise": {**generated(3), **spec}}})
    assert plan_datasets(config, tmp_path)["noise"].count == 3


def test_external_glob_matching_nothing_names_the_key(schema, tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "a.png").write_bytes(b"x")
    config = validated(schema, {"datasets": {"holiday": {"path": "photos/*.jpg"}}})
    with pytest.raises(ConfigError) as caught:
        plan_datasets(config, tmp_path)
    assert "datasets.holiday.path" in str(caught.value)
    assert "photos/*.jpg" in str(caught.value)


def test_external_files_are_sorted_and_relative_to_the_workdir(schema, tmp_path):
    names = ["b/2.png", "a/10.png", "a/1.png", "c.png", "a/sub/0.png"]
    for name in names:
        (tmp_path / "data" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / name).write_bytes(b"x")
    (tmp_path / "data" / "folder.png").mkdir()  # a folder is not an image file
    config = validated(schema, {"shard_size": 2, "datasets": {"ext": {"path": "data/**/*.png"}}})
    plan = plan_datasets(config, tmp_path)["ext"]
    expected = sorted(str(Path("data") / name) for name in names)
    assert list(plan.files) == expected
    assert plan.kind == "external" and plan.count == len(names)
    assert len(plan.shards) == math.ceil(len(names) / 2)
    assert all(not Path(file).is_absolute() and (tmp_path / file).is_file() for file in plan.files)


def test_external_absolute_glob_inside_the_workdir_is_made_relative(tmp_path):
    (tmp_path / "x").mkdir()
    for name in ("b.png", "a.png"):
        (tmp_path / "x" / name).write_bytes(b"x")
    assert external_files("ext", str(tmp_path / "x" / "*.png"), tmp_path) == ("x/a.png", "x/b.png")


def test_external_files_outside_the_workdir_stay_absolute(tmp_path):
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.png").write_bytes(b"x")
    (tmp_path / "work").mkdir()
    files = external_files("ext", "../outside/*.png", tmp_path / "work")
    assert files == (str((tmp_path / "outside" / "a.png").resolve()),)


def test_generated_shard_spec_takes_the_dataset_seed_over_the_top_level_seed(schema):
    config = validated(schema, {"seed": 5, "datasets": {"a": generated(2), "b": generated(2, seed=8)}})
    assert generated_shard_spec(config, "a")["seed"] == 5
    assert generated_shard_spec(config, "b")["seed"] == 8
    spec = generated_shard_spec(config, "a")
    assert set(spec) == {"name", "generator", "seed", "shape", "dtype", "format", "compression"}


# imported_core_modules ---------------------------------------------------------

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


@pytest.mark.parametrize("script", ENTRY_SCRIPTS, ids=lambda path: path.name)
def test_imported_core_modules_of_the_real_scripts(script):
    found = imported_core_modules(script)
    assert found == sorted(found)
    loaded = loaded_modules(script)
    assert loaded, "the script imports no pixelflow module"
    assert all(path.startswith(str((SCRIPTS / "pixelflow").resolve())) for path in loaded)
    assert resolved(found) == loaded


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
    plan.save_imports_cache(cache)
    saved = json.loads(cache.read_text())["files"]
    assert any(key.startswith(str((scripts / "job.py").resolve())) for key in saved)

    # A fresh run (empty memory) reads the saved lists and gets the same answer.
    plan._KNOWN_IMPORTS.clear()
    plan.load_imports_cache(cache)
    assert imported_core_modules(scripts / "job.py") == first

    # An edit changes the file's size and mtime: it is parsed again, not served stale.
    (scripts / "job.py").write_text("from pixelflow import a, b  # now both\n")
    assert imported_core_modules(scripts / "job.py") == first + [str(scripts / "pixelflow" / "b.py")]

    # A broken cache file is ignored.
    cache.write_text("{not json")
    plan._KNOWN_IMPORTS.clear()
    plan.load_imports_cache(cache)
    assert imported_core_modules(scripts / "job.py") == first + [str(scripts / "pixelflow" / "b.py")]


def test_the_import_lists_live_in_the_users_cache_folder():
    assert plan.imports_cache_path({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/pixelflow/imports.json")
    assert plan.imports_cache_path({"HOME": "/h"}) == Path("/h/.cache/pixelflow/imports.json")


def test_saved_import_lists_drop_files_that_are_gone(tmp_path):
    kept = write_package(tmp_path / "kept", {"job.py": "from pixelflow import a\n", "pixelflow/a.py": ""})
    gone = write_package(tmp_path / "gone", {"job.py": "from pixelflow import b\n", "pixelflow/b.py": ""})
    imported_core_modules(kept / "job.py")
    imported_core_modules(gone / "job.py")
    (gone / "job.py").unlink()
    cache = tmp_path / "imports.json"
    plan.save_imports_cache(cache)
    saved = json.loads(cache.read_text())["files"]
    assert any(key.startswith(str((kept / "job.py").resolve())) for key in saved)
    assert not any(key.startswith(str((gone / "job.py").resolve())) for key in saved)
    assert any(key.startswith(str((gone / "pixelflow" / "b.py").resolve())) for key in saved)


@pytest.mark.parametrize(
    ("max_threads", "cores", "shards", "expected"),
    [
        (2, 2, 1, 2),  # one shard: its job gets every core
        (2, 2, 2, 1),  # two shards on two cores: two single-process jobs side by side
        (2, 1, 1, 1),
        (4, 8, 2, 4),  # capped at max_threads
        (4, 8, 3, 2),
        (2, 2, 40, 1),
        (3, None, 5, 3),  # no core count (a cluster executor): max_threads
    ],
)
def test_shard_jobs_share_the_cores_among_the_shards(max_threads, cores, shards, expected):
    assert plan.shard_job_threads(max_threads, cores, shards) == expected
