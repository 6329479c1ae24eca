"""The verdict stage (workflow/rules/verdict.smk): our exponents, regimes and pathwise limits
beside the original study's reference values, in one scorecard (docs/maths.md §3, §4).

It comes after the limits stage and reads every earlier stage; no earlier stage reads it.
Inputs: the scaling stage's ``results/exponents.csv``, ``results/regimes.csv``,
``results/scaling_robustness.csv`` and ``results/scaling/{exp}/training.csv``, the limits
stage's ``results/limits/pathwise_verdicts.csv``, and the dataset files (for the affine floor
of docs/maths.md §2). Outputs: ``results/scorecard.md`` and ``results/scorecard.html``.

- :mod:`.references`: the papers' reference values with their provenance (data only);
- :mod:`.score`: each reference against the matching experiments, and how the training ended;
- :mod:`.render`: the scorecard in Markdown and HTML, and the table helpers
  (:func:`.render.markdown_table`, :func:`.render.html_table`) of every report of the package.
"""
