"""sha256 digests of a run's results, for comparing two runs of the same config.

Logs, the jobs' benchmark records and the report's job table measure the run,
not the data, so they are left out; so are the seconds a mosaic's JSON report
records for each phase, and hidden partial outputs of killed jobs (which never
look finished).
"""

import hashlib
import json
from pathlib import Path

RUN_RECORDS = ("logs", "benchmarks", "report")


def result_hashes(workdir) -> dict[str, str]:
    """{path under results/: sha256} of every finished-looking result file of a run."""
    results = Path(workdir) / "results"
    hashes = {}
    for path in sorted(results.rglob("*")):
        relative = path.relative_to(results)
        hidden = any(part.startswith(".") for part in relative.parts)
        if not path.is_file() or hidden or relative.parts[0] in RUN_RECORDS:
            continue
        data = path.read_bytes()
        if relative.parts[0] == "mosaics" and path.suffix == ".json":
            report = json.loads(data)
            report.pop("seconds", None)
            data = json.dumps(report, sort_keys=True).encode()
        hashes[str(relative)] = hashlib.sha256(data).hexdigest()
    return hashes
