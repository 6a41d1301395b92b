"""Question schemas: what a campaign asks reviewers, and how answers are checked.

A campaign stores its questions as JSON::

    {"questions": [
        {"id": "preference", "type": "pairwise", "label": "Which response is better?",
         "strength_labels": ["better", "much better"], "allow_tie": true, "allow_both_bad": true},
        {"id": "why", "type": "text", "label": "Why?", "required": false}
    ]}

``parse_question_schema`` turns that into typed questions or raises ``SchemaError``
with one message per offending field (``questions[0].type``). ``validate_answers``
checks a reviewer's answers for one task and raises ``AnswerError`` the same way.

Answers always name responses by their id, never by where they were shown:

- ``pairwise``: ``{"winner": <id> | null, "strength": 1..len(strength_labels), "both_bad": bool}``;
  ``winner`` null with strength 0 is a tie.
- ``ranking``: ``{"order": [[<id>], [<id>, <id>], ...]}``, best first; a group of several ids is a tie.
- ``likert``: ``{"<response id>": {"<aspect id>": score}}``.
- ``text``: a string.
- ``rewrite``: ``{"response": <id>, "text": "..."}``.
- ``flags``: ``{"<response id>": ["<flag id>", ...]}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_QUESTIONS = 20
MAX_TEXT_LENGTH = 20_000


class SchemaError(ValueError):
    """A question schema that cannot be used; ``errors`` maps a field path to a message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors.items()))
        self.errors = errors


class AnswerError(ValueError):
    """Answers that do not fit the schema; ``errors`` maps a field path to a message."""

    def __init__(self, errors: dict[str, str]):
        super().__init__("; ".join(f"{path}: {message}" for path, message in errors.items()))
        self.errors = errors


@dataclass(frozen=True)
class Choice:
    id: str
    label: str


@dataclass(frozen=True)
class Question:
    id: str
    type: str
    label: str
    required: bool = True
    # pairwise
    strength_labels: tuple[str, ...] = ()
    allow_tie: bool = True
    allow_both_bad: bool = False
    # ranking
    allow_ties: bool = False
    # likert
    aspects: tuple[Choice, ...] = ()
    scale_min: int = 1
    scale_max: int = 5
    scale_labels: dict[int, str] = field(default_factory=dict)
    # flags
    options: tuple[Choice, ...] = ()
    # text, rewrite
    max_length: int = MAX_TEXT_LENGTH

    def to_json(self) -> dict[str, Any]:
        """The canonical JSON form, as stored on the campaign."""
        data: dict[str, Any] = {"id": self.id, "type": self.type, "label": self.label, "required": self.required}
        if self.type == "pairwise":
            data |= {
                "strength_labels": list(self.strength_labels),
                "allow_tie": self.allow_tie,
                "allow_both_bad": self.allow_both_bad,
            }
        elif self.type == "ranking":
            data["allow_ties"] = self.allow_ties
        elif self.type == "likert":
            data |= {
                "aspects": [{"id": a.id, "label": a.label} for a in self.aspects],
                "scale": {
                    "min": self.scale_min,
                    "max": self.scale_max,
                    "labels": {str(k): v for k, v in sorted(self.scale_labels.items())},
                },
            }
        elif self.type == "flags":
            data["options"] = [{"id": o.id, "label": o.label} for o in self.options]
        elif self.type in ("text", "rewrite"):
            data["max_length"] = self.max_length
        return data


@dataclass(frozen=True)
class QuestionSchema:
    questions: tuple[Question, ...]

    def to_json(self) -> dict[str, Any]:
        return {"questions": [q.to_json() for q in self.questions]}

    def has_type(self, question_type: str) -> bool:
        return any(q.type == question_type for q in self.questions)

    def check_response_count(self, count: int) -> str | None:
        """Why a task with ``count`` responses cannot be asked these questions, or None."""
        if count < 2:
            return f"a task needs at least 2 responses to compare, got {count}"
        if self.has_type("pairwise") and count != 2:
            return f"pairwise questions compare exactly 2 responses, got {count}"
        return None


