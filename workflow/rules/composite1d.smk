# composite1d: stress histories of 1D elasto-viscoplastic composites (paper rno section 3),
# one resumable Zarr store (the summary JSON is the declared output).

C1D = f"{R}/composite1d"
_C1D_BATCHES = -(-len(config["composite1d"]["segments"]) * config["composite1d"]["paths_per_n"]
                 // config["composite1d"]["batch_size"])


def _c1d_config_json():
    """The composite1d section and the Dask settings (the only keys the stage reads)."""
    return shlex.quote(json.dumps({"composite1d": config["composite1d"], "dask": config["dask"]}, sort_keys=True))


rule composite1d_solve:
    output:
        summary=f"{C1D}/solve.json",
    params:
        cfg=_c1d_config_json(),
        store=f"{R}/datasets/composite1d.zarr",
    threads: stage_threads(_C1D_BATCHES)  # no more Dask workers than batches; 1 = in process
    resources:
        mem_mb=stage_mem_mb(1000),
    log:
        f"{C1D}/logs/solve.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} composite1d solve {params.store} --config-json {params.cfg} --threads {threads} "
        "--summary {output.summary} --failure-log {C1D}/failures.jsonl 2> {log}"


rule composite1d_all:
    input:
        rules.composite1d_solve.output.summary,
