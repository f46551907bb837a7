# results/summary/README.md: the reproduction table of all four papers, from every experiment
# summary (target `summary`: it trains every surrogate, so it is not in `all`).

rule rno_mg_taylor_summary:
    input:
        f"{R}/rno/mg_taylor/metrics.json",
        *([f"{R}/rno/mg_taylor/resolution/metrics.json"] if config["rno"]["mg_taylor"]["resolution"]["k"] else []),
    output:
        report(f"{R}/summary/history_surrogates_mg_taylor.md", caption="../report/rno_mg_taylor_summary.rst",
               category="rno", subcategory="mg_taylor", labels={"figure": "summary table"}),
    log:
        f"{R}/rno/mg_taylor/logs/summary.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} history summary {output} {input} > {log} 2>&1"


SUMMARIES = [f"{R}/summary/{name}.md" for name in (
    "history_surrogates", "history_surrogates_cp_paths2d", "history_surrogates_mg_taylor", "field_surrogates",
    "field_surrogates_gcnn", "field_surrogates_heat2d", "field_surrogates_gcnn_sensitivity")]


rule summary:
    input:
        SUMMARIES,
    output:
        report(f"{R}/summary/README.md", caption="../report/summary_index.rst", category="summary",
               labels={"figure": "reproduction table"}),
    log:
        f"{R}/logs/summary_index.log",
    conda:
        "../../envs/homlearn.yaml"
    shell:
        "{HOMLEARN} summary {output} {input} > {log} 2>&1"
