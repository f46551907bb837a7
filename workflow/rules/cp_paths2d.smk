# cp_paths2d: one 2D polycrystal under random F paths, two-slip finite-strain crystal plasticity
# on the FFT engine (paper rno 5.1, appendix A); a resumable Zarr store, JSON summary as output.

CPP = f"{R}/cp_paths2d"


rule cp_paths2d_solve:
    output:
        summary=f"{CPP}/solve.json",
    params:
        cfg=config_json("cp_paths2d"),
        store=f"{R}/datasets/cp_paths2d.zarr",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(2000),
    log:
        f"{CPP}/logs/solve.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} cp_paths2d solve {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {CPP}/failures.jsonl 2> {log}"


rule cp_paths2d_all:
    input:
        rules.cp_paths2d_solve.output.summary,
