"""The loop: a run config, the run folder, the stages of a run, and running them resumably.

Modules: ``config`` (the typed run config from YAML), ``rundir`` (the run folder layout),
``stages`` (one function per stage and the plan), ``run`` (``run``: every stage, resumably).
"""