QUESTION_TYPES = ("pairwise", "ranking", "likert", "text", "rewrite", "flags")
_COMMON_KEYS = {"id", "type", "label", "required"}
_TYPE_KEYS = {
    "pairwise": {"strength_labels", "allow_tie", "allow_both_bad"},
    "ranking": {"allow_ties"},
    "likert": {"aspects", "scale"},
    "text": {"max_length"},
    "rewrite": {"max_length"},
    "flags": {"options"},
}
# Free text, rewrites and flags are extras a reviewer adds when they have something to say.
OPTIONAL_BY_DEFAULT = {"text", "rewrite", "flags"}
# Defaults for a question that names only its type: the common cases from the literature.
DEFAULT_STRENGTH_LABELS = ("better", "much better")
DEFAULT_LIKERT_ASPECTS = (Choice("helpfulness", "Helpfulness"), Choice("honesty", "Honesty"))
DEFAULT_FLAG_OPTIONS = (
    Choice("unsafe", "Unsafe or harmful"),
    Choice("factual_error", "Factual error"),
    Choice("refusal", "Needless refusal"),
)


class _Collector:
    def __init__(self) -> None:
        self.errors: dict[str, str] = {}

    def add(self, path: str, message: str) -> None:
        self.errors.setdefault(path, message)


def _label(raw: Any, path: str, errors: _Collector, default: str) -> str:
    if raw is None:
        return default
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 500:
        errors.add(path, "must be a non-empty string of at most 500 characters")
        return default
    return raw.strip()


def _bool(raw: Any, path: str, errors: _Collector, default: bool) -> bool:
    if raw is None:
        return default
    if not isinstance(raw, bool):
        errors.add(path, "must be true or false")
        return default
    return raw


def _choices(raw: Any, path: str, errors: _Collector, default: tuple[Choice, ...]) -> tuple[Choice, ...]:
    if raw is None:
        return default
    if not isinstance(raw, list) or not raw:
        errors.add(path, "must be a non-empty list of {id, label} objects")
        return default
    choices, seen = [], set()
    for index, item in enumerate(raw):
        item_path = f"{path}[{index}]"
        if isinstance(item, str):
            item = {"id": item}
        if not isinstance(item, dict) or not isinstance(item.get("id"), str) or not IDENTIFIER.match(item["id"]):
            errors.add(item_path, "needs an id of lowercase letters, digits and underscores")
            continue
        if item["id"] in seen:
            errors.add(item_path, f"duplicate id {item['id']!r}")
            continue
        seen.add(item["id"])
        label = _label(item.get("label"), f"{item_path}.label", errors, item["id"].replace("_", " ").capitalize())
        choices.append(Choice(item["id"], label))
    return tuple(choices)


