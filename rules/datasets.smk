# Rules of the datasets stage; planning in scripts/pixelflow/planning/datasets.py.


rule dataset_shard:
    input:
        unpack(
            lambda wildcards: {
                "code": core_modules("dataset_shard.py"),
                **datasets_plan.shard_inputs(dataset_plan(wildcards), wildcards.shard),
            }
        ),
    output:
        directory("results/datasets/{dataset}/shard-{shard}"),
    log:
        "results/logs/datasets/{dataset}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/shard-{shard}.tsv"
    wildcard_constraints:
        dataset=names_pattern(config["datasets"]),
    conda:
        "../envs/pixelflow.yaml"
    threads: lambda wildcards: shard_threads(wildcards.dataset)
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.shard_mem_mb(
            config, wildcards.dataset, attempt
        ),
        runtime=lambda wildcards, attempt: datasets_plan.shard_runtime(
            config, dataset_plan(wildcards), attempt
        ),
    params:
        shard=lambda wildcards: datasets_plan.shard_params(
            config, dataset_plan(wildcards), wildcards.shard
        ),
    script:
        "../scripts/dataset_shard.py"


rule dataset_index:
    input:
        shards=lambda wildcards: shard_dirs(wildcards.dataset),
        code=core_modules("dataset_index.py"),
    output:
        "results/datasets/{dataset}/manifest.tsv",
    log:
        "results/logs/datasets/{dataset}/index.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/index.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=per_attempt(5),
    params:
        shards=lambda wildcards: [
            f"shard-{shard}" for shard in dataset_plan(wildcards).shards
        ],
    script:
        "../scripts/dataset_index.py"


rule dataset_stack:
    input:
        shards=lambda wildcards: shard_dirs(wildcards.dataset),
        code=core_modules("dataset_stack.py"),
    output:
        "results/datasets/{dataset}/stack.npy",
    log:
        "results/logs/datasets/{dataset}/stack.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/stack.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: config["max_threads"]
    resources:
        mem_mb=lambda wildcards, attempt: datasets_plan.index_mem_mb(
            dataset_plan(wildcards), attempt
        ),
        runtime=lambda wildcards, attempt: datasets_plan.stack_runtime(
            config, dataset_plan(wildcards), attempt
        ),
    script:
        "../scripts/dataset_stack.py"


rule dataset_montage:
    input:
        shards=lambda wildcards: shard_dirs(
            wildcards.dataset,
            dataset_plan(wildcards).shards_covering(config["montage"]["count"]),
        ),
        code=core_modules("dataset_montage.py"),
    output:
        report(
            "results/datasets/{dataset}/montage.png",
            caption="captions/datasets_montage.rst",
            category="Datasets",
            subcategory="{dataset}",
        ),
    log:
        "results/logs/datasets/{dataset}/montage.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/montage.tsv"
    conda:
        "../envs/pixelflow.yaml"
    threads: 1
    resources:
        mem_mb=per_attempt(1024),
        runtime=per_attempt(10),
    params:
        images=config["montage"]["count"],
        cell=config["montage"]["cell"],
    script:
        "../scripts/dataset_montage.py"
