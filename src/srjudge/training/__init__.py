"""Training: preference curation, meta-judging, SFT and DPO through TRL, weight merging.

Modules: ``curate`` (pure: judgments -> preference pairs), ``metajudge`` (model calls some
curation strategies need), ``settings`` (``SFTSettings``, ``DPOSettings``), ``common`` (what
SFT and DPO share: loading, checkpoints and resume, saving with provenance), ``sft``, ``dpo``,
``shared_prompt`` (DPO with each pair's prompt run once), ``merge`` (linear weight merge).
Nothing is re-exported here, so importing one module does not import the others.
"""