def _parse_question(raw: Any, path: str, errors: _Collector) -> Question | None:
    if not isinstance(raw, dict):
        errors.add(path, "must be an object")
        return None
    question_id = raw.get("id")
    if not isinstance(question_id, str) or not IDENTIFIER.match(question_id):
        errors.add(f"{path}.id", "must start with a lowercase letter and use only a-z, 0-9 and _ (64 at most)")
        return None
    question_type = raw.get("type")
    if question_type not in QUESTION_TYPES:
        errors.add(f"{path}.type", f"must be one of {', '.join(QUESTION_TYPES)}")
        return None
    unknown = set(raw) - _COMMON_KEYS - _TYPE_KEYS[question_type]
    if unknown:
        errors.add(path, f"unknown field(s) for a {question_type} question: {', '.join(sorted(unknown))}")

    fields: dict[str, Any] = {
        "id": question_id,
        "type": question_type,
        "label": _label(raw.get("label"), f"{path}.label", errors, question_id.replace("_", " ").capitalize()),
        "required": _bool(raw.get("required"), f"{path}.required", errors, question_type not in OPTIONAL_BY_DEFAULT),
    }
    if question_type == "pairwise":
        strength_labels = raw.get("strength_labels", list(DEFAULT_STRENGTH_LABELS))
        if (
            not isinstance(strength_labels, list)
            or not 1 <= len(strength_labels) <= 3
            or not all(isinstance(s, str) and s.strip() for s in strength_labels)
        ):
            errors.add(f"{path}.strength_labels", "must list 1 to 3 labels, weakest first")
            strength_labels = list(DEFAULT_STRENGTH_LABELS)
        fields["strength_labels"] = tuple(s.strip() for s in strength_labels)
        fields["allow_tie"] = _bool(raw.get("allow_tie"), f"{path}.allow_tie", errors, True)
        fields["allow_both_bad"] = _bool(raw.get("allow_both_bad"), f"{path}.allow_both_bad", errors, False)
    elif question_type == "ranking":
        fields["allow_ties"] = _bool(raw.get("allow_ties"), f"{path}.allow_ties", errors, False)
    elif question_type == "likert":
        fields["aspects"] = _choices(raw.get("aspects"), f"{path}.aspects", errors, DEFAULT_LIKERT_ASPECTS)
        scale = raw.get("scale", {})
        if not isinstance(scale, dict):
            errors.add(f"{path}.scale", "must be an object with min, max and optional labels")
            scale = {}
        low, high = scale.get("min", 1), scale.get("max", 5)
        if not (isinstance(low, int) and isinstance(high, int)) or isinstance(low, bool) or isinstance(high, bool):
            errors.add(f"{path}.scale", "min and max must be integers")
        elif not (high > low and high - low <= 10):
            errors.add(f"{path}.scale", "max must be greater than min, with at most 11 points")
        else:
            fields["scale_min"], fields["scale_max"] = low, high
        labels = scale.get("labels", {})
        parsed_labels: dict[int, str] = {}
        if not isinstance(labels, dict):
            errors.add(f"{path}.scale.labels", "must map scale points to labels")
        else:
            for key, value in labels.items():
                try:
                    point = int(key)
                except (TypeError, ValueError):
                    errors.add(f"{path}.scale.labels", f"{key!r} is not a scale point")
                    continue
                if not fields.get("scale_min", 1) <= point <= fields.get("scale_max", 5):
                    errors.add(f"{path}.scale.labels", f"{point} is outside the scale")
                    continue
                parsed_labels[point] = _label(value, f"{path}.scale.labels.{key}", errors, str(point))
        fields["scale_labels"] = parsed_labels
    elif question_type == "flags":
        fields["options"] = _choices(raw.get("options"), f"{path}.options", errors, DEFAULT_FLAG_OPTIONS)
    if question_type in ("text", "rewrite"):
        max_length = raw.get("max_length", MAX_TEXT_LENGTH)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or not 1 <= max_length <= MAX_TEXT_LENGTH:
            errors.add(f"{path}.max_length", f"must be an integer from 1 to {MAX_TEXT_LENGTH}")
            max_length = MAX_TEXT_LENGTH
        fields["max_length"] = max_length
    return Question(**fields)


def parse_question_schema(raw: Any) -> QuestionSchema:
    """Validate a campaign's question schema; raises ``SchemaError`` listing every problem."""
    errors = _Collector()
    if not isinstance(raw, dict):
        raise SchemaError({"schema": 'must be an object like {"questions": [...]}'})
    unknown = set(raw) - {"questions"}
    if unknown:
        errors.add("schema", f"unknown field(s): {', '.join(sorted(unknown))}")
    raw_questions = raw.get("questions")
    if not isinstance(raw_questions, list) or not raw_questions:
        raise SchemaError({"questions": "must be a non-empty list"})
    if len(raw_questions) > MAX_QUESTIONS:
        errors.add("questions", f"at most {MAX_QUESTIONS} questions")
    questions: list[Question] = []
    seen: set[str] = set()
    for index, raw_question in enumerate(raw_questions):
        question = _parse_question(raw_question, f"questions[{index}]", errors)
        if question is None:
            continue
        if question.id in seen:
            errors.add(f"questions[{index}].id", f"duplicate question id {question.id!r}")
            continue
        seen.add(question.id)
        questions.append(question)
    comparison_types = [q.type for q in questions if q.type in ("pairwise", "ranking")]
    if len(comparison_types) > 1:
        errors.add("questions", "ask at most one pairwise or ranking question per campaign")
    if questions and not any(q.type in ("pairwise", "ranking", "likert", "rewrite") for q in questions):
        errors.add("questions", "include a pairwise, ranking, likert or rewrite question: it is what datasets use")
    if questions and not any(q.required for q in questions):
        errors.add("questions", "make at least one question required, or a judgement could be empty")
    if errors.errors:
        raise SchemaError(errors.errors)
    return QuestionSchema(tuple(questions))


# --- answers -------------------------------------------------------------------------------


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _response_key(raw: Any, response_ids: Sequence[int]) -> int | None:
    """Response ids arrive as JSON numbers, or as strings when they are object keys."""
    try:
        value = int(raw) if isinstance(raw, str) else raw
    except ValueError:
        return None
    return value if _is_int(value) and value in response_ids else None


