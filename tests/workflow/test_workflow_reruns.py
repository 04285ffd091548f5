"""Reruns are exact: after an edit a dry run plans exactly the jobs whose outputs it changes.

The planned jobs are read from `snakemake -n` (see conftest.planned_jobs),
and one test checks that a real run executes exactly what the dry run
planned and leaves every other output untouched.
"""

import contextlib
import copy
import math
import os
import re
import shutil
from modulefinder import ModuleFinder
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import (
    REPORT_TABLE,
    TINY_CONFIG,
    copy_workflow,
    dataset_hashes,
    dry_run_plan,
    job_inputs,
    partial_entries,
    planned_jobs,
    read_dataset_index,
    read_manifests,
    run_ok,
    without_report,
    write_config,
)

pytestmark = pytest.mark.slow

GENERATED_KEYS = ("generator", "shape", "dtype", "format", "compression")


# A model of the dependency structure the workflow promises ----------------------


def shard_bounds(count: int, size: int) -> dict[str, tuple[int, int]]:
    return {f"{k:04d}": (k * size, min((k + 1) * size, count)) for k in range(math.ceil(count / size))}


def dataset_jobs(config: dict, name: str) -> dict[str, dict]:
    """{output: what the job's bytes depend on} for every job of a generated dataset."""
    spec = config["datasets"][name]
    size = config["shard_size"]
    image_spec = {key: spec.get(key) for key in GENERATED_KEYS}
    image_spec["seed"] = spec.get("seed", config["seed"])
    bounds = shard_bounds(spec["count"], size)
    jobs = {}
    for shard, (start, stop) in bounds.items():
        jobs[f"results/datasets/{name}/shard-{shard}"] = {"image": image_spec, "bounds": (start, stop)}
    shards = [jobs[key] for key in sorted(jobs)]
    # The dataset's index lists every image of every shard (and removes the
    # shard folders the plan no longer has); the stack holds every image.
    jobs[f"results/datasets/{name}/manifest.tsv"] = {"shards": shards}
    jobs[f"results/datasets/{name}/stack.npy"] = {"shards": shards}
    montage = config["montage"]
    if montage["count"] > 0:
        covered = sorted(bounds)[: math.ceil(min(montage["count"], spec["count"]) / size)]
        jobs[f"results/datasets/{name}/montage.png"] = {
            "shards": [jobs[f"results/datasets/{name}/shard-{shard}"] for shard in covered],
            "montage": dict(montage),
        }
    return jobs


def expected_replan(before: dict, after: dict) -> set[str]:
    """Outputs whose dependencies differ between two configs (new outputs included)."""
    old, new = {}, {}
    for name in before["datasets"]:
        old.update(dataset_jobs(before, name))
    for name in after["datasets"]:
        new.update(dataset_jobs(after, name))
    return {output for output, depends in new.items() if old.get(output) != depends}


def rule_of(output: str) -> str:
    if output.endswith("/manifest.tsv"):
        return "dataset_index"
    if output.endswith("stack.npy"):
        return "dataset_stack"
    if output.endswith("montage.png"):
        return "dataset_montage"
    return "dataset_shard"


def changed(**datasets) -> dict:
    """TINY_CONFIG with some keys of some datasets replaced (or a dataset added)."""
    config = copy.deepcopy(TINY_CONFIG)
    for name, keys in datasets.items():
        config["datasets"].setdefault(name, {}).update(keys)
    return config


# Config edits on the shared complete run ----------------------------------------

EXTRA = {"generator": "uniform", "count": 4, "shape": [8, 8, 3], "dtype": "uint16", "format": "png"}
CONFIG_EDITS = {
    "uni count grows past a shard boundary": changed(uni={"count": 22}),
    "uni count shrinks": changed(uni={"count": 5}),
    "uni count drops whole shards": changed(uni={"count": 18}),
    "ramp count grows inside the last shard": changed(ramp={"count": 8}),
    "ramp seed": changed(ramp={"seed": 99}),
    "uni shape": changed(uni={"shape": [16, 17]}),
    "ramp shape": changed(ramp={"shape": [32, 32, 4]}),
    "new dataset": changed(extra=EXTRA),
}


