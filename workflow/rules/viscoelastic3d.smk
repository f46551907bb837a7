# viscoelastic3d: viscoelastic matrix with stiff spherical inclusions (paper gcnn section 3.3,
# appendix A.3). Stage outputs are small JSON summaries; the Zarr stores beside them are resumable
# side outputs (Snakemake would delete a declared directory output before rerunning the job).

VE = f"{R}/viscoelastic3d"
VE_MESH_KEYS = ("n_samples", "seed", "n_inclusions", "volume_fraction", "radius_range", "radius_beta", "gap",
                "target_cells", "max_cells", "curvature_points", "algorithms", "max_reseeds", "count_tolerance",
                "batch_size")


def ve_config_json(keep=None):
    """The viscoelastic3d keys a rule depends on (its rerun triggers) and the dask section."""
    part = {k: v for k, v in config["viscoelastic3d"].items() if keep is None or k in keep}
    return shlex.quote(json.dumps({"viscoelastic3d": part, "dask": config["dask"]}, sort_keys=True))


rule viscoelastic3d_microstructure:
    output:
        summary=f"{VE}/microstructure.json",
    params:
        cfg=ve_config_json(VE_MESH_KEYS),
        store=f"{VE}/microstructures.zarr",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(1500),
    log:
        f"{VE}/logs/microstructure.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} viscoelastic3d microstructure {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {VE}/failures.jsonl 2> {log}"


rule viscoelastic3d_solve:
    input:
        rules.viscoelastic3d_microstructure.output.summary,
    output:
        summary=f"{VE}/solve.json",
    params:
        cfg=ve_config_json(),
        micro=f"{VE}/microstructures.zarr",
        store=f"{R}/datasets/viscoelastic3d.zarr",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(2500),
    log:
        f"{VE}/logs/solve.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} viscoelastic3d solve {params.micro} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {VE}/failures.jsonl 2> {log}"


rule viscoelastic3d_all:
    input:
        f"{VE}/solve.json",
