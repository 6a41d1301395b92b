import pytest

from labeling.schema import AnswerError, SchemaError, parse_question_schema, validate_answers

RESPONSES = [11, 22]


def errors_of(raw) -> dict[str, str]:
    with pytest.raises(SchemaError) as caught:
        parse_question_schema(raw)
    return caught.value.errors


def answer_errors(schema, answers, responses=RESPONSES) -> dict[str, str]:
    with pytest.raises(AnswerError) as caught:
        validate_answers(parse_question_schema(schema), answers, responses)
    return caught.value.errors


def test_it_fills_defaults_for_a_bare_pairwise_question():
    schema = parse_question_schema({"questions": [{"id": "preference", "type": "pairwise"}]})
    (question,) = schema.questions
    assert question.strength_labels == ("better", "much better")
    assert question.allow_tie and question.required
    assert schema.to_json()["questions"][0]["strength_labels"] == ["better", "much better"]


def test_it_round_trips_through_its_canonical_json():
    raw = {
        "questions": [
            {"id": "q", "type": "likert", "aspects": ["helpfulness", {"id": "honesty", "label": "Honest?"}],
             "scale": {"min": 1, "max": 7, "labels": {"1": "Awful", "7": "Great"}}},
            {"id": "flags", "type": "flags", "options": ["unsafe"]},
            {"id": "fix", "type": "rewrite"},
        ]
    }  # fmt: skip
    schema = parse_question_schema(raw)
    assert parse_question_schema(schema.to_json()) == schema
    assert schema.questions[0].aspects[0].label == "Helpfulness"
    assert schema.questions[0].scale_labels == {1: "Awful", 7: "Great"}


@pytest.mark.parametrize(
    ("raw", "path", "fragment"),
    [
        ([], "schema", "must be an object"),
        ({"questions": []}, "questions", "non-empty list"),
        ({"questions": [{"id": "Bad Id", "type": "pairwise"}]}, "questions[0].id", "lowercase"),
        ({"questions": [{"id": "q", "type": "stars"}]}, "questions[0].type", "must be one of"),
        ({"questions": [{"id": "q", "type": "pairwise", "colour": 1}]}, "questions[0]", "unknown field(s)"),
        ({"questions": [{"id": "q", "type": "pairwise", "strength_labels": []}]}, "questions[0].strength_labels", "1 to 3"),
        ({"questions": [{"id": "q", "type": "likert", "scale": {"min": 5, "max": 1}}]}, "questions[0].scale", "greater"),
        ({"questions": [{"id": "q", "type": "pairwise"}, {"id": "q", "type": "text"}]}, "questions[1].id", "duplicate"),
        ({"questions": [{"id": "q", "type": "pairwise"}, {"id": "r", "type": "ranking"}]}, "questions", "at most one"),
        ({"questions": [{"id": "q", "type": "text"}]}, "questions", "include a pairwise"),
        ({"questions": [{"id": "q", "type": "ranking", "allow_ties": "yes"}]}, "questions[0].allow_ties", "true or false"),
        ({"questions": [{"id": "q", "type": "rewrite"}, {"id": "f", "type": "flags"}]}, "questions", "at least one question required"),
    ],
)  # fmt: skip
def test_it_names_the_field_of_each_schema_error(raw, path, fragment):
    errors = errors_of(raw)
    assert path in errors, errors
    assert fragment in errors[path]


def test_it_reports_every_error_at_once():
    errors = errors_of({"questions": [{"id": "q", "type": "stars"}, {"id": "9", "type": "pairwise"}]})
    assert {"questions[0].type", "questions[1].id"} <= set(errors)


def test_it_checks_response_counts_for_pairwise_questions():
    pairwise = parse_question_schema({"questions": [{"id": "q", "type": "pairwise"}]})
    ranking = parse_question_schema({"questions": [{"id": "q", "type": "ranking"}]})
    assert pairwise.check_response_count(2) is None
    assert "exactly 2" in pairwise.check_response_count(3)
    assert ranking.check_response_count(4) is None
    assert "at least 2" in ranking.check_response_count(1)


PAIRWISE = {"questions": [{"id": "pref", "type": "pairwise", "allow_both_bad": True}]}


def test_it_accepts_pairwise_answers_by_response_id():
    cleaned = validate_answers(parse_question_schema(PAIRWISE), {"pref": {"winner": 22, "strength": 2}}, RESPONSES)
    assert cleaned == {"pref": {"winner": 22, "strength": 2, "both_bad": False}}
    tie = validate_answers(parse_question_schema(PAIRWISE), {"pref": {"winner": None, "both_bad": True}}, RESPONSES)
    assert tie == {"pref": {"winner": None, "strength": 0, "both_bad": True}}


