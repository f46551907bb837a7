# Laminate studies of paper 'rno' section 4 beyond Fig. 3a-b (rno.laminate.transfer, .hardening,
# .autoencoder): RNOs trained from the source case's RNO of the same k (<case>_from_<source>_k<k>)
# against direct training (<case>_k<k>, rule rno_laminate_train), for Table 1 (Fig. 3a, 3c-f) and
# the exponential-hardening cases (Fig. 6a-c); auto-encoders of the layers' model variables per
# case and latent size (Fig. 4a-b, 6d). Named targets: rno_laminate_transfer, rno_laminate_hardening,
# rno_laminate_autoencoder, rno_laminate_studies (all three); all three feed rno_summary. Ours:
# RNOs trained on symmetry-augmented paths (rno.laminate.augmented; target rno_laminate_augmented,
# in the summary when it has cases).

from homlearn.solvers.analytic.laminate import case as _laminate_case

LAM_MODELS = f"{RNO}/laminate/models"
RNO_AE = RNO_LAM["autoencoder"]
RNO_AUG = RNO_LAM["augmented"]
AUG = f"{RNO}/laminate/augmented"
_STUDY_FIGURES = {
    "transfer": ("fig3a_transfer_error_vs_k", "fig3cf_direct_vs_transfer", "fig3_transfer_training_curves"),
    "hardening": ("fig6a_error_vs_k", "fig6b_direct_vs_transfer", "fig6_training_curves", "fig6c_predictions"),
    "autoencoder": ("fig4a_autoencoder_error", "fig4b_autoencoder_reconstruction",
                    "fig6d_autoencoder_error_hardening"),
}


def _study_models(study):
    """Direct RNOs of the source and the cases, and the transferred ones, for every k."""
    c = RNO_LAM[study]
    direct = expand(f"{LAM_MODELS}/{{case}}_k{{k}}/model.json", case=[c["source"], *c["cases"]], k=c["k"])
    moved = expand(f"{LAM_MODELS}/{{case}}_from_{c['source']}_k{{k}}/model.json", case=c["cases"], k=c["k"])
    return direct + moved


def _study_json(study):
    return shlex.quote(json.dumps({"rno": {"laminate": {study: RNO_LAM[study]}}}, sort_keys=True))


def _study_outputs(study):
    out = f"{RNO}/laminate/{study}"
    return {"metrics": f"{out}/metrics.json",
            "table": report(f"{out}/metrics.csv", caption=f"../report/rno_laminate_{study}_metrics.rst", category="rno",
                            subcategory="laminate", labels={"figure": f"{study}: table"}),
            "figures": [report(f"{out}/{name}.png", caption=f"../report/rno_{name}.rst", category="rno",
                               subcategory="laminate", labels={"figure": name}) for name in _STUDY_FIGURES[study]]}


def _ae_train_json():
    """The auto-encoder's size and training settings only (the rerun triggers of its training)."""
    part = {"width": RNO_AE["width"], "depth": RNO_AE["depth"],
            "train": {k: v for k, v in RNO_AE["train"].items() if k not in ("gpu", "tensorboard")}}
    return shlex.quote(json.dumps({"rno": {"laminate": {"autoencoder": part}}}, sort_keys=True))


def _ae_models():
    return [f"{RNO}/laminate/autoencoder/models/{c}_m{m}/model.json" for c in RNO_AE["cases"]
            for m in RNO_AE["latent"] if m <= _laminate_case(c).n_model_variables]


def _augmented_train_json():
    """The model size, the symmetries and the study's own recipe (the rerun triggers of its training)."""
    part = {"width": RNO_LAM["width"], "depth": RNO_LAM["depth"], "symmetries": RNO_AUG["symmetries"],
            "train": {k: v for k, v in RNO_AUG["train"].items() if k not in ("gpu", "tensorboard")}}
    return shlex.quote(json.dumps({"rno": {"laminate": part}}, sort_keys=True))


