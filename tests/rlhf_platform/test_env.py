import pytest
from django.core.exceptions import ImproperlyConfigured

from rlhf_platform.env import env_bool, env_float, env_int, env_list, env_str


@pytest.mark.parametrize("raw", ["1", "true", "True", "YES", "on", " on "])
def test_it_reads_true_values(raw):
    assert env_bool("FLAG", environ={"FLAG": raw}) is True


@pytest.mark.parametrize("raw", ["0", "false", "No", "off", ""])
def test_it_reads_false_values(raw):
    assert env_bool("FLAG", default=True, environ={"FLAG": raw}) is False


def test_it_uses_the_default_when_a_bool_is_missing():
    assert env_bool("FLAG", default=True, environ={}) is True
    assert env_bool("FLAG", environ={}) is False


def test_it_names_the_variable_of_a_bad_bool():
    with pytest.raises(ImproperlyConfigured, match=r"FLAG must be a boolean .* got 'maybe'"):
        env_bool("FLAG", environ={"FLAG": "maybe"})


def test_it_reads_integers_and_defaults():
    assert env_int("N", 7, environ={"N": " 42 "}) == 42
    assert env_int("N", 7, environ={}) == 7
    assert env_int("N", 7, environ={"N": ""}) == 7


def test_it_rejects_bad_integers():
    with pytest.raises(ImproperlyConfigured, match="N must be an integer, got 'ten'"):
        env_int("N", environ={"N": "ten"})
    with pytest.raises(ImproperlyConfigured, match="N must be at least 0, got -1"):
        env_int("N", minimum=0, environ={"N": "-1"})


def test_it_reads_numbers_and_rejects_bad_ones():
    assert env_float("X", 1.0, environ={"X": " 0.25 "}) == 0.25
    assert env_float("X", 1.0, environ={}) == 1.0
    for raw, message in (("fast", "a number"), ("nan", "a finite number"), ("inf", "a finite number")):
        with pytest.raises(ImproperlyConfigured, match=f"X must be {message}"):
            env_float("X", environ={"X": raw})
    with pytest.raises(ImproperlyConfigured, match=r"X must be at least 0\.05, got 0\.0"):
        env_float("X", minimum=0.05, environ={"X": "0"})


def test_it_splits_lists_and_drops_blanks():
    assert env_list("HOSTS", environ={"HOSTS": "a.example, b.example,,"}) == ["a.example", "b.example"]
    assert env_list("HOSTS", ["x"], environ={}) == ["x"]
    assert env_list("HOSTS", ["x"], environ={"HOSTS": ""}) == []


def test_it_reads_strings():
    assert env_str("NAME", "fallback", environ={"NAME": "value"}) == "value"
    assert env_str("NAME", "fallback", environ={}) == "fallback"