@pytest.mark.parametrize("edit", sorted(CONFIG_EDITS))
def test_config_edit_replans_exactly_the_affected_jobs(tiny_run, tmp_path, edit):
    workdir, _ = tiny_run
    config = CONFIG_EDITS[edit]
    plan = without_report(dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", config)))
    expected = expected_replan(TINY_CONFIG, config)
    assert expected, "the edit should change something"
    assert plan == {output: rule_of(output) for output in expected}
    # Only the edited dataset's jobs; the other datasets are left alone.
    edited = {name for name in config["datasets"] if config["datasets"][name] != TINY_CONFIG["datasets"].get(name)}
    assert {output.split("/")[2] for output in plan} == edited
    # Every edit here changes which images a dataset holds: its index and stack are redone.
    assert {"dataset_index", "dataset_stack"} <= set(plan.values())


def dataset_output(name: str, leaf: str) -> str:
    return f"results/datasets/{name}/{leaf}"


def redone_shards(before: dict, after: dict, name: str) -> list[str]:
    """Shards of ``after`` that hold other images than in ``before`` (or are new)."""
    size = TINY_CONFIG["shard_size"]
    old = shard_bounds(before["datasets"][name]["count"], size)
    new = shard_bounds(after["datasets"][name]["count"], size)
    return [dataset_output(name, f"shard-{shard}") for shard, bounds in new.items() if old.get(shard) != bounds]


def montage_shards(config: dict, name: str) -> list[str]:
    """The shards holding the images a montage of ``config`` shows."""
    size = config["shard_size"]
    shown = min(config["montage"]["count"], config["datasets"][name]["count"])
    return [dataset_output(name, f"shard-{k:04d}") for k in range(math.ceil(shown / size))]


def test_count_growth_leaves_full_shards_and_unaffected_montage_alone(tiny_run, tmp_path):
    workdir, _ = tiny_run
    config = CONFIG_EDITS["uni count grows past a shard boundary"]
    plan = without_report(dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", config)))
    # Only the short last shard and the new ones change; the full shards, and
    # with them the montage of the first images, stay as they are.
    redone = redone_shards(TINY_CONFIG, config, "uni")
    kept = [output for output in dataset_jobs(TINY_CONFIG, "uni") if "/shard-" in output and output not in redone]
    assert kept and not set(montage_shards(config, "uni")) & set(redone)
    assert sorted(plan) == sorted(redone + [dataset_output("uni", "manifest.tsv"), dataset_output("uni", "stack.npy")])


def test_count_shrink_replans_the_montage_of_changed_first_images(tiny_run, tmp_path):
    workdir, _ = tiny_run
    config = CONFIG_EDITS["uni count shrinks"]
    plan = without_report(dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", config)))
    # The last remaining shard now ends earlier, and the montage shows some of its images.
    redone = redone_shards(TINY_CONFIG, config, "uni")
    assert set(montage_shards(config, "uni")) & set(redone)
    assert sorted(plan) == sorted(
        redone + [dataset_output("uni", leaf) for leaf in ("manifest.tsv", "montage.png", "stack.npy")]
    )


def test_count_shrink_by_whole_shards_redoes_no_shard(tiny_run, tmp_path):
    workdir, _ = tiny_run
    config = CONFIG_EDITS["uni count drops whole shards"]
    plan = without_report(dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", config)))
    # The remaining shards are unchanged; only the index and stack of the smaller set are redone.
    assert redone_shards(TINY_CONFIG, config, "uni") == []
    assert plan == {
        output: rule_of(output)
        for output in (dataset_output("uni", "manifest.tsv"), dataset_output("uni", "stack.npy"))
    }


def test_seed_edit_replans_every_job_of_that_dataset_only(tiny_run, tmp_path):
    workdir, _ = tiny_run
    plan = without_report(dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", CONFIG_EDITS["ramp seed"])))
    every_ramp_job = {output: rule_of(output) for output in dataset_jobs(TINY_CONFIG, "ramp")}
    assert set(every_ramp_job.values()) == {"dataset_shard", "dataset_index", "dataset_stack", "dataset_montage"}
    assert plan == every_ramp_job


def test_montage_settings_replan_montages_only(tiny_run, tmp_path):
    workdir, _ = tiny_run
    config = copy.deepcopy(TINY_CONFIG)
    config["montage"]["cell"] = 9
    plan = without_report(dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", config)))
    assert plan == {f"results/datasets/{name}/montage.png": "dataset_montage" for name in TINY_CONFIG["datasets"]}


def test_max_threads_changes_no_output_and_replans_nothing(tiny_run, tmp_path):
    workdir, _ = tiny_run
    config = copy.deepcopy(TINY_CONFIG)
    config["max_threads"] = 1
    assert dry_run_plan(workdir, write_config(tmp_path / "edited.yaml", config)) == {}


# The dry run against reality ------------------------------------------------------


def output_files(workdir, output: str) -> list[Path]:
    path = Path(workdir) / output
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def test_a_real_run_executes_exactly_the_planned_jobs(tiny_run, tmp_path):
    # A copy (times and Snakemake's metadata included) of the shared complete run.
    workdir = tmp_path / "work"
    shutil.copytree(tiny_run[0], workdir, symlinks=True)
    assert dry_run_plan(workdir, workdir / "config.yaml") == {}
    edited = write_config(tmp_path / "edited.yaml", CONFIG_EDITS["uni count grows past a shard boundary"])
    plan = dry_run_plan(workdir, edited)
    assert without_report(plan)
    before = {}
    for output in planned_jobs(run_ok(workdir, edited, "-F", "-n")):
        if output not in plan:
            before.update(
                {path: (path.stat().st_mtime_ns, path.read_bytes()) for path in output_files(workdir, output)}
            )
    assert before

    executed = planned_jobs(run_ok(workdir, edited))
    assert executed == plan
    for path, (mtime, data) in before.items():
        assert path.stat().st_mtime_ns == mtime, f"{path} was rewritten"
        assert path.read_bytes() == data
    assert "Nothing to be done" in run_ok(workdir, edited, "-n")

    # The incremental result equals a fresh run of the edited config.
    fresh = tmp_path / "fresh"
    run_ok(fresh, edited)
    assert dataset_hashes(workdir) == dataset_hashes(fresh)


SHRINK_EDITS = sorted(
    edit
    for edit, config in CONFIG_EDITS.items()
    if any(
        spec["count"] < TINY_CONFIG["datasets"].get(name, spec)["count"] for name, spec in config["datasets"].items()
    )
)


@pytest.mark.parametrize("edit", SHRINK_EDITS)
def test_after_shrinking_a_dataset_its_folder_holds_only_the_current_shards(tiny_run, tmp_path, edit):
    """A rerun with a smaller count must leave the dataset as a fresh run would write it.

    Otherwise the folder keeps shard folders (with manifests) of images that
    are no longer part of the dataset, and anyone reading the dataset's
    manifests sees the old images next to the new ones.
    """
    workdir = tmp_path / "work"
    shutil.copytree(tiny_run[0], workdir, symlinks=True)
    config = CONFIG_EDITS[edit]
    (name,) = [n for n, spec in config["datasets"].items() if spec["count"] < TINY_CONFIG["datasets"][n]["count"]]
    count = config["datasets"][name]["count"]
    dataset = workdir / "results" / "datasets" / name
    expected_shards = [f"shard-{shard}" for shard in shard_bounds(count, config["shard_size"])]
    stale = sorted(path.name for path in dataset.glob("shard-*") if path.name not in expected_shards)
    assert stale
    # The leftover of an interrupted write of a shard the plan no longer has.
    leftover = dataset / f".{stale[-1]}.partial-1234abcd"
    leftover.mkdir()
    (leftover / "half_written.png").write_bytes(b"\x89PNG")

    edited = write_config(tmp_path / "edited.yaml", config)
    run_ok(workdir, edited)
    assert sorted(path.name for path in dataset.glob("shard-*")) == expected_shards
    assert partial_entries(workdir) == []
    indexes = sorted(int(row["index"]) for row in read_manifests(dataset))
    assert indexes == list(range(count))
    assert [int(row["index"]) for row in read_dataset_index(dataset)[1]] == list(range(count))
    assert dry_run_plan(workdir, edited) == {}

    # The same folder content as a fresh run of the smaller config.
    fresh = tmp_path / "fresh"
    run_ok(fresh, edited)
    assert sorted(path.name for path in dataset.iterdir()) == sorted(
        path.name for path in (fresh / "results" / "datasets" / name).iterdir()
    )
    assert dataset_hashes(workdir) == dataset_hashes(fresh)


# Code edits on a copy of the workflow ---------------------------------------------


def rule_scripts(workflow: Path) -> dict[str, str]:
    """{rule: script file name} of the dataset rules and the report's table, read from the copy's rules.

    CODE_CONFIG asks for datasets only, so these are the rules its runs use
    (``use rule`` variants, such as the zarr shards of colour images, aside).
    """
    scripts = {}
    text = "".join((workflow / "rules" / name).read_text(encoding="utf-8") for name in ("datasets.smk", "report.smk"))
    for block in re.split(r"^rule ", text, flags=re.M)[1:]:
        name = block.split(":", 1)[0].strip()
        script = re.search(r"^\s+script:\s*\n\s+\"([^\"]+)\"", block, flags=re.M)
        if script:
            scripts[name] = Path(script.group(1)).name
    return scripts


def importing_rules(workflow: Path, module: str) -> set[str]:
    """Rules whose script imports ``pixelflow.<module>``, directly or through other modules.

    Found with the standard library's modulefinder, independent of the
    workflow's own import scanner.
    """
    rules = set()
    for rule, script in rule_scripts(workflow).items():
        finder = ModuleFinder(path=[str(workflow / "scripts")])
        finder.run_script(str(workflow / "scripts" / script))
        if f"pixelflow.{module}" in finder.modules:
            rules.add(rule)
    return rules


CODE_CONFIG = {
    "seed": 3,
    "shard_size": 2,
    "max_threads": 2,
    "montage": {"count": 2, "cell": 8},
    "datasets": {
        "gen": {"generator": "uniform", "count": 3, "shape": [8, 8], "dtype": "uint8", "format": "png"},
        "ext": {"path": "inputs/*.png"},
        "arr": {"generator": "uniform", "count": 3, "shape": [8, 8], "storage": "zarr", "stack": True},
    },
}
ZARR_RULES = {"dataset_zarr_shard", "dataset_zarr_index", "dataset_zarr_stack", "dataset_zarr_montage"}


@pytest.fixture(scope="module")
def workflow_copy(tmp_path_factory):
    """A complete run of CODE_CONFIG from a copy of the workflow, run inside the copy."""
    workflow = copy_workflow(tmp_path_factory.mktemp("code") / "pixelflow")
    rng = np.random.default_rng(0)
    (workflow / "inputs").mkdir()
    for index in range(3):
        cv2.imwrite(str(workflow / "inputs" / f"photo_{index}.png"), rng.integers(0, 256, (6, 7, 3), dtype=np.uint8))
    config = write_config(workflow / "run.yaml", CODE_CONFIG)
    run_ok(workflow, config, snakefile=workflow / "Snakefile")
    forced = run_ok(workflow, config, "-F", "-n", snakefile=workflow / "Snakefile")
    return workflow, config, planned_jobs(forced), job_inputs(forced)


@contextlib.contextmanager
def appended_comment(path: Path):
    """Append a comment line to ``path``; afterwards restore its bytes and times."""
    original = path.read_bytes()
    status = path.stat()
    path.write_bytes(original + b"\n# edited by a workflow test\n")
    try:
        yield
    finally:
        path.write_bytes(original)
        os.utime(path, ns=(status.st_atime_ns, status.st_mtime_ns))


def downstream(outputs: set[str], inputs: dict[str, list[str]]) -> set[str]:
    """``outputs`` and every job that consumes one of them, directly or through others."""
    closure = set(outputs)
    grew = True
    while grew:
        grew = False
        for output, needs in inputs.items():
            if output not in closure and closure & set(needs):
                closure.add(output)
                grew = True
    return closure


def test_the_copy_is_complete(workflow_copy):
    workflow, config, every_job, _ = workflow_copy
    assert dry_run_plan(workflow, config, snakefile=workflow / "Snakefile") == {}
    assert {output.split("/")[2] for output in without_report(every_job)} == {"gen", "ext", "arr"}
    assert set(every_job.values()) == set(rule_scripts(workflow))


def test_scripts_import_the_modules_the_design_says(workflow_copy):
    workflow, _, _, _ = workflow_copy
    rules = set(rule_scripts(workflow)) - {"report_job_benchmarks"}
    assert rules == {"dataset_shard", "dataset_index", "dataset_stack", "dataset_montage"} | ZARR_RULES
    assert importing_rules(workflow, "datasets.montage") == {"dataset_montage", "dataset_zarr_montage"}
    assert importing_rules(workflow, "datasets.stack") == {"dataset_stack", "dataset_zarr_stack"}
    # Only shards make images; everything else reads manifests (or the Zarr array).
    assert importing_rules(workflow, "datasets.generators") == {"dataset_shard", "dataset_zarr_shard"}
    assert importing_rules(workflow, "datasets.shards") == {"dataset_shard"}
    assert importing_rules(workflow, "datasets.zarrshards") == {"dataset_zarr_shard"}
    assert importing_rules(workflow, "datasets.zarrarray") == {"dataset_zarr_shard", "dataset_zarr_index"}
    assert importing_rules(workflow, "io.manifest") == rules
    # Zarr is read and written by the zarr dataset's rules, and read by the shared reader of dataset
    # images (the montage takes its sources from manifests); the index and stack of files do not use it.
    assert importing_rules(workflow, "io.zarrstore") == ZARR_RULES | {"dataset_montage"}
    assert importing_rules(workflow, "io.sources") == {"dataset_montage", "dataset_zarr_montage"}


@pytest.mark.parametrize(
    "module",
    [
        "datasets.montage",
        "datasets.stack",
        "io.manifest",
        "datasets.shards",
        "datasets.generators",
        "io.images",
        "io.zarrstore",
        "datasets.zarrshards",
    ],
)
def test_core_module_edit_replans_exactly_the_rules_importing_it(workflow_copy, module):
    workflow, config, every_job, inputs = workflow_copy
    snakefile = workflow / "Snakefile"
    rules = importing_rules(workflow, module)
    assert rules, f"no rule imports pixelflow.{module}"
    # The jobs of those rules, and the jobs downstream of them (a redone shard
    # is newer than the index, stack and montage made from it).
    expected = downstream({output for output, rule in every_job.items() if rule in rules}, inputs)
    expected = {output: every_job[output] for output in expected}
    assert expected.pop(REPORT_TABLE) == "report_job_benchmarks"  # the table of the jobs' benchmarks follows them

    with appended_comment(workflow / "scripts" / "pixelflow" / f"{module.replace('.', '/')}.py"):
        plan = without_report(dry_run_plan(workflow, config, snakefile=snakefile))
    assert plan == expected
    if module == "datasets.montage":
        assert set(plan.values()) == {"dataset_montage", "dataset_zarr_montage"}
        assert sorted(plan) == [f"results/datasets/{name}/montage.png" for name in ("arr", "ext", "gen")]
    if module == "datasets.stack":
        assert sorted(plan) == [f"results/datasets/{name}/stack.npy" for name in ("arr", "ext", "gen")]
    if module == "io.zarrstore":  # the zarr dataset's jobs, and the montages (they read sources of any dataset)
        assert {output for output in plan if output.split("/")[2] != "arr"} == {
            f"results/datasets/{name}/montage.png" for name in ("ext", "gen")
        }
        assert set(plan.values()) == ZARR_RULES | {"dataset_montage"}
    if module == "datasets.generators":
        # External shards too: their script imports datasets, which imports generators.
        shards = {output for output, rule in every_job.items() if rule == "dataset_shard"}
        assert {output.split("/")[2] for output in shards} == {"gen", "ext"}
        assert shards <= set(plan)
    # Restoring the file (bytes and time) leaves nothing to do.
    assert dry_run_plan(workflow, config, snakefile=snakefile) == {}
