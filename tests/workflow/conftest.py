"""Helpers for workflow tests: real `snakemake` runs on tiny configs in temporary folders.

Nothing here mocks Snakemake: every helper starts the `snakemake` of the
interpreter running pytest in a subprocess and looks at the files it wrote.
"""

import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
RUN_TIMEOUT = 240  # seconds; a tiny run takes a few, a hung one fails the test
WORKFLOW_PARTS = ("Snakefile", "rules", "scripts", "config", "profiles", "envs", "resources")

# The runs use a snapshot of the repository's workflow taken when the session
# starts (see the `workflow_snapshot` fixture): the rerun tests compare file
# times, so an edit of the working tree while the tests run (an editor saving,
# a formatter) must not turn into "everything is out of date".
_SNAPSHOT: dict[str, Path] = {}


def snapshot_snakefile() -> Path:
    """The Snakefile of this session's snapshot of the workflow."""
    if "root" not in _SNAPSHOT:
        raise RuntimeError("the workflow_snapshot fixture has not run")
    return _SNAPSHOT["root"] / "Snakefile"


# The shared tiny config: a grey uint8 PNG set and an RGB float32 TIFF set, in
# shards of 3 so that both datasets have several shards and a short last one.
TINY_CONFIG = {
    "seed": 7,
    "shard_size": 3,
    "max_threads": 2,
    "montage": {"count": 4, "cell": 8},
    "datasets": {
        "uni": {"generator": "uniform", "count": 20, "shape": [16, 16], "dtype": "uint8", "format": "png"},
        "ramp": {"generator": "gaussian_ramp", "count": 7, "shape": [32, 32, 3], "dtype": "float32", "format": "tiff"},
    },
}


def tiny_config(**top_level) -> dict:
    """A deep copy of TINY_CONFIG with top-level keys replaced."""
    config = copy.deepcopy(TINY_CONFIG)
    config.update(copy.deepcopy(top_level))
    return config


def write_config(path, config: dict) -> Path:
    """Write ``config`` as YAML to ``path`` and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def run_snakemake(workdir, config, *args, cores: int = 2, snakefile=None) -> tuple[int, str]:
    """Run snakemake in ``workdir``; return (returncode, stdout + stderr).

    ``config`` is a dict (written to ``<workdir>/config.yaml``) or the path of
    a YAML file. ``args`` are extra command line arguments, e.g. ``"-n"``.
    ``snakefile`` defaults to the session's snapshot of the repository's.
    """
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    configfile = write_config(workdir / "config.yaml", config) if isinstance(config, dict) else Path(config)
    command = [
        sys.executable,
        "-m",
        "snakemake",
        "-s",
        str(snakefile or snapshot_snakefile()),
        "--configfile",
        str(configfile),
        "--cores",
        str(cores),
        *args,
    ]
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    completed = subprocess.run(
        command,
        cwd=workdir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=RUN_TIMEOUT,
    )
    return completed.returncode, completed.stdout


def run_ok(workdir, config, *args, cores: int = 2, snakefile=None) -> str:
    """Run snakemake and fail the test (showing its output) unless it exits 0."""
    returncode, output = run_snakemake(workdir, config, *args, cores=cores, snakefile=snakefile)
    assert returncode == 0, f"snakemake exited {returncode}:\n{output[-6000:]}"
    return output


def sha256_file(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def dataset_hashes(workdir) -> dict[str, str]:
    """{path relative to results/datasets: sha256} of every file there.

    results/logs and results/benchmarks are outside that folder; Snakemake's
    ``.snakemake_timestamp`` markers are skipped.
    """
    root = Path(workdir) / "results" / "datasets"
    return {
        path.relative_to(root).as_posix(): sha256_file(path)
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.name != ".snakemake_timestamp"
    }


def partial_entries(workdir) -> list[str]:
    """Every leftover temporary ``.partial-`` entry in the working folder (Snakemake's own folder aside)."""
    root = Path(workdir)
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if ".partial-" in path.name and ".snakemake" not in path.relative_to(root).parts
    )


_JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):\s*$")
_OUTPUT_LINE = re.compile(r"^\s+output: (.*)$")
_FIELD_LINE = re.compile(r"^\s+(\w+): (.*)$")
_STATS_HEADER = re.compile(r"^Job stats:\s*$")
_STATS_ROW = re.compile(r"^(\w+)\s+(\d+)\s*$")


def planned_jobs(output: str) -> dict[str, str]:
    """The jobs a snakemake run announced, as {first output path: rule name}.

    Each job is printed as a ``rule NAME:`` (or ``localrule NAME:``) line
    followed by indented fields, ``output:`` among them. The aggregate rule
    ``all`` has no output and is left out. The result is checked against the
    per-rule counts of the "Job stats" table that snakemake prints as well, so
    a change of output format fails loudly instead of silently planning nothing.
    """
    jobs: dict[str, str] = {}
    counts: dict[str, int] = {}
    rule = None
    for line in output.splitlines():
        header = _JOB_HEADER.match(line)
        if header:
            rule = header.group(1)
            counts[rule] = counts.get(rule, 0) + 1
            continue
        if rule is None:
            continue
        field = _OUTPUT_LINE.match(line)
        if field:
            first = field.group(1).split(", ")[0].strip()
            jobs[first] = rule
            rule = None
        elif not line.startswith((" ", "\t")):
            rule = None
    stats = job_stats(output)
    if "Nothing to be done" in output:
        assert not stats and not counts, output
    else:
        assert stats, f"no Job stats table in snakemake output:\n{output[-4000:]}"
        assert counts == stats, f"announced jobs {counts} differ from the Job stats table {stats}:\n{output[-4000:]}"
    for name, count in stats.items():
        if name != "all":
            found = sum(1 for job_rule in jobs.values() if job_rule == name)
            assert found == count, f"{found} {name} jobs with an output parsed, Job stats says {count}"
    return jobs


def job_fields(output: str) -> dict[str, dict[str, list[str]]]:
    """The fields snakemake printed for each announced job, as {first output: {field: values}}.

    ``input``, ``output``, ``log`` and ``benchmark`` hold comma-separated
    paths, so every field is split into a list. Jobs without an output (the
    aggregate rule ``all``) are left out; call planned_jobs on the same text
    to have the parse checked against the "Job stats" table.
    """
    jobs: dict[str, dict[str, list[str]]] = {}
    fields: dict[str, list[str]] | None = None
    for line in output.splitlines():
        if _JOB_HEADER.match(line):
            fields = {}
            continue
        if fields is None:
            continue
        field = _FIELD_LINE.match(line)
        if field:
            fields[field.group(1)] = [value.strip() for value in field.group(2).split(", ")]
            if field.group(1) == "output":
                jobs[fields["output"][0]] = fields
        else:
            fields = None
    return jobs


def job_inputs(output: str) -> dict[str, list[str]]:
    """{first output: input paths} of every job a snakemake run announced."""
    return {job: fields.get("input", []) for job, fields in job_fields(output).items()}


def job_stats(output: str) -> dict[str, int]:
    """Per-rule job counts of the first "Job stats" table in ``output`` (without the total)."""
    lines = output.splitlines()
    for number, line in enumerate(lines):
        if _STATS_HEADER.match(line):
            stats = {}
            for row in lines[number + 3 :]:
                match = _STATS_ROW.match(row)
                if not match:
                    break
                if match.group(1) != "total":
                    stats[match.group(1)] = int(match.group(2))
            return stats
    return {}


def dry_run_plan(workdir, config, *args, snakefile=None) -> dict[str, str]:
    """The jobs ``snakemake -n`` plans in ``workdir`` for ``config``."""
    output = run_ok(workdir, config, "-n", *args, snakefile=snakefile)
    return planned_jobs(output)