def _augmented_evaluate_json():
    part = {"cases": RNO_AUG["cases"], "k": RNO_AUG["k"], "example_case": RNO_LAM["example_case"],
            "baseline": {"models": []}}
    return shlex.quote(json.dumps({"rno": {"laminate": part}}, sort_keys=True))


rule rno_laminate_transfer_train:
    input:
        data=f"{LAM}/solve_{{case}}.json",
        source=f"{LAM_MODELS}/{{source}}_k{{k}}/model.json",
    output:
        model=f"{LAM_MODELS}/{{case}}_from_{{source}}_k{{k}}/model.json",
    params:
        cfg=_rno_train_json("laminate"),
        store=lambda w: f"{R}/datasets/laminate_{w.case}.zarr",
        out=lambda w: f"{LAM_MODELS}/{w.case}_from_{w.source}_k{w.k}",
        init=lambda w: f"{LAM_MODELS}/{w.source}_k{w.k}",
    wildcard_constraints:
        case="|".join(LAM_CASES),
        source="|".join(LAM_CASES),
        k=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(RNO_LAM["train"]),
    log:
        f"{RNO}/laminate/logs/train_{{case}}_from_{{source}}_k{{k}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history train laminate {params.store} {params.out} --k {wildcards.k} --init {params.init} "
        "--threads {threads} --config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_transfer_evaluate:
    input:
        _study_models("transfer"),
    output:
        **_study_outputs("transfer"),
    params:
        cfg=_study_json("transfer"),
    log:
        f"{RNO}/laminate/logs/transfer_evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history laminate-study transfer {R}/datasets {LAM_MODELS} {RNO}/laminate/transfer "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_hardening_evaluate:
    input:
        _study_models("hardening"),
    output:
        **_study_outputs("hardening"),
    params:
        cfg=_study_json("hardening"),
    log:
        f"{RNO}/laminate/logs/hardening_evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history laminate-study hardening {R}/datasets {LAM_MODELS} {RNO}/laminate/hardening "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_autoencoder_train:
    input:
        f"{LAM}/solve_{{case}}.json",
    output:
        model=f"{RNO}/laminate/autoencoder/models/{{case}}_m{{m}}/model.json",
    params:
        cfg=_ae_train_json(),
        store=lambda w: f"{R}/datasets/laminate_{w.case}.zarr",
        out=lambda w: f"{RNO}/laminate/autoencoder/models/{w.case}_m{w.m}",
    wildcard_constraints:
        case="|".join(LAM_CASES),
        m=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(RNO_AE["train"]),
    log:
        f"{RNO}/laminate/logs/autoencoder_{{case}}_m{{m}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history autoencoder-train {params.store} {params.out} --latent {wildcards.m} --threads {threads} "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_autoencoder_evaluate:
    input:
        _ae_models(),
    output:
        **_study_outputs("autoencoder"),
    params:
        cfg=_study_json("autoencoder"),
    log:
        f"{RNO}/laminate/logs/autoencoder_evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history autoencoder-evaluate {R}/datasets {RNO}/laminate/autoencoder/models "
        "{RNO}/laminate/autoencoder --config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_augmented_train:
    input:
        f"{LAM}/solve_{{case}}.json",
    output:
        model=f"{AUG}/models/{{case}}_k{{k}}/model.json",
    params:
        cfg=_augmented_train_json(),
        store=lambda w: f"{R}/datasets/laminate_{w.case}.zarr",
        out=lambda w: f"{AUG}/models/{w.case}_k{w.k}",
    wildcard_constraints:
        case="|".join(LAM_CASES),
        k=r"\d+",
    threads: 1
    resources:
        gpu=gpu_resource(RNO_AUG["train"]),
    log:
        f"{RNO}/laminate/logs/augmented_train_{{case}}_k{{k}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history train laminate {params.store} {params.out} --k {wildcards.k} --threads {threads} "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_augmented_evaluate:
    input:
        expand(f"{AUG}/models/{{case}}_k{{k}}/model.json", case=RNO_AUG["cases"], k=RNO_AUG["k"]),
    output:
        metrics=f"{AUG}/metrics.json",
        table=report(f"{AUG}/metrics.csv", caption="../report/rno_laminate_augmented.rst", category="rno",
                     subcategory="laminate", labels={"figure": "augmented: table"}),
        figures=[report(f"{AUG}/{name}.png", caption="../report/rno_laminate_augmented.rst", category="rno",
                        subcategory="laminate", labels={"figure": f"augmented: {name}"})
                 for name in ("fig3a_error_vs_k", "fig3b_predictions")],
    params:
        cfg=_augmented_evaluate_json(),
    log:
        f"{RNO}/laminate/logs/augmented_evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history evaluate laminate {R}/datasets {AUG}/models {AUG} --config-json {params.cfg} > {log} 2>&1"


