"""A disk that fills during a shard job: the job fails, says so, and leaves no half-written shard.

Each test runs the real workflow with its ``results`` folder on a small tmpfs,
mounted in a private user and mount namespace (``unshare --user
--map-root-user --mount``), so it needs no privileges where the kernel lets
users make namespaces, and is skipped, saying why, where it does not. A
holder process keeps the namespace, and so the small file system, alive
between runs; each ``snakemake`` enters it with ``nsenter``, and the test
reads and writes the file system through ``/proc/<holder>/root``.

The story, for ``storage: files`` and ``storage: zarr``:

1. a first run of two shards completes on the small disk;
2. a filler file leaves free about one and a half shards (plus room for
   logs), and the count grows by two shards: with ``--cores 1`` the first new
   shard completes and the second fills the disk half-way through;
3. the filler is deleted (space freed) and a rerun completes, byte for byte
   as a run on a big disk that never failed.
"""

import copy
import hashlib
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RUN_TIMEOUT, partial_entries, run_ok, snapshot_snakefile, write_config
from result_digests import result_hashes

pytestmark = pytest.mark.slow

SHARD_SIZE = 100
DISK_BYTES = 4 << 20  # the small file system; its free space is set by a filler file
PAGE = 4096  # tmpfs allocates whole pages
LOG_ROOM = 16 * PAGE  # logs, benchmark records and manifests of the failing run's jobs

CONFIGS = {
    # PNG of 32 x 32 noise: about 1.1 kB, one page each; a shard folder is about 100 pages.
    "files": {"generator": "uniform", "shape": [32, 32], "format": "png"},
    # One 4096-byte chunk per image: a shard file is 100 chunks and its index, about 101 pages.
    "zarr": {"generator": "uniform", "shape": [64, 64], "storage": "zarr", "compression": "none"},
}
RULES = {"files": "dataset_shard", "zarr": "dataset_zarr_shard"}


def disk_config(storage: str, shards: int) -> dict:
    """One dataset, ``noise``, of ``shards`` full shards in ``storage``."""
    return {
        "seed": 11,
        "shard_size": SHARD_SIZE,
        "max_threads": 2,
        "montage": {"count": 4, "cell": 8},
        "datasets": {"noise": {**copy.deepcopy(CONFIGS[storage]), "count": shards * SHARD_SIZE}},
    }


