# laminate: in-plane stress histories and layer state variables of a two-layer
# elasto-viscoplastic laminate (paper rno section 4), one resumable Zarr store per Table 1 case.

LAM = f"{R}/laminate"
LAM_CASES = list(config["laminate"]["cases"])
_LAM_BATCHES = -(-config["laminate"]["n_trajectories"] // config["laminate"]["batch_size"])


def _lam_config_json():
    """The laminate section and the Dask settings (the only keys the stage reads)."""
    return shlex.quote(json.dumps({"laminate": config["laminate"], "dask": config["dask"]}, sort_keys=True))


rule laminate_solve:
    output:
        summary=f"{LAM}/solve_{{case}}.json",
    params:
        cfg=_lam_config_json(),
        store=lambda w: f"{R}/datasets/laminate_{w.case}.zarr",
    wildcard_constraints:
        case="|".join(LAM_CASES),
    threads: stage_threads(_LAM_BATCHES)  # no more Dask workers than batches; 1 = in process
    resources:
        mem_mb=stage_mem_mb(1000),
    log:
        f"{LAM}/logs/solve_{{case}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} laminate solve {wildcards.case} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {LAM}/failures.jsonl 2> {log}"


rule laminate_all:
    input:
        expand(f"{LAM}/solve_{{case}}.json", case=LAM_CASES),
