"""The report's own output: one table of every job's benchmark record (standard library only).

``snakemake --report`` gathers every output the rules mark with ``report()``;
besides those the workflow makes this table whenever the run has other outputs.
"""

JOB_BENCHMARKS = "results/report/job-benchmarks.html"
BENCHMARK_FOLDER = "results/benchmarks"


def outputs(others: list[str]) -> list[str]:
    """The job-benchmark table, when the stages have outputs (``others``) whose jobs it measures."""
    return [JOB_BENCHMARKS] if others else []
