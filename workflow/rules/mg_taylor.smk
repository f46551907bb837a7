# mg_taylor: Taylor-averaged magnesium under random stretch paths (paper pcanet 2.1-2.2, SI-A/B),
# one resumable Zarr store per case of config mg_taylor.cases (the summary JSON is the declared output).

MG = f"{R}/mg_taylor"
MG_CASES = [c["name"] for c in config["mg_taylor"]["cases"]]


rule mg_taylor_solve:
    output:
        summary=f"{MG}/solve_{{case}}.json",
    params:
        cfg=config_json("mg_taylor"),
        store=lambda w: f"{R}/datasets/mg_taylor_{w.case}.zarr",
    wildcard_constraints:
        case="[a-z0-9_]+",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(2000),
    log:
        f"{MG}/logs/solve_{{case}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} mg_taylor solve {wildcards.case} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {MG}/failures.jsonl 2> {log}"


rule mg_taylor_all:
    input:
        expand(f"{MG}/solve_{{case}}.json", case=MG_CASES),


rule mg_taylor_solve_fine:
    """The case's paths with every solver step stored (n_stored = n_steps; same seed, same paths):
    the test histories of the resolution study (rno Fig. 10b)."""
    output:
        summary=f"{MG}/resolution/solve_{{case}}_n{{steps}}.json",
    params:
        cfg=lambda w: shlex.quote(json.dumps({"mg_taylor": {**config["mg_taylor"], "n_stored": int(w.steps)}},
                                             sort_keys=True)),
        store=lambda w: f"{R}/datasets/mg_taylor_{w.case}_n{w.steps}.zarr",
    wildcard_constraints:
        case="[a-z0-9_]+",
        steps=r"\d+",
    threads: stage_threads()
    resources:
        mem_mb=stage_mem_mb(2000),
    log:
        f"{MG}/logs/solve_{{case}}_n{{steps}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} mg_taylor solve {wildcards.case} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {MG}/failures.jsonl 2> {log}"
