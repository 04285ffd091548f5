# The report's own table; `snakemake --report` gathers it with every output marked report().


localrules:
    report_job_benchmarks,


# Runs last: it reads the benchmark records of every other job of the workflow.
rule report_job_benchmarks:
    input:
        outputs=lambda wildcards: stage_outputs(),
        code=core_modules("report_job_benchmarks.py"),
    output:
        report(
            report_plan.JOB_BENCHMARKS,
            caption="captions/report_job_benchmarks.rst",
            category="Benchmarks",
        ),
    log:
        "results/logs/report/job-benchmarks.log",
    benchmark:
        "results/benchmarks/report/job-benchmarks.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(512),
        runtime=per_attempt(5),
    params:
        folder=report_plan.BENCHMARK_FOLDER,
    script:
        "../scripts/report_job_benchmarks.py"