def _check_pairwise(q: Question, answer: Any, response_ids: Sequence[int], errors: _Collector) -> Any:
    path = q.id
    if not isinstance(answer, dict):
        errors.add(path, "must be an object with winner and strength")
        return None
    unknown = set(answer) - {"winner", "strength", "both_bad"}
    if unknown:
        errors.add(path, f"unknown field(s): {', '.join(sorted(unknown))}")
    winner, strength = answer.get("winner"), answer.get("strength")
    both_bad = answer.get("both_bad", False)
    if not isinstance(both_bad, bool):
        errors.add(f"{path}.both_bad", "must be true or false")
    elif both_bad and not q.allow_both_bad:
        errors.add(f"{path}.both_bad", "this question does not offer 'both bad'")
    if winner is None:
        if not q.allow_tie:
            errors.add(f"{path}.winner", "pick a winner: this question does not allow ties")
        elif strength not in (0, None):
            errors.add(f"{path}.strength", "a tie has strength 0")
        return {"winner": None, "strength": 0, "both_bad": both_bad is True}
    if _response_key(winner, response_ids) is None or isinstance(winner, str):
        errors.add(f"{path}.winner", "must be the id of one of this task's responses, or null for a tie")
        return None
    if not _is_int(strength) or not 1 <= strength <= len(q.strength_labels):
        errors.add(f"{path}.strength", f"must be an integer from 1 to {len(q.strength_labels)}")
        return None
    return {"winner": winner, "strength": strength, "both_bad": both_bad is True}


def _check_ranking(q: Question, answer: Any, response_ids: Sequence[int], errors: _Collector) -> Any:
    path = f"{q.id}.order"
    order = answer.get("order") if isinstance(answer, dict) else None
    if not isinstance(order, list) or not all(isinstance(group, list) and group for group in order):
        errors.add(path, "must be a list of non-empty lists of response ids, best first")
        return None
    flat = [item for group in order for item in group]
    if any(_response_key(item, response_ids) is None or isinstance(item, str) for item in flat):
        errors.add(path, "contains an id that is not one of this task's responses")
        return None
    if len(flat) != len(set(flat)) or set(flat) != set(response_ids):
        errors.add(path, "must place every response exactly once")
        return None
    if not q.allow_ties and any(len(group) > 1 for group in order):
        errors.add(path, "this question does not allow ties")
        return None
    return {"order": order}


def _check_likert(q: Question, answer: Any, response_ids: Sequence[int], errors: _Collector) -> Any:
    if not isinstance(answer, dict):
        errors.add(q.id, "must map each response id to its scores")
        return None
    cleaned: dict[str, dict[str, int]] = {}
    for key, scores in answer.items():
        response_id = _response_key(key, response_ids)
        if response_id is None:
            errors.add(f"{q.id}.{key}", "is not one of this task's responses")
            continue
        if not isinstance(scores, dict):
            errors.add(f"{q.id}.{key}", "must map aspect ids to scores")
            continue
        aspect_ids = {a.id for a in q.aspects}
        for aspect, score in scores.items():
            if aspect not in aspect_ids:
                errors.add(f"{q.id}.{key}.{aspect}", "is not an aspect of this question")
            elif not _is_int(score) or not q.scale_min <= score <= q.scale_max:
                errors.add(f"{q.id}.{key}.{aspect}", f"must be an integer from {q.scale_min} to {q.scale_max}")
        cleaned[str(response_id)] = {a: s for a, s in scores.items() if a in aspect_ids}
    if q.required:
        for response_id in response_ids:
            for aspect in q.aspects:
                if aspect.id not in cleaned.get(str(response_id), {}):
                    errors.add(f"{q.id}.{response_id}.{aspect.id}", "is required")
    return cleaned


def _check_text(q: Question, answer: Any, response_ids: Sequence[int], errors: _Collector) -> Any:
    if not isinstance(answer, str):
        errors.add(q.id, "must be text")
        return None
    if len(answer) > q.max_length:
        errors.add(q.id, f"must be at most {q.max_length} characters")
        return None
    if q.required and not answer.strip():
        errors.add(q.id, "is required")
    return answer