class SmallDisk:
    """A tmpfs of ``size`` bytes over ``<workdir>/results``, in a private user and mount namespace.

    The namespace lives as long as a holder process (``unshare`` running
    ``cat`` on a pipe), so files stay between runs; :meth:`close` ends it and
    the file system with it.
    """

    def __init__(self, workdir: Path, size: int):
        self.workdir = Path(workdir).resolve()
        (self.workdir / "results").mkdir(parents=True, exist_ok=True)
        for tool in ("unshare", "nsenter"):
            if shutil.which(tool) is None:
                pytest.skip(f"needs util-linux's {tool} to make a small file system in a private namespace")
        mount = 'mount -t tmpfs -o "size=$1" pixelflow-small-disk "$0" && echo mounted && exec cat'
        self.holder = subprocess.Popen(
            ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", mount, self.workdir / "results", str(size)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if self.holder.stdout.readline().strip() != "mounted":
            self.holder.wait(timeout=30)
            reason = self.holder.stderr.read().strip()
            pytest.skip(f"cannot mount a small tmpfs in a private user and mount namespace here: {reason}")
        # The workdir as processes in the namespace see it, the small disk mounted on its results folder.
        self.view = Path(f"/proc/{self.holder.pid}/root{self.workdir}")
        self.filler = self.view / "results" / "filler"
        try:
            self.free()
        except PermissionError as error:  # /proc/<pid>/root needs ptrace access (Yama may refuse it)
            self.close()
            pytest.skip(f"cannot look into the namespace's file system through /proc: {error}")

    def free(self) -> int:
        """Bytes free on the small disk."""
        stats = os.statvfs(self.view / "results")
        return stats.f_bavail * stats.f_frsize

    def fill(self, leave: int) -> None:
        """Write a filler file so that about ``leave`` bytes (rounded to pages) stay free."""
        size = self.free() - leave
        assert size > 0, f"cannot leave {leave} bytes free: only {self.free()} are"
        self.filler.write_bytes(b"\0" * (size // PAGE * PAGE))

    def free_space(self) -> None:
        """Delete the filler file."""
        self.filler.unlink()

    def run(self, config: dict, *args, cores: int = 2) -> tuple[int, str]:
        """Run snakemake in the workdir inside the namespace, as conftest's run_snakemake does."""
        configfile = write_config(self.workdir / "config.yaml", config)
        command = [
            "nsenter",
            f"--target={self.holder.pid}",
            "--user",
            "--mount",
            "--preserve-credentials",  # the namespace's root is the caller; setgroups is denied there
            "sh",
            "-c",
            'cd "$0" && exec "$@"',  # a path looked up after entering, so that it crosses the small disk's mount
            str(self.workdir),
            sys.executable,
            "-m",
            "snakemake",
            "-s",
            str(snapshot_snakefile()),
            "--configfile",
            str(configfile),
            "--cores",
            str(cores),
            *args,
        ]
        env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
        completed = subprocess.run(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=RUN_TIMEOUT
        )
        return completed.returncode, completed.stdout

    def run_ok(self, config: dict, *args, cores: int = 2) -> str:
        returncode, output = self.run(config, *args, cores=cores)
        assert returncode == 0, f"snakemake exited {returncode}:\n{output[-6000:]}"
        return output

    def close(self) -> None:
        self.holder.stdin.close()
        self.holder.wait(timeout=30)
        self.holder.stdout.close()
        self.holder.stderr.close()


@pytest.fixture
def small_disk(tmp_path):
    disk = SmallDisk(tmp_path / "work", DISK_BYTES)
    yield disk
    disk.close()


def allocated(path: Path) -> int:
    """Bytes the files under ``path`` (or the file itself) occupy on their file system."""
    paths = [path] if path.is_file() else [entry for entry in path.rglob("*") if entry.is_file()]
    return sum(entry.stat().st_blocks * 512 for entry in paths)


def file_stamps(root: Path) -> dict[str, tuple[str, int, int]]:
    """{path under root: (sha256, inode, mtime)} of every file under ``root``."""
    return {
        path.relative_to(root).as_posix(): (
            hashlib.sha256(path.read_bytes()).hexdigest(),
            path.stat().st_ino,
            path.stat().st_mtime_ns,
        )
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def shard_folder(storage: str, shard: int) -> str:
    """The shard's folder under results/datasets/noise: the images and manifest (files), the manifest (zarr)."""
    return f"shard-{shard:04d}" if storage == "files" else f"shard-{shard}"


def shard_outputs(storage: str, shard: int) -> list[str]:
    """The outputs of shard job ``shard``, under results/datasets/noise; the first is the one its log names."""
    if storage == "files":
        return [shard_folder(storage, shard)]
    return [f"images.zarr/c/{shard}/0/0", f"{shard_folder(storage, shard)}/manifest.tsv"]


def belongs(path: str, outputs: list[str]) -> bool:
    """Whether ``path`` is one of ``outputs`` or inside one of them."""
    return any(path == output or path.startswith(f"{output}/") for output in outputs)


def test_the_small_disk_is_a_separate_file_system_seen_only_inside_the_namespace(small_disk):
    """The runs below would prove nothing if their results went to the big disk."""
    assert os.statvfs(small_disk.view / "results").f_blocks * PAGE == DISK_BYTES
    assert os.stat(small_disk.view / "results").st_dev != os.stat(small_disk.workdir / "results").st_dev
    small_disk.fill(leave=8 * PAGE)
    assert 7 * PAGE <= small_disk.free() <= 8 * PAGE
    assert not (small_disk.workdir / "results" / "filler").exists()  # outside the namespace: the empty mount point
    small_disk.free_space()
    assert small_disk.free() == DISK_BYTES


@pytest.mark.parametrize("storage", ["files", "zarr"])
def test_a_disk_filling_during_a_shard_fails_it_cleanly_and_a_rerun_completes(small_disk, tmp_path, storage):
    reference = tmp_path / "reference"  # a big disk and a run that never failed
    run_ok(reference, disk_config(storage, 4))
    expected = result_hashes(reference)

    # 1. Two shards on the small disk, with room to spare.
    small_disk.run_ok(disk_config(storage, 2))
    dataset = small_disk.view / "results" / "datasets" / "noise"
    before = file_stamps(dataset)
    shard_bytes = allocated(dataset / shard_outputs(storage, 0)[0])
    assert shard_bytes > 90 * PAGE

    # 2. Room for one and a half more shards; the two new shard jobs run one after the other.
    small_disk.fill(leave=shard_bytes * 3 // 2 + LOG_ROOM)
    returncode, output = small_disk.run(disk_config(storage, 4), cores=1)
    assert returncode != 0, output[-6000:]
    written = [shard for shard in (2, 3) if all((dataset / path).exists() for path in shard_outputs(storage, shard))]
    assert len(written) == 1, f"one new shard should have completed before the disk filled: {written}\n{output[-6000:]}"
    (failed,) = {2, 3} - set(written)
    failed_output = f"results/datasets/noise/{shard_outputs(storage, failed)[0]}"

    # The error names the rule, the shard and the full disk, once.
    error_block = rf"Error in rule {RULES[storage]}:\n(?:    .*\n)*?    output: {re.escape(failed_output)}\b"
    assert re.search(error_block, output), output[-6000:]
    failure = re.search(rf"ERROR shard {re.escape(failed_output)} failed: (.*)", output)  # the job's log, shown
    assert failure, output[-6000:]
    assert "[Errno 28] No space left on device" in failure.group(1), failure.group(0)
    assert "During handling of the above exception, another exception occurred" not in output, output[-6000:]
    if storage == "files":  # the runner names the image it was writing, far into the shard, and its file
        image = int(re.fullmatch(r"WorkerError: image (\d+) failed: .*", failure.group(1)).group(1))
        assert failed * SHARD_SIZE + SHARD_SIZE // 4 < image < (failed + 1) * SHARD_SIZE, failure.group(0)
        assert f"No space left on device: 'noise_{image:06d}.png'" in failure.group(1), failure.group(0)
    else:  # the shard file whose write the file system refused
        assert failure.group(1).endswith(f"No space left on device: '{failed_output}'"), failure.group(0)

    # Nothing of the failed shard remains: no shard folder, shard file or manifest, no temporary entry.
    for path in [*shard_outputs(storage, failed), shard_folder(storage, failed)]:
        assert not (dataset / path).exists(), path
    if storage == "zarr":
        assert not (dataset / "images.zarr" / "c" / str(failed)).exists()  # not even the shard's empty folders
    assert partial_entries(small_disk.view) == []

    # The disk filled mid-shard: a tmpfs refuses a write only when full, and with the failed job's partial
    # output gone again, what is free now is what it had: a good part of a shard, not all of it.
    assert shard_bytes // 4 < small_disk.free() < shard_bytes, (small_disk.free(), shard_bytes)

    # The earlier outputs are untouched (same bytes, same files); the shard that fitted is complete.
    after = file_stamps(dataset)
    for path, stamp in before.items():
        assert after.get(path) == stamp, f"{path} changed"
    new = sorted(set(after) - set(before))
    assert new and all(belongs(path, shard_outputs(storage, written[0])) for path in new), new
    for path in new:
        if Path(path).name != ".snakemake_timestamp":  # Snakemake's marker in a directory output
            assert after[path][0] == expected[f"datasets/noise/{path}"], f"{path} looks finished but differs"

    # 3. Space freed: the rerun completes, with the bytes of the run that never failed.
    small_disk.free_space()
    small_disk.run_ok(disk_config(storage, 4))
    assert result_hashes(small_disk.view) == expected
    assert partial_entries(small_disk.view) == []
    final = file_stamps(dataset)
    for path, stamp in after.items():  # the finished shards were kept, not written again
        if belongs(path, [*shard_outputs(storage, 0), *shard_outputs(storage, 1), *shard_outputs(storage, written[0])]):
            assert final[path] == stamp, f"{path} was written again"
    assert "Nothing to be done" in small_disk.run_ok(disk_config(storage, 4), "-n")
