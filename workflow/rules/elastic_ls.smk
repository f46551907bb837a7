# elastic_ls: voxel elastic strain fields of random two-phase cells (paper rln section 4),
# one resumable Zarr store per contrast ratio (the summary JSON is the declared output).

EL = f"{R}/elastic_ls"
EL_CONTRASTS = [f"{c:g}" for c in config["elastic_ls"]["contrasts"]]


rule elastic_ls_solve:
    output:
        summary=f"{EL}/solve_cr{{contrast}}.json",
    params:
        cfg=config_json("elastic_ls"),
        store=lambda w: f"{R}/datasets/elastic_ls_cr{w.contrast}.zarr",
    wildcard_constraints:
        contrast="|".join(EL_CONTRASTS),
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(1500),
    log:
        f"{EL}/logs/solve_cr{{contrast}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} elastic_ls solve {wildcards.contrast} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {EL}/failures.jsonl 2> {log}"


rule elastic_ls_all:
    input:
        expand(f"{EL}/solve_cr{{contrast}}.json", contrast=EL_CONTRASTS),
