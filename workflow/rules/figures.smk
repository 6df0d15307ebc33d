rule figure:
    """One figure of the paper, drawn from its table only (PDF for print, PNG for the report)."""
    input:
        RESULTS / "tables" / "{figure}.csv",
    output:
        pdf=report(FIGURES_DIR / "{figure}.pdf", category="Figures (PDF)", caption="../report/figure.rst"),
        png=report(FIGURES_DIR / "{figure}.png", category="Figures", caption="../report/figure.rst"),
    params:
        code=lambda wildcards: FIGURE_CODE[wildcards.figure],
    log:
        RESULTS / "logs" / "figure" / "{figure}.log",
    benchmark:
        RESULTS / "benchmarks" / "figure" / "{figure}.tsv"
    conda:
        ENV
    script:
        "../scripts/figure.py"


rule table1:
    """Table 1: SM, PaCo and MOORE, ours beside the paper's reproduction and the publications."""
    input:
        RESULTS / "tables" / "table1.csv",
    output:
        csv=report(FIGURES_DIR / "table1.csv", category="Tables", caption="../report/table1.rst"),
        md=report(FIGURES_DIR / "table1.md", category="Tables", caption="../report/table1.rst"),
    log:
        RESULTS / "logs" / "figure" / "table1.log",
    benchmark:
        RESULTS / "benchmarks" / "figure" / "table1.tsv"
    conda:
        ENV
    script:
        "../scripts/table1.py"