def read_manifests(dataset_dir) -> list[dict]:
    """Rows of every shard manifest of a dataset folder, with ``shard`` and ``path`` added, by index."""
    rows = []
    for shard in sorted(Path(dataset_dir).glob("shard-*")):
        with open(shard / "manifest.tsv", encoding="utf-8") as handle:
            lines = handle.read().splitlines()
        header = lines[0].split("\t")
        for line in lines[1:]:
            row = dict(zip(header, line.split("\t"), strict=True))
            row["shard"] = shard.name
            row["path"] = shard / row["file"]
            rows.append(row)
    return sorted(rows, key=lambda row: int(row["index"]))


def read_dataset_index(dataset_dir) -> tuple[list[str], list[dict]]:
    """The header and rows (in file order) of a dataset's own ``manifest.tsv``, with ``path`` added.

    ``path`` is the row's ``file`` joined to the dataset folder, the folder
    the design says the paths are relative to.
    """
    dataset_dir = Path(dataset_dir)
    lines = (dataset_dir / "manifest.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = []
    for line in lines[1:]:
        row = dict(zip(header, line.split("\t"), strict=True))
        row["path"] = dataset_dir / row["file"]
        rows.append(row)
    return header, rows


def image_hashes_by_index(workdir, dataset: str) -> dict[int, str]:
    """{index: sha256 of the image file} over the union of a dataset's manifests."""
    rows = read_manifests(Path(workdir) / "results" / "datasets" / dataset)
    return {int(row["index"]): sha256_file(row["path"]) for row in rows}


def decode_rgb(path) -> np.ndarray:
    """Decode an image file with OpenCV directly, channel-last RGB(A) or 2-D grey."""
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert image is not None, f"OpenCV cannot decode {path}"
    if image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def copy_workflow(destination, source=None) -> Path:
    """Copy a workflow (Snakefile, rules, scripts, config, profiles, envs) to ``destination``.

    ``source`` defaults to this session's snapshot of the repository.
    """
    source = Path(source) if source is not None else snapshot_snakefile().parent
    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    for part in WORKFLOW_PARTS:
        if (source / part).is_dir():
            shutil.copytree(source / part, destination / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        elif (source / part).is_file():
            shutil.copy2(source / part, destination / part)
    return destination


@pytest.fixture(scope="session", autouse=True)
def workflow_snapshot(tmp_path_factory):
    """Copy the repository's workflow once per session; every run uses the copy."""
    root = copy_workflow(tmp_path_factory.mktemp("snapshot") / "pixelflow", source=REPO)
    assert (root / "Snakefile").is_file()
    _SNAPSHOT["root"] = root
    yield root
    _SNAPSHOT.clear()


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    """A complete run of TINY_CONFIG with --cores 2; tests must only read it (dry runs are fine)."""
    workdir = tmp_path_factory.mktemp("tiny")
    output = run_ok(workdir, TINY_CONFIG, cores=2)
    return workdir, output


MANIFEST_COLUMNS = ["index", "file", "height", "width", "channels", "dtype", "sha256"]
# The report's table of every job's benchmark record: planned whenever any other job is.
REPORT_TABLE = "results/report/job-benchmarks.html"


def without_report(plan: dict[str, str]) -> dict[str, str]:
    """The stages' jobs of a plan, after checking that the report's table is planned exactly when one of them is.

    The table reads every job's benchmark record, so any job that runs makes it out of date.
    """
    others = {output: rule for output, rule in plan.items() if output != REPORT_TABLE}
    assert (REPORT_TABLE in plan) == bool(others), f"the report's table is planned wrongly: {plan}"
    assert plan.get(REPORT_TABLE, "report_job_benchmarks") == "report_job_benchmarks"
    return others


def plan_after_shard_change(dataset: str, shard: str, montage_shards) -> dict[str, str]:
    """The jobs one changed shard of ``dataset`` replans: itself, the index, the stack, maybe the montage."""
    expected = {
        f"results/datasets/{dataset}/{shard}": "dataset_shard",
        f"results/datasets/{dataset}/manifest.tsv": "dataset_index",
        f"results/datasets/{dataset}/stack.npy": "dataset_stack",
    }
    if shard in montage_shards:
        expected[f"results/datasets/{dataset}/montage.png"] = "dataset_montage"
    return expected
