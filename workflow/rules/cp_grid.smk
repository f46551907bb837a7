# cp_grid2d / cp_grid3d: FCC polycrystal plasticity on the FFT engine (paper gcnn A.2), one
# resumable Zarr store per dimension (the summary JSON is the declared output).

CP = f"{R}/cp_grid"
CP_DIMS = ["2d", "3d"]


rule cp_grid_solve:
    output:
        summary=f"{CP}/solve_{{dim}}.json",
    params:
        cfg=config_json("cp_grid"),
        store=lambda w: f"{R}/datasets/cp_grid{w.dim}.zarr",
    wildcard_constraints:
        dim="2d|3d",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(2000),
    log:
        f"{CP}/logs/solve_{{dim}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} cp_grid solve {wildcards.dim} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {CP}/failures.jsonl 2> {log}"


rule cp_grid_all:
    input:
        expand(f"{CP}/solve_{{dim}}.json", dim=CP_DIMS),
