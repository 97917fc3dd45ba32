"""Label Studio interchange, and a plain JSONL export of the labels.

    srjudge annotate export study.db --format label-studio --out ls/
        # ls/tasks.json (import into a project) + ls/labeling_config.xml (its labelling config)
    srjudge annotate import study.db project-export.json      # a Label Studio JSON export
    srjudge annotate export study.db --format jsonl --out labels.jsonl

Tasks follow Label Studio's JSON task format, ``[{"data": {...}}, ...]``; ``data`` holds the
texts the config shows (``$criteria``, ``$rubric``, ``$conversation``, ``$response``,
``$verdicts``, ``$rationale_1``, ``$rationale_2``) and two opaque ids, ``study`` and ``item``.
Like the web page, a task shows "Rationale 1" and "Rationale 2" only: which model wrote
which stays in the study database. The config is Label Studio's pairwise comparison with
``Choices`` (so that ties, both good or both poor, can be given), a multiple-choice
``Choices`` of reasons and a ``TextArea`` comment; every text is shown by ``Text``, which
renders no HTML.

Import reads a Label Studio *JSON* export (a list of tasks with ``annotations``): each
non-cancelled annotation becomes the label of annotator ``label-studio:<user>`` (the
``completed_by`` id or e-mail) for that item, replacing an earlier import of the same one.
Results of this config's controls are understood, and so are those of Label Studio's own
``Pairwise`` template (``{"type": "pairwise", "value": {"selected": "left" | "right"}}``,
left = Rationale 1). The whole file is checked first; one bad annotation (its task and field
named) refuses the file and nothing is written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

from srjudge.annotation import store

PREFERENCE = "preference"
REASONS = "reasons"
COMMENT = "comment"
LS_CHOICES: dict[str, str] = {
    "Rationale 1": "1",
    "Rationale 2": "2",
    "Tie: both good": "tie_good",
    "Tie: both poor": "tie_poor",
}
"""Label Studio choice value -> stored choice."""
LS_REASONS: dict[str, str] = {text: key for key, text in store.REASONS.items()}
PAIRWISE = {"left": "1", "right": "2"}


class ImportErrorLS(ValueError):
    """A Label Studio export this study cannot take; the message names task and field."""


# ---------------------------------------------------------------------------------------
# export


def labeling_config() -> str:
    """The labelling config (XML) for the exported tasks."""
    choices = "\n".join(
        f"    <Choice value={quoteattr(v)} hotkey={quoteattr(str(i))}/>"
        for i, v in enumerate(LS_CHOICES, 1)
    )
    reasons = "\n".join(f"    <Choice value={quoteattr(v)}/>" for v in store.REASONS.values())
    return f"""<View>
  <Header value="Which rationale is better? Judge the rationales, not the verdict."/>
  <Header value="Scoring criteria" size="5"/>
  <Text name="criteria" value="$criteria"/>
  <Text name="rubric" value="$rubric"/>
  <Header value="Conversation" size="5"/>
  <Text name="conversation" value="$conversation"/>
  <Header value="Response" size="5"/>
  <Text name="response" value="$response"/>
  <Text name="verdicts" value="$verdicts"/>
  <View style="display: flex; gap: 1em;">
    <View style="flex: 1;">
      <Header value="Rationale 1" size="5"/>
      <Text name="rationale_1" value="$rationale_1"/>
    </View>
    <View style="flex: 1;">
      <Header value="Rationale 2" size="5"/>
      <Text name="rationale_2" value="$rationale_2"/>
    </View>
  </View>
  <Choices name="{PREFERENCE}" toName="rationale_1" choice="single-radio" required="true"
           showInline="true">
{choices}
  </Choices>
  <Header value="Why? Tick any that apply" size="6"/>
  <Choices name="{REASONS}" toName="rationale_1" choice="multiple" showInline="true">
{reasons}
  </Choices>
  <TextArea name="{COMMENT}" toName="rationale_1" placeholder="Comment (optional)"
            maxSubmissions="1" editable="true"/>
