"""Human side-by-side evaluation of two judges' rationales (the paper's section 4, Figure 2).

    srjudge annotate create --a EVAL_A --b EVAL_B --out study.db   # study.py, inputs.py
    srjudge annotate add-annotator study.db alice                  # store.py
    srjudge annotate serve study.db                                # app.py + templates/
    srjudge annotate report study.db                               # report.py
    srjudge annotate export|import ...                             # labelstudio.py

Modules: ``inputs`` (read ``srjudge eval`` / ``srjudge judge`` predictions and the judged
examples), ``study`` (select, sample, randomise sides), ``store`` (the SQLite study file),
``app`` (the Starlette page), ``report`` (win rates, CIs, agreement, plot), ``labelstudio``
(Label Studio tasks/config export, JSON export import, JSONL of labels). Everything taken
from the rest of srjudge comes through ``deps``.
"""