@pytest.mark.parametrize(
    ("answer", "path"),
    [
        ({"winner": 0, "strength": 1}, "pref.winner"),  # a screen position, not an id
        ({"winner": "11", "strength": 1}, "pref.winner"),
        ({"winner": 11, "strength": 3}, "pref.strength"),
        ({"winner": 11}, "pref.strength"),
        ({"winner": None, "strength": 2}, "pref.strength"),
    ],
)
def test_it_rejects_bad_pairwise_answers(answer, path):
    assert path in answer_errors(PAIRWISE, {"pref": answer})


def test_it_rejects_ties_and_both_bad_where_not_offered():
    schema = {"questions": [{"id": "pref", "type": "pairwise", "allow_tie": False}]}
    assert "pref.winner" in answer_errors(schema, {"pref": {"winner": None}})
    assert "pref.both_bad" in answer_errors(schema, {"pref": {"winner": 11, "strength": 1, "both_bad": True}})


def test_it_requires_required_questions_and_rejects_unknown_ones():
    errors = answer_errors(PAIRWISE, {"other": 1})
    assert errors == {"other": "is not a question of this campaign", "pref": "is required"}


RANKING = {"questions": [{"id": "rank", "type": "ranking"}]}


def test_it_checks_rankings_cover_every_response_once():
    responses = [1, 2, 3]
    ok = validate_answers(parse_question_schema(RANKING), {"rank": {"order": [[3], [1], [2]]}}, responses)
    assert ok == {"rank": {"order": [[3], [1], [2]]}}
    assert "rank.order" in answer_errors(RANKING, {"rank": {"order": [[3], [1]]}}, responses)
    assert "rank.order" in answer_errors(RANKING, {"rank": {"order": [[3], [1], [1]]}}, responses)
    assert "rank.order" in answer_errors(RANKING, {"rank": {"order": [[3], [1], [9]]}}, responses)
    ties = answer_errors(RANKING, {"rank": {"order": [[3, 1], [2]]}}, responses)
    assert "does not allow ties" in ties["rank.order"]


def test_it_accepts_ranking_ties_when_allowed():
    schema = parse_question_schema({"questions": [{"id": "rank", "type": "ranking", "allow_ties": True}]})
    assert validate_answers(schema, {"rank": {"order": [[3, 1], [2]]}}, [1, 2, 3])


LIKERT = {"questions": [{"id": "l", "type": "likert", "aspects": ["helpfulness"], "scale": {"min": 1, "max": 5}}]}


def test_it_checks_likert_scores_per_response_and_aspect():
    ok = validate_answers(
        parse_question_schema(LIKERT), {"l": {"11": {"helpfulness": 4}, "22": {"helpfulness": 1}}}, RESPONSES
    )
    assert ok == {"l": {"11": {"helpfulness": 4}, "22": {"helpfulness": 1}}}
    errors = answer_errors(LIKERT, {"l": {"11": {"helpfulness": 6}, "33": {"helpfulness": 1}}})
    assert errors["l.11.helpfulness"] == "must be an integer from 1 to 5"
    assert "l.33" in errors
    assert errors["l.22.helpfulness"] == "is required"


def test_it_checks_text_rewrite_and_flags():
    schema = {
        "questions": [
            {"id": "pref", "type": "pairwise"},
            {"id": "why", "type": "text", "required": True, "max_length": 10},
            {"id": "fix", "type": "rewrite"},
            {"id": "flags", "type": "flags", "options": ["unsafe"]},
        ]
    }
    good = {
        "pref": {"winner": 11, "strength": 1},
        "why": "clearer",
        "fix": {"response": 22, "text": "Better."},
        "flags": {"22": ["unsafe"], "11": []},
    }
    cleaned = validate_answers(parse_question_schema(schema), good, RESPONSES)
    assert cleaned["flags"] == {"22": ["unsafe"]}
    assert cleaned["fix"] == {"response": 22, "text": "Better."}
    errors = answer_errors(
        schema,
        {**good, "why": "far too long for it", "fix": {"response": 99, "text": "x"}, "flags": {"11": ["rude"]}},
    )
    assert set(errors) == {"why", "fix.response", "flags.11"}
    assert answer_errors(schema, {**good, "why": "  "}) == {"why": "is required"}