</View>
"""


def _conversation(context: list[dict[str, str]]) -> str:
    return "\n\n".join(f"{m['role'].upper()}: {m['content']}" for m in context)


def _response(p: dict[str, Any]) -> str:
    if "response" in p:
        return p["response"]
    return f"RESPONSE 1:\n{p['response_1']}\n\nRESPONSE 2:\n{p['response_2']}"


def _verdicts(p: dict[str, Any]) -> str:
    v1, v2 = p["verdicts"]
    say = (
        (lambda v: f"prefers Response {v}") if p["mode"] == "pairwise" else (lambda v: f"score {v}")
    )
    if v1 == v2:
        return f"Both rationales end in the same verdict: {say(v1)}."
    return f"Rationale 1 ends in {say(v1)}; Rationale 2 in {say(v2)}."


def task_data(study_id: str, item: tuple[str, str, int, dict[str, Any], str, str]) -> dict:
    uid, _key, _position, payload, r1, r2 = item
    rubric = "\n".join(f"Score {i}: {d}" for i, d in enumerate(payload["score_descriptions"], 1))
    data = {
        "study": study_id,
        "item": uid,
        "criteria": payload["criteria"],
        "rubric": rubric,
        "conversation": _conversation(payload["context"]),
        "response": _response(payload),
        "verdicts": _verdicts(payload),
        "rationale_1": r1,
        "rationale_2": r2,
    }
    if payload.get("reference_answer"):
        data["reference_answer"] = payload["reference_answer"]
    return data


def export_label_studio(db_path: str | Path, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``tasks.json`` and ``labeling_config.xml`` into ``out_dir``."""
    with store.opened(db_path) as conn:
        study_id = store.read_meta(conn)["study_id"]
        items = store.all_items(conn)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tasks = [{"data": task_data(study_id, item)} for item in items]
    tasks_path, config_path = out / "tasks.json", out / "labeling_config.xml"
    tasks_path.write_text(json.dumps(tasks, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    config_path.write_text(labeling_config(), encoding="utf-8")
    return tasks_path, config_path


def export_jsonl(db_path: str | Path, out_path: str | Path) -> int:
    """One line per label, with the side assignment resolved (``preferred``: a, b or tie)."""
    with store.opened(db_path) as conn:
        meta = store.read_meta(conn)
        rows = store.all_labels(conn)
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    with open(out_path, "w", encoding="utf-8") as f:
        for r in rows:
            record = {
                "item": r.item_key,
                "position": r.position,
                "annotator": r.annotator,
                "choice": r.choice,
                "preferred": r.preferred,
                "preferred_model": {"a": meta["label_a"], "b": meta["label_b"]}.get(r.preferred),
                "tie": {"tie_good": "both good", "tie_poor": "both poor"}.get(r.choice),
                "rationale_1_is": r.first,
                "reasons": list(r.reasons),
                "comment": r.comment,
                "source": r.source,
                "revision": r.revision,
                "updated_at": r.updated_at,
            }
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(rows)


# ---------------------------------------------------------------------------------------
# import


@dataclass(frozen=True)
class Imported:
    annotator: str
    item_uid: str
    label: store.Label


def _annotator_name(ann: dict[str, Any], where: str) -> str:
    who = ann.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    if isinstance(who, bool) or not isinstance(who, int | str) or who == "":
        raise ImportErrorLS(f"{where}: field 'completed_by': missing or not a user id / e-mail")
    return store.check_name(f"label-studio:{who}"[:64])


def _single(value: Any, allowed: dict[str, str], where: str) -> str:
    if not isinstance(value, list) or len(value) != 1 or value[0] not in allowed:
        raise ImportErrorLS(f"{where}: expected one of {sorted(allowed)}, got {value!r}")
    return allowed[value[0]]


def parse_annotation(ann: dict[str, Any], where: str) -> store.Label:
    """The label in one Label Studio annotation's ``result`` list."""
    choice: str | None = None
    reasons: list[str] = []
    comment = ""
    results = ann.get("result")
    if not isinstance(results, list):
        raise ImportErrorLS(f"{where}: field 'result': expected a list")
    for k, r in enumerate(results):
        at = f"{where}.result[{k}]"
        if not isinstance(r, dict) or not isinstance(r.get("value"), dict):
            raise ImportErrorLS(f"{at}: expected an object with a 'value' object")
        name, kind, value = r.get("from_name"), r.get("type"), r["value"]
        if kind == "pairwise":
            choice = _single([value.get("selected")], PAIRWISE, f"{at}.value.selected")
        elif name == PREFERENCE:
            choice = _single(value.get("choices"), LS_CHOICES, f"{at}.value.choices")
        elif name == REASONS:
            got = value.get("choices")
            if not isinstance(got, list) or any(c not in LS_REASONS for c in got):
                raise ImportErrorLS(f"{at}.value.choices: unknown reason in {got!r}")
            reasons = [LS_REASONS[c] for c in got]
        elif name == COMMENT:
            text = value.get("text")
            if not isinstance(text, list) or not all(isinstance(t, str) for t in text):
                raise ImportErrorLS(f"{at}.value.text: expected a list of strings")
            comment = "\n".join(text)
        else:
            raise ImportErrorLS(f"{at}: field 'from_name': unknown control {name!r}")
    if choice is None:
        raise ImportErrorLS(f"{where}: no '{PREFERENCE}' choice (or pairwise selection)")
    try:
        return store.check_label(choice, reasons, comment)
    except store.StudyError as e:
        raise ImportErrorLS(f"{where}: {e}") from None


def parse_export(
    tasks: Any, study_id: str, uids: set[str]
) -> tuple[list[Imported], dict[str, int]]:
    """Check a whole export; (labels to write, counts)."""
    if not isinstance(tasks, list):
        raise ImportErrorLS("expected a JSON list of tasks (Label Studio's JSON export)")
    out: list[Imported] = []
    counts = {"tasks": len(tasks), "annotations": 0, "cancelled": 0, "unlabelled_tasks": 0}
    seen: set[tuple[str, str]] = set()
    for t, task in enumerate(tasks):
        where = f"task {t} (id {task.get('id') if isinstance(task, dict) else '?'})"
        data = task.get("data") if isinstance(task, dict) else None
        if not isinstance(data, dict):
            raise ImportErrorLS(f"{where}: field 'data': missing")
        if data.get("study") != study_id:
            raise ImportErrorLS(
                f"{where}: field 'data.study': {data.get('study')!r} is another study"
            )
        uid = data.get("item")
        if uid not in uids:
            raise ImportErrorLS(f"{where}: field 'data.item': {uid!r} is not in this study")
        anns = task.get("annotations") or []
        counts["unlabelled_tasks"] += not anns
        for a, ann in enumerate(anns):
            at = f"{where}.annotations[{a}]"
            if not isinstance(ann, dict):
                raise ImportErrorLS(f"{at}: expected an object")
            if ann.get("was_cancelled"):
                counts["cancelled"] += 1
                continue
            name = _annotator_name(ann, at)
            if (name, uid) in seen:
                raise ImportErrorLS(f"{at}: {name} annotated this item twice")
            seen.add((name, uid))
            out.append(Imported(name, uid, parse_annotation(ann, at)))
            counts["annotations"] += 1
    return out, counts


def import_label_studio(db_path: str | Path, export_path: str | Path) -> dict[str, int]:
    """Read a Label Studio JSON export into the study, in one transaction."""
    try:
        tasks = json.loads(Path(export_path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ImportErrorLS(f"{export_path}: not a readable JSON file ({e})") from None
    with store.opened(db_path) as conn:
        study_id = store.read_meta(conn)["study_id"]
        ids = store.item_ids_by_uid(conn)
        try:
            labels, counts = parse_export(tasks, study_id, set(ids))
        except ImportErrorLS as e:
            raise ImportErrorLS(f"{export_path}: {e}") from None
        with store.transaction(conn):
            for imp in labels:
                who = store.annotator_id(conn, imp.annotator, "label-studio")
                store.write_label(conn, who, ids[imp.item_uid], imp.label, "label-studio")
    return counts
