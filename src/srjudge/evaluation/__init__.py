"""Evaluation: benchmarks, metrics with bootstrap CIs, results, comparisons and reports.

Modules: ``metrics`` (metric functions over prediction records), ``benchmarks`` (the
``BENCHMARKS`` table: data sources + task + metrics per benchmark), ``tasks`` (items ->
prediction records), ``evaluate`` (``evaluate``: judge benchmarks into a folder), ``results``
(typed ``EvalResult`` and readers), ``stats`` (bootstrap, correlations), ``compare`` (paired
bootstrap of two evaluations), ``report`` and ``figures`` (report.md / report.html).
Nothing is re-exported here (``evaluate`` is both a module and its main function).
"""
