# Rules of the stats stage; planning in scripts/pixelflow/planning/stats.py.


rule stats_shard:
    input:
        unpack(
            lambda wildcards: (
                {}
                if dataset_plan(wildcards).kind == "generated"
                else dataset_inputs(wildcards.dataset, "shard", [wildcards.shard])
            )
        ),
        code=core_modules("stats_shard.py"),
    output:
        table="results/stats/{dataset}/shards/shard-{shard}.tsv",
        filtered=[
            directory(path)
            for path in stats_plan.filtered_dirs(config, "{dataset}", "{shard}")
        ],
    log:
        "results/logs/stats/{dataset}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/stats/{dataset}/shard-{shard}.tsv"
    wildcard_constraints:
        shard=r"\d+",  # as the dataset numbers its shards: 0001 for files, 1 for zarr
    conda:
        "../envs/pixelflow.yaml"
    threads: config["max_threads"]
    resources:
        mem_mb=lambda wildcards, attempt: stats_plan.shard_mem_mb(
            config, datasets_plan.dataset_spec(config, wildcards.dataset), attempt
        ),
        runtime=lambda wildcards, attempt: stats_plan.shard_runtime(
            config,
            dataset_plan(wildcards).shard_size,
            datasets_plan.dataset_spec(config, wildcards.dataset),
            attempt,
        ),
    params:
        source=lambda wildcards: stats_plan.shard_source(
            config, dataset_plan(wildcards), wildcards.shard
        ),
        settings=stats_plan.shard_settings(config),
    script:
        "../scripts/stats_shard.py"


rule stats_summary:
    input:
        tables=lambda wildcards: [
            stats_plan.shard_table(wildcards.dataset, shard)
            for shard in dataset_plan(wildcards).shards
        ],
        filtered=lambda wildcards: [
            path
            for shard in dataset_plan(wildcards).shards
            for path in stats_plan.filtered_dirs(config, wildcards.dataset, shard)
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
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=per_attempt(10),
    params:
        sigmas=stats_plan.sigmas(config),
        truncate=config["stats"]["truncate"],
    script:
        "../scripts/stats_summary.py"


rule stats_plot:
    input:
        tables=lambda wildcards: [
            stats_plan.shard_table(wildcards.dataset, shard)
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
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=per_attempt(10),
    params:
        sigmas=stats_plan.sigmas(config),
    script:
        "../scripts/stats_plot.py"
