# Rules of the pipelines stage; planning in scripts/pixelflow/planning/pipelines.py.
# A pipeline's shards are shards of the dataset of its name (results/datasets/{pipeline});
# pipeline shard k reads shard k of its dataset, whose images may be files or a zarr array.


rule pipeline_shard:
    input:
        unpack(
            lambda wildcards: dataset_inputs(
                pipelines_plan.source(config, wildcards.pipeline),
                "source",
                [wildcards.shard],
            )
        ),
        user_code=lambda wildcards: pipelines_plan.user_files(
            config, wildcards.pipeline, WORKDIR
        ),
        code=core_modules("pipeline_shard.py"),
    output:
        directory("results/datasets/{pipeline}/shard-{shard}"),
    log:
        "results/logs/pipelines/{pipeline}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/pipelines/{pipeline}/shard-{shard}.tsv"
    wildcard_constraints:
        pipeline=names_pattern(config["pipelines"]),
    conda:
        "../envs/pixelflow.yaml"
    threads: lambda wildcards: shard_threads(wildcards.pipeline)
    resources:
        mem_mb=lambda wildcards, attempt: pipelines_plan.shard_mem_mb(
            config, wildcards.pipeline, attempt
        ),
        runtime=lambda wildcards, attempt: pipelines_plan.shard_runtime(
            config, DATASETS[wildcards.pipeline], attempt
        ),
    params:
        spec=lambda wildcards: pipelines_plan.pipeline_spec(config, wildcards.pipeline),
    script:
        "../scripts/pipeline_shard.py"


rule pipeline_summary:
    input:
        shards=lambda wildcards: shard_dirs(wildcards.pipeline),
        code=core_modules("pipeline_summary.py"),
    output:
        metrics=report(
            "results/pipelines/{pipeline}/metrics.tsv",
            caption="captions/pipelines_metrics.rst",
            category="Pipelines",
            subcategory="{pipeline}",
        ),
        summary=report(
            "results/pipelines/{pipeline}/summary.tsv",
            caption="captions/pipelines_summary.rst",
            category="Pipelines",
            subcategory="{pipeline}",
        ),
        plot=report(
            "results/pipelines/{pipeline}/metrics.png",
            caption="captions/pipelines_plot.rst",
            category="Pipelines",
            subcategory="{pipeline}",
        ),
    log:
        "results/logs/pipelines/{pipeline}/summary.log",
    benchmark:
        "results/benchmarks/pipelines/{pipeline}/summary.tsv"
    wildcard_constraints:
        pipeline=names_pattern(config["pipelines"]),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            DATASETS[wildcards.pipeline], attempt
        ),
        runtime=per_attempt(10),
    script:
        "../scripts/pipeline_summary.py"


rule pipeline_contact:
    input:
        unpack(
            lambda wildcards: dataset_inputs(
                pipelines_plan.source(config, wildcards.pipeline),
                "sources",
                DATASETS[wildcards.pipeline].shards_covering(
                    pipelines_plan.contact_count(config, wildcards.pipeline)
                ),
            )
        ),
        results=lambda wildcards: shard_dirs(
            wildcards.pipeline,
            DATASETS[wildcards.pipeline].shards_covering(
                pipelines_plan.contact_count(config, wildcards.pipeline)
            ),
        ),
        code=core_modules("pipeline_contact.py"),
    output:
        report(
            "results/pipelines/{pipeline}/contact.png",
            caption="captions/pipelines_contact.rst",
            category="Pipelines",
            subcategory="{pipeline}",
        ),
    log:
        "results/logs/pipelines/{pipeline}/contact.log",
    benchmark:
        "results/benchmarks/pipelines/{pipeline}/contact.tsv"
    wildcard_constraints:
        pipeline=names_pattern(config["pipelines"]),
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1024),
        runtime=per_attempt(10),
    params:
        pairs=lambda wildcards: pipelines_plan.contact_count(config, wildcards.pipeline),
        cell=config["montage"]["cell"],
    script:
        "../scripts/pipeline_contact.py"
