"""The workflow on a real one-node SLURM cluster: the same bytes as a local run, with the small jobs
in the job groups of profiles/slurm.

The module's fixture installs and starts the cluster with slurm_cluster.py
(root and apt-get needed) and stops its daemons by PID afterwards; without
root or apt-get every test here is skipped and says why.
"""

import re
from pathlib import Path

import pytest
import slurm_cluster
from conftest import run_ok, run_snakemake, snapshot_snakefile, write_config
from result_digests import result_hashes

pytestmark = pytest.mark.slow

SLURM_CONFIG = {
    "seed": 5,
    "shard_size": 4,
    "max_threads": 2,
    "montage": {"count": 4, "cell": 8},
    "datasets": {
        "uni": {"generator": "uniform", "count": 10, "shape": [12, 12], "dtype": "uint8", "format": "png"},
        "ramp": {"generator": "gaussian_ramp", "count": 3, "shape": [16, 16], "dtype": "float32", "format": "tiff"},
        # A zarr dataset, read back by a pipeline's shard jobs on the nodes.
        "arr": {"generator": "uniform", "count": 6, "shape": [10, 10], "storage": "zarr", "compression": "zstd"},
    },
    "pipelines": {"edges": {"dataset": "arr", "steps": [{"op": "sobel"}], "metrics": ["mean"], "save": "png"}},
    "stats": {"datasets": ["uni", "ramp"], "sigmas": [1.5]},
    "projections": {"pole_shift": {"kind": "transverse_mercator", "width": 96}},
    "libraries": {"noise": {"dataset": "uni"}},
    # The mosaic's target is the reprojected map: maps, datasets and mosaics in one run.
    "mosaics": {"world": {"target": "results/maps/world/pole_shift.png", "library": "noise", "tile": 8}},
}


# What SLURM_CONFIG makes of the profile's job groups: one SLURM job per dataset (its manifest, contact sheet and
# stack), per statistics dataset (summary and plot) and per map (its reprojections); their rules never run alone.
GROUP_JOBS = {
    "dataset-arr": ["dataset_zarr_index", "dataset_zarr_montage"],
    "dataset-edges": ["dataset_index", "pipeline_contact", "pipeline_summary"],  # the pipeline's results
    "dataset-ramp": ["dataset_index", "dataset_montage", "dataset_stack"],
    "dataset-uni": ["dataset_index", "dataset_montage", "dataset_stack"],
    "map-world": ["map_reproject"],
    "stats-ramp": ["stats_plot", "stats_summary"],
    "stats-uni": ["stats_plot", "stats_summary"],
}
GROUPED_RULES = {rule for rules in GROUP_JOBS.values() for rule in rules}
# Jobs that run on the login node: no SLURM job.
LOCAL_RULES = {"all", "report_job_benchmarks"}


def slurm_jobs(output: str) -> list[str]:
    """Every SLURM job the run submitted, named by its log folder: ``rule_<rule>``, or for a group job
    ``group_<group>_<its rules in order, joined by _>``."""
    return re.findall(r"has been submitted with SLURM jobid \d+ \(log: \S*/slurm_logs/([^/]+)/", output)


def rule_jobs(output: str) -> list[str]:
    """The rule of every job that ran (a group's jobs each count), local ones included."""
    return re.findall(r"Finished jobid: \S+ \(Rule: (\w+)\)", output)


def slurm_config() -> dict:
    """SLURM_CONFIG with the bundled world map of this session's workflow snapshot."""
    world = snapshot_snakefile().parent / "resources" / "natural_earth_shaded_relief_720x360.png"
    return {**SLURM_CONFIG, "maps": {"world": {"path": str(world)}}}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running one-node cluster for this module's tests."""
    state = tmp_path_factory.mktemp("slurm-state")
    try:
        slurm_cluster.start(state)
    except slurm_cluster.ClusterUnavailable as error:
        pytest.skip(f"no SLURM test cluster on this machine: {error}")
    yield state
    slurm_cluster.stop(state)


def run_on_slurm(workdir, config):
    """Run the workflow with the repository's SLURM profile; return (returncode, output)."""
    profile = snapshot_snakefile().parent / "profiles" / "slurm"
    return run_snakemake(workdir, config, "--workflow-profile", str(profile), *slurm_cluster.SNAKEMAKE_ARGS)


def test_a_slurm_run_writes_the_same_bytes_as_a_local_run(cluster, tmp_path):
    local = tmp_path / "local"
    run_ok(local, slurm_config(), cores=2)
    returncode, output = run_on_slurm(tmp_path / "slurm", slurm_config())
    assert returncode == 0, output[-6000:]
    assert "SLURM" in output, "the run did not go through the SLURM executor"
    # The SLURM profile takes the place of the laptop's workflow profile, whose settings (latency-wait 5) would win.
    assert f"Using workflow specific profile {Path(snapshot_snakefile().parent, 'profiles', 'slurm')}" in output
    assert "profiles/default" not in output
    local_hashes = result_hashes(local)
    assert len(local_hashes) > 20
    for stage in ("datasets/arr/images.zarr", "datasets/edges/shard-0001", "maps", "mosaics", "stats"):
        assert any(path.startswith(stage + "/") for path in local_hashes), f"the run made no {stage} output"
    assert result_hashes(tmp_path / "slurm") == local_hashes
    # The small jobs ran in their groups, one SLURM job per group; every other job was one SLURM job.
    submitted = slurm_jobs(output)
    groups = sorted(name for name in submitted if name.startswith("group_"))
    assert groups == sorted(f"group_{group}_{'_'.join(rules)}" for group, rules in GROUP_JOBS.items()), submitted
    alone = {name.removeprefix("rule_") for name in submitted if name.startswith("rule_")}
    assert not alone & GROUPED_RULES, submitted
    remote = [rule for rule in rule_jobs(output) if rule not in LOCAL_RULES]
    grouped = [rule for rule in remote if rule in GROUPED_RULES]
    assert len(grouped) > len(GROUP_JOBS)
    assert len(submitted) == len(remote) - len(grouped) + len(GROUP_JOBS), submitted


def test_a_job_failing_on_slurm_is_reported_and_fails_the_run(cluster, tmp_path):
    workdir = tmp_path / "work"
    images = workdir / "inputs"
    images.mkdir(parents=True)
    (images / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40)
    config = write_config(workdir / "run.yaml", {"datasets": {"scans": {"path": "inputs/*.png"}}})
    returncode, output = run_on_slurm(workdir, config)
    assert returncode != 0, output[-4000:]
    assert "Error in rule dataset_shard" in output, output[-4000:]
    assert "broken.png" in output, output[-4000:]
    assert not (workdir / "results" / "datasets" / "scans" / "shard-0000").exists()