def _check_rewrite(q: Question, answer: Any, response_ids: Sequence[int], errors: _Collector) -> Any:
    if not isinstance(answer, dict) or set(answer) - {"response", "text"}:
        errors.add(q.id, "must be an object with response and text")
        return None
    if _response_key(answer.get("response"), response_ids) is None or isinstance(answer.get("response"), str):
        errors.add(f"{q.id}.response", "must be the id of the response that was rewritten")
        return None
    text = answer.get("text")
    if not isinstance(text, str) or not text.strip():
        errors.add(f"{q.id}.text", "must be the rewritten response")
        return None
    if len(text) > q.max_length:
        errors.add(f"{q.id}.text", f"must be at most {q.max_length} characters")
        return None
    return {"response": answer["response"], "text": text}


def _check_flags(q: Question, answer: Any, response_ids: Sequence[int], errors: _Collector) -> Any:
    if not isinstance(answer, dict):
        errors.add(q.id, "must map response ids to lists of flag ids")
        return None
    option_ids = {o.id for o in q.options}
    cleaned: dict[str, list[str]] = {}
    for key, flags in answer.items():
        response_id = _response_key(key, response_ids)
        if response_id is None:
            errors.add(f"{q.id}.{key}", "is not one of this task's responses")
        elif not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
            errors.add(f"{q.id}.{key}", "must be a list of flag ids")
        elif set(flags) - option_ids:
            errors.add(f"{q.id}.{key}", f"unknown flag(s): {', '.join(sorted(set(flags) - option_ids))}")
        elif flags:
            cleaned[str(response_id)] = sorted(set(flags))
    return cleaned


_CHECKERS = {
    "pairwise": _check_pairwise,
    "ranking": _check_ranking,
    "likert": _check_likert,
    "text": _check_text,
    "rewrite": _check_rewrite,
    "flags": _check_flags,
}


def validate_answers(schema: QuestionSchema, answers: Any, response_ids: Sequence[int]) -> dict[str, Any]:
    """Check a reviewer's answers for one task; returns them cleaned, or raises ``AnswerError``."""
    if not isinstance(answers, dict):
        raise AnswerError({"answers": "must be an object keyed by question id"})
    errors = _Collector()
    known = {q.id for q in schema.questions}
    for key in answers:
        if key not in known:
            errors.add(str(key), "is not a question of this campaign")
    cleaned: dict[str, Any] = {}
    for question in schema.questions:
        answer = answers.get(question.id)
        if answer is None or answer == "" or answer == {}:
            if question.required:
                errors.add(question.id, "is required")
            continue
        value = _CHECKERS[question.type](question, answer, response_ids, errors)
        if value not in (None, {}, ""):
            cleaned[question.id] = value
    if errors.errors:
        raise AnswerError(errors.errors)
    return cleaned


def describe_answer(question: Question, answer: Any, names: dict[int, str]) -> str:
    """One reviewer's answer to ``question`` in the question's own terms, for people to read.

    ``names`` maps response ids to how the reader knows the responses ("Response 2"). E.g.
    "Response 2, much better", "Tie (both bad)", "Response 1 > Response 3 = Response 2".
    """

    def name(response_id: Any) -> str:
        key = _response_key(response_id, list(names))
        return names[key] if key is not None else f"response {response_id}"

    if answer is None:
        return "—"
    if question.type == "pairwise":
        both_bad = " (both bad)" if answer.get("both_bad") else ""
        if answer.get("winner") is None:
            return f"Tie{both_bad}"
        strength = answer.get("strength")
        labels = question.strength_labels
        said = labels[strength - 1] if _is_int(strength) and 1 <= strength <= len(labels) else f"strength {strength}"
        return f"{name(answer['winner'])}, {said}{both_bad}"
    if question.type == "ranking":
        return " > ".join(" = ".join(name(item) for item in group) for group in answer.get("order", []))
    if question.type == "likert":
        aspects = {a.id: a.label for a in question.aspects}
        return "; ".join(
            f"{name(key)}: " + ", ".join(f"{aspects.get(aspect, aspect)} {score}" for aspect, score in scores.items())
            for key, scores in answer.items()
        )
    if question.type == "flags":
        options = {o.id: o.label for o in question.options}
        return "; ".join(
            f"{name(key)}: " + ", ".join(options.get(flag, flag) for flag in flags) for key, flags in answer.items()
        )
    if question.type == "rewrite":
        return f"Rewrote {name(answer.get('response'))}: {answer.get('text', '')}"
    return str(answer)