RNO_RES = RNO_LAM["resolution"]
RES_STEPS = max(RNO_RES["steps"])
RES_MODELS = f"{AUG}/models" if RNO_RES["models"] == "augmented" else f"{RNO}/laminate/models"


rule laminate_solve_resolution:
    """The case's paths stored at the finest step of the resolution study (same seed, same paths)."""
    output:
        summary=f"{LAM}/solve_{{case}}_n{{steps}}.json",
    params:
        cfg=lambda w: shlex.quote(json.dumps({"laminate": {**config["laminate"], "path": {
            **config["laminate"]["path"], "n_out": int(w.steps)}}, "dask": config["dask"]}, sort_keys=True)),
        store=lambda w: f"{R}/datasets/laminate_{w.case}_n{w.steps}.zarr",
    wildcard_constraints:
        case="|".join(LAM_CASES),
        steps=r"\d+",
    threads: stage_threads(_LAM_BATCHES)
    resources:
        mem_mb=stage_mem_mb(1000),
    log:
        f"{LAM}/logs/solve_{{case}}_n{{steps}}.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} laminate solve {wildcards.case} {params.store} --config-json {params.cfg} "
        "--threads {threads} --summary {output.summary} --failure-log {LAM}/failures.jsonl 2> {log}"


rule rno_laminate_resolution_evaluate:
    input:
        f"{LAM}/solve_{RNO_RES['case']}_n{RES_STEPS}.json",
        expand(f"{RES_MODELS}/{RNO_RES['case']}_k{{k}}/model.json", k=RNO_RES["k"]),
    output:
        metrics=f"{RNO}/laminate/resolution/metrics.json",
        table=f"{RNO}/laminate/resolution/metrics.csv",
        figure=report(f"{RNO}/laminate/resolution/fig10_laminate_resolution.png",
                      caption="../report/rno_laminate_resolution.rst", category="rno", subcategory="laminate",
                      labels={"figure": "resolution"}),
    params:
        cfg=shlex.quote(json.dumps({"rno": {"laminate": RNO_LAM}}, sort_keys=True)),  # whole: its checks need cases, k
        models=RES_MODELS,
    log:
        f"{RNO}/laminate/logs/resolution_evaluate.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history laminate-resolution {R}/datasets {params.models} {RNO}/laminate/resolution "
        "--config-json {params.cfg} > {log} 2>&1"


rule rno_laminate_resolution:
    input:
        rules.rno_laminate_resolution_evaluate.output.metrics,


rule rno_laminate_augmented:
    input:
        rules.rno_laminate_augmented_evaluate.output.metrics,


rule rno_laminate_transfer:
    input:
        rules.rno_laminate_transfer_evaluate.output.metrics,


rule rno_laminate_hardening:
    input:
        rules.rno_laminate_hardening_evaluate.output.metrics,


rule rno_laminate_autoencoder:
    input:
        rules.rno_laminate_autoencoder_evaluate.output.metrics,


rule rno_laminate_studies:
    input:
        rules.rno_laminate_transfer_evaluate.output.metrics,
        rules.rno_laminate_hardening_evaluate.output.metrics,
        rules.rno_laminate_autoencoder_evaluate.output.metrics,
