"""Uncompressed PNGs through a hand-written codec (io/pngstore.py) or OpenCV's, end to end on a large dataset.

pixelflow once wrote and read uncompressed PNGs with its own code (io/pngstore.py); it was measured here
against OpenCV's encoder and decoder and removed, as it saved less than 10 % of the end-to-end time. Two
copies of the commit ``--rev`` (the last one with pngstore) run the same config, one after the other,
``--repeats`` times: a dataset of ``--count`` uniform 100x100 uint8 PNGs at compression 0, generated in
shards, indexed and stacked (``snakemake --cores 2``, the whole process timed). In the ``opencv`` copy,
``io/images.py`` is changed so that it never uses pngstore: every image is encoded by ``cv2.imencode``
(compression 0, filter none) and decoded by ``cv2.imdecode``. The runs' images are kept until the end, as
in the datasets harness (see common.Settler), and every run starts after the machine settled.

    python benchmarks/datasets_codec.py                       # 100,000 images, 5 repeats
    python benchmarks/datasets_codec.py --count 2000 --repeats 1 --settle 1   # smoke check
"""

import argparse
import compileall
import hashlib
import io
import os
import shutil
import tarfile
from pathlib import Path

from common import (
    SCRATCH,
    Settler,
    fmt_spread,
    git,
    log,
    machine,
    md_table,
    median_of,
    remove_tree,
    run_process,
    snakemake_command,
    write_config,
)
from datasets_harness import retire

STAGE_SCRATCH = SCRATCH / "datasets_codec"
LAST_WITH_PNGSTORE = "7d9a46a"
# The two places io/images.py uses pngstore, and what the opencv copy puts there instead.
WITHOUT_PNGSTORE = (
    ('    if fmt != "png" or compression != 0:\n        return encode\n', "    return encode\n"),
    ("    if shape is not None and dtype is not None:\n", "    if False:  # pngstore left out for the comparison\n"),
)


def extract(rev: str, target: Path) -> Path:
    """The workflow of commit ``rev`` in ``target`` (below benchmarks/scratch), its core byte-compiled."""
    remove_tree(target)
    target.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(git("archive", "--format=tar", rev).stdout)) as tar:
        tar.extractall(target, filter="data")
    compileall.compile_dir(target / "scripts", quiet=1)
    return target


def opencv_only(workflow: Path) -> None:
    """Change the copy's io/images.py so that it encodes and decodes every PNG with OpenCV."""
    path = workflow / "scripts" / "pixelflow" / "io" / "images.py"
    text = path.read_text(encoding="utf-8")
    for old, new in WITHOUT_PNGSTORE:
        if text.count(old) != 1:
            raise RuntimeError(f"{path}: cannot find {old!r} once; update WITHOUT_PNGSTORE")
        text = text.replace(old, new)
    path.write_text(text, encoding="utf-8")
    compileall.compile_file(str(path), quiet=1)


def digest(folder: Path) -> str:
    """sha256 of the stack, to check that both codecs give the same pixels."""
    return hashlib.sha256((folder / "results" / "datasets" / "noise" / "stack.npy").read_bytes()).hexdigest()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--settle", type=float, default=20.0, help="minimum seconds of settling before a run")
    parser.add_argument("--rev", default=LAST_WITH_PNGSTORE, help="a commit whose io/images.py uses pngstore")
    args = parser.parse_args()

    remove_tree(STAGE_SCRATCH)
    STAGE_SCRATCH.mkdir(parents=True)
    copies = {name: extract(args.rev, STAGE_SCRATCH / f"workflow-{name}") for name in ("pngstore", "opencv")}
    opencv_only(copies["opencv"])
    note = f"two copies of commit {args.rev}"
    config = {
        "seed": 2026,
        "shard_size": 50_000,
        "max_threads": 2,
        "montage": {"count": 0},
        "datasets": {"noise": {"generator": "uniform", "count": args.count, "shape": [100, 100], "format": "png"}},
    }
    settle = Settler(minimum=args.settle, maximum=max(args.settle, 180.0), io_quiet=3.0, cpu_quiet=25.0)
    settle.calibrate(STAGE_SCRATCH)
    walls, stacks = {name: [] for name in copies}, {}
    for repeat in range(args.repeats):
        for name, workflow in copies.items():
            folder = STAGE_SCRATCH / f"run-{name}-{repeat}"
            folder.mkdir()
            configfile = write_config(folder, config)
            settle(STAGE_SCRATCH)
            command = snakemake_command(
                "--cores", str(args.cores), "--configfile", str(configfile), snakefile=workflow / "Snakefile"
            )
            wall = run_process(command, folder, folder / "run.log")
            walls[name].append(wall)
            stacks.setdefault(name, digest(folder))
            log(f"repeat {repeat + 1}: {name} {wall:.2f} s")
            os.sync()
            retire(folder, STAGE_SCRATCH)
    if stacks["pngstore"] != stacks["opencv"]:
        raise SystemExit("the two codecs gave different stacks")
    ratios = [new / old for old, new in zip(walls["pngstore"], walls["opencv"], strict=True)]
    print(f"{args.count:,} uniform 100x100 uint8 PNGs, compression 0, generated + indexed + stacked, "
          f"--cores {args.cores}; {note}; {machine()}\n")  # fmt: skip
    print(
        md_table(
            ["codec of the uncompressed PNGs", "wall s, median [min–max]", "vs pngstore (paired median)"],
            [
                ["pngstore (io/pngstore.py)", fmt_spread(walls["pngstore"]), "1"],
                ["OpenCV imencode/imdecode", fmt_spread(walls["opencv"]), f"{median_of(ratios):.3f}"],
            ],
        )
    )
    shutil.rmtree(STAGE_SCRATCH, ignore_errors=True)


if __name__ == "__main__":
    main()
