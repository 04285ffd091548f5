def shard_inputs(wildcards):
    """The code a shard job runs and, for an external dataset, the images it checks."""
    dataset = dataset_plan(wildcards)
    inputs = {"code": core_modules("dataset_shard.py")}
    if dataset.kind == "external":
        start, stop = dataset.bounds(wildcards.shard)
        inputs["images"] = list(dataset.files[start:stop])
    return inputs


def shard_params(wildcards):
    """Everything a shard's bytes depend on besides its input files."""
    dataset = dataset_plan(wildcards)
    start, stop = dataset.bounds(wildcards.shard)
    params = {"kind": dataset.kind, "start": start, "stop": stop}
    spec = config["datasets"][wildcards.dataset]
    if dataset.kind == "generated":
        params["spec"] = plan.generated_shard_spec(config, wildcards.dataset)
    else:
        params["shape"] = spec.get("shape")
        params["dtype"] = spec.get("dtype")
    return params


def shard_mem_mb(wildcards, attempt):
    """Workers hold one image at a time; allow for a few large ones."""
    spec = config["datasets"][wildcards.dataset]
    return attempt * (512 + 8 * plan.image_bytes(spec) // (1 << 20) * config["max_threads"])


def shard_runtime(wildcards, attempt):
    """Minutes: generous for about 50 MB/s per job, at least 5."""
    dataset = dataset_plan(wildcards)
    spec = config["datasets"][wildcards.dataset]
    total_mb = dataset.shard_size * plan.image_bytes(spec) / (1 << 20)
    return attempt * max(5, int(total_mb / 50 / 60) + 5)


rule dataset_shard:
    input:
        unpack(shard_inputs),
    output:
        directory("results/datasets/{dataset}/shard-{shard}"),
    params:
        shard=shard_params,
    threads: job_threads("dataset_shard")
    resources:
        mem_mb=shard_mem_mb,
        runtime=shard_runtime,
    log:
        "results/logs/datasets/{dataset}/shard-{shard}.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/shard-{shard}.tsv"
    script:
        "../scripts/dataset_shard.py"


def stack_mem_mb(wildcards, attempt):
    """Ranges are mapped one at a time, so memory does not grow with the dataset."""
    return attempt * 1024


def stack_runtime(wildcards, attempt):
    dataset = dataset_plan(wildcards)
    total_mb = dataset.count * plan.image_bytes(config["datasets"][wildcards.dataset]) / (1 << 20)
    return attempt * max(5, int(total_mb / 50 / 60) + 5)


rule dataset_stack:
    input:
        shards=lambda wildcards: shard_dirs(wildcards.dataset),
        code=core_modules("dataset_stack.py"),
    output:
        "results/datasets/{dataset}/stack.npy",
    threads: job_threads("dataset_stack")
    resources:
        mem_mb=stack_mem_mb,
        runtime=stack_runtime,
    log:
        "results/logs/datasets/{dataset}/stack.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/stack.tsv"
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
        "results/datasets/{dataset}/montage.png",
    params:
        images=config["montage"]["count"],
        cell=config["montage"]["cell"],
    threads: 1
    resources:
        mem_mb=1024,
        runtime=10,
    log:
        "results/logs/datasets/{dataset}/montage.log",
    benchmark:
        "results/benchmarks/datasets/{dataset}/montage.tsv"
    script:
        "../scripts/dataset_montage.py"
