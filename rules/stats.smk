# Rules of the stats stage; helper functions live in scripts/pixelflow/plan_stats.py.

plan_stats.check_config(config)


rule stats_shard:
    input:
        unpack(
            lambda wildcards: plan_stats.shard_inputs(
                dataset_plan(wildcards),
                wildcards.shard,
                core_modules("stats_shard.py"),
            )
        ),
    output:
        table="results/stats/{dataset}/shards/shard-{shard}.tsv",
        filtered=[
            directory(path)
            for path in plan_stats.filtered_dirs(config, "{dataset}", "{shard}")
        ],
    log:
        "results/logs/stats/{dataset}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/stats/{dataset}/shard-{shard}.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: job_threads("stats_shard")
    resources:
        mem_mb=lambda wildcards, attempt: plan_stats.shard_mem_mb(
            config, config["datasets"][wildcards.dataset], attempt
        ),
        runtime=lambda wildcards, attempt: plan_stats.shard_runtime(
            config,
            dataset_plan(wildcards).shard_size,
            config["datasets"][wildcards.dataset],
            attempt,
        ),
    params:
        source=lambda wildcards: plan_stats.shard_source(
            config, dataset_plan(wildcards), wildcards.shard
        ),
        settings=plan_stats.shard_settings(config),
    script:
        "../scripts/stats_shard.py"


localrules:
    report_job_benchmarks,


rule stats_summary:
    input:
        tables=lambda wildcards: [
            plan_stats.shard_table(wildcards.dataset, shard)
            for shard in dataset_plan(wildcards).shards
        ],
        filtered=lambda wildcards: [
            path
            for shard in dataset_plan(wildcards).shards
            for path in plan_stats.filtered_dirs(config, wildcards.dataset, shard)
        ],
        code=core_modules("stats_summary.py"),
    output:
        summary=report(
            "results/stats/{dataset}/summary.tsv",
            caption="captions/stats_summary.rst",
            category="Variance",
            subcategory="{dataset}",
        ),
        theory=report(
            "results/stats/{dataset}/theory.tsv",
            caption="captions/stats_theory.rst",
            category="Variance",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/stats/{dataset}/summary.log",
    benchmark:
        "results/benchmarks/stats/{dataset}/summary.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: attempt
        * (1024 + dataset_plan(wildcards).count // 1000),
        runtime=per_attempt(10),
    params:
        sigmas=plan_stats.sigmas(config),
        truncate=config["stats"]["truncate"],
    script:
        "../scripts/stats_summary.py"


rule stats_plot:
    input:
        tables=lambda wildcards: [
            plan_stats.shard_table(wildcards.dataset, shard)
            for shard in dataset_plan(wildcards).shards
        ],
        code=core_modules("stats_plot.py"),
    output:
        report(
            "results/stats/{dataset}/variance.png",
            caption="captions/stats_variance.rst",
            category="Variance",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/stats/{dataset}/plot.log",
    benchmark:
        "results/benchmarks/stats/{dataset}/plot.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: attempt
        * (1024 + dataset_plan(wildcards).count // 1000),
        runtime=per_attempt(10),
    params:
        sigmas=plan_stats.sigmas(config),
    script:
        "../scripts/stats_plot.py"


# Runs last: it reads the benchmark records of every other job of the workflow.
rule report_job_benchmarks:
    input:
        outputs=lambda wildcards: [
            path for path in all_outputs() if path != plan_stats.REPORT_TABLE
        ],
        code=core_modules("stats_job_benchmarks.py"),
    output:
        report(
            plan_stats.REPORT_TABLE,
            caption="captions/stats_job_benchmarks.rst",
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
        folder="results/benchmarks",
    script:
        "../scripts/stats_job_benchmarks.py"
