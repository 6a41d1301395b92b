"""Compare models rather than responses: win rates and a Bradley-Terry leaderboard from battles.

This is the Chatbot Arena method (Chiang et al. 2024, "Chatbot Arena: An Open Platform for
Evaluating LLMs by Human Preference", section 5), over the models that wrote the responses
reviewers compared.

A battles frame has one row per battle, one reviewer's verdict on one answer of ``model_a``
against one answer of ``model_b``, with columns ``model_a, model_b, outcome`` (other columns are
ignored). Models are named by strings, and a battle names two different models. ``outcome`` is one
of ``OUTCOMES``:

- ``"a"``: ``model_a``'s answer was preferred; ``"b"``: ``model_b``'s answer was preferred;
- ``"tie"``: neither (a pairwise tie, or the same group of a ranking);
- ``"both_bad"``: the reviewer marked both answers bad, whichever they preferred.

A tie counts half a win for each side. A both-bad verdict says that neither answer is acceptable,
not which one is better, so it is counted and reported apart, and left out of every rate and of
the fit.

- ``win_rate``: one model against another, with a Wilson score interval.
- ``head_to_head``: the win rate of every model against every other one, for the matrix plot.
- ``leaderboard``: Bradley-Terry strengths over models, fitted with ``methods.bradley_terry``, with
  bootstrap intervals, ranks and the number of battles per model.

Nothing here imports Django or touches the database.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.stats import norm

from labeling.aggregation.methods import bradley_terry

OUTCOMES = ("a", "b", "tie", "both_bad")
BATTLE_COLUMNS = ("model_a", "model_b", "outcome")
# Ratings on the Elo-like scale Chatbot Arena publishes: 400 points per factor 10 in the odds, so
# a model rated 400 points above another is expected to win 10 of 11 battles against it (ties
# counting half); the models of a group average ELO_BASE.
ELO_SCALE = 400 / math.log(10)  # rating points per logit of strength
ELO_BASE = 1000.0
LEADERBOARD_COLUMNS = (
    "model",
    "rating",
    "rating_low",
    "rating_high",
    "strength",
    "rank",
    "n_battles",
    "wins",
    "losses",
    "ties",
    "both_bad",
    "group",
)
HEAD_TO_HEAD_COLUMNS = ("model", "opponent", "wins", "losses", "ties", "both_bad", "n", "win_rate")
_TALLY_COLUMNS = ("wins", "losses", "ties", "both_bad")


@dataclass(frozen=True, slots=True)
class WinRate:
    """``model``'s record against ``opponent``, and its win rate with a ``confidence`` interval.

    ``win_rate = (wins + ties / 2) / n`` where ``n = wins + losses + ties``; ``both_bad`` verdicts
    are outside ``n``. ``win_rate``, ``low`` and ``high`` are None while ``n`` is 0.
    """

    model: str
    opponent: str
    wins: int
    losses: int
    ties: int
    both_bad: int
    win_rate: float | None
    low: float | None
    high: float | None
    confidence: float

    @property
    def n(self) -> int:
        """Verdicts in the rate: wins, losses and ties."""
        return self.wins + self.losses + self.ties

    @property
    def n_judgements(self) -> int:
        """Every battle between the two models, both-bad ones included."""
        return self.n + self.both_bad


def wilson_interval(score: float, n: int, *, confidence: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval (Wilson 1927) for a share ``score`` (0..1) observed over ``n`` trials.

    It stays inside [0, 1] and keeps a sensible width for small ``n`` and for shares near 0 or 1,
    where the normal approximation collapses to a point. Applied to a win rate with ties counting
    half, it is conservative: a tie's score (0.5) varies less than a win or a loss, so the rate's
    variance is at most ``score * (1 - score) / n``, the variance the interval assumes.
    """
    if n <= 0:
        raise ValueError("n must be positive")
    if not 0.0 <= score <= 1.0:
        raise ValueError("score must be a share from 0 to 1")
    z = float(norm.ppf(0.5 + confidence / 2))
    z2n = z * z / n
    centre = (score + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(score * (1 - score) / n + z2n / (4 * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def win_rate(battles: pd.DataFrame, *, model: str, opponent: str, confidence: float = 0.95) -> WinRate:
    """``model``'s win rate against ``opponent`` over the battles between the two (either side).

    Ties count half; both-bad verdicts are counted apart and left out of the rate. The interval is
    Wilson's (``wilson_interval``), over the n verdicts taken as independent. Judgements of the same
    task share its two answers, so with several judgements per task the interval says how sure we
    are of these answers' verdicts more than of the models' on other prompts.
    """
    if model == opponent:
        raise ValueError("a win rate compares two different models")
    _check_confidence(confidence)
    tally = _tally(battles)
    row = tally[(tally["model"] == model) & (tally["opponent"] == opponent)]
    wins, losses, ties, both_bad = (int(row[column].sum()) for column in _TALLY_COLUMNS)
    n = wins + losses + ties
    rate = low = high = None
    if n:
        rate = (wins + ties / 2) / n
        low, high = wilson_interval(rate, n, confidence=confidence)
    return WinRate(model, opponent, wins, losses, ties, both_bad, rate, low, high, confidence)


def head_to_head(battles: pd.DataFrame, *, models: Sequence[str] | None = None) -> pd.DataFrame:
    """The record of every model against every other one: row ``model`` against column ``opponent``.

    Returns ``model, opponent, wins, losses, ties, both_bad, n, win_rate`` with one row per ordered
    pair of different models, in the order of ``models`` (default: by name), pairs that never met
    included with ``n`` 0 and ``win_rate`` NaN. ``win_rate`` counts ties half and leaves both-bad
    verdicts out, as ``win_rate`` does; the rows (m, o) and (o, m) add up to 1.
    """
    tally = _tally(battles)
    if models is None:
        models = sorted(set(tally["model"]))
    grid = pd.DataFrame(
        [(model, opponent) for model in models for opponent in models if model != opponent],
        columns=["model", "opponent"],
    )
    if grid.empty:
        return _empty_head_to_head()
    table = grid.merge(tally, on=["model", "opponent"], how="left")
    table[list(_TALLY_COLUMNS)] = table[list(_TALLY_COLUMNS)].fillna(0).astype(np.int64)
    table["n"] = table["wins"] + table["losses"] + table["ties"]
    with np.errstate(invalid="ignore", divide="ignore"):
        table["win_rate"] = np.where(
            table["n"] > 0, (table["wins"] + table["ties"] / 2) / table["n"].where(table["n"] > 0, 1), np.nan
        )
    return table[list(HEAD_TO_HEAD_COLUMNS)]


def leaderboard(
    battles: pd.DataFrame,
    *,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    l2: float = 0.1,
) -> pd.DataFrame:
    """Models ranked by Bradley-Terry strength, with bootstrap intervals; by group, then best first.

    The fit is ``methods.bradley_terry`` with the models as the responses of one task:
    ``P(m beats o) = sigmoid(s_m - s_o)``, ties half a win each way, both-bad battles left out, and
    an L2 penalty ``l2`` (a Gaussian prior of variance 1/l2 logits^2 on each strength) that keeps a
    model that won every battle finite and centres the strengths of each group at 0. The bootstrap
    resamples the battles with replacement ``n_bootstrap`` times (multinomial counts over the
    distinct (pair, outcome) cells, seeded by ``seed``, so the same battles give the same table)
    and refits; all resamples are fitted in one call, as tasks of their own.

    Columns (``LEADERBOARD_COLUMNS``):

    - ``rating``, ``rating_low``, ``rating_high``: the Elo-like rating ``ELO_BASE + ELO_SCALE *
      strength`` (400 points per factor 10 in the odds), and its percentile ``confidence``
      interval over the resamples;
    - ``strength``: the fitted log-strength in logits;
    - ``rank``: 1 + the number of models of the same group whose interval lies wholly above this
      model's (Chatbot Arena's rank: models whose intervals overlap share a rank);
    - ``n_battles``: the model's battles, both-bad ones included; ``wins, losses, ties, both_bad``;
    - ``group``: which connected part of the comparison graph the model is in (0 for the largest).
      Ratings of different groups were never compared: they share a scale by convention only, so
      the rows come group by group.

    A model whose every battle was both-bad has no rating (NaN) and ranks last.
    """
    if n_bootstrap < 0:
        raise ValueError("n_bootstrap must be 0 or more")
    if l2 <= 0:
        raise ValueError("l2 must be positive: without it a model that won every battle has no finite strength")
    _check_confidence(confidence)
    tally = _tally(battles)
    if tally.empty:
        return _empty_leaderboard()
    per_model = tally.groupby("model")[list(_TALLY_COLUMNS)].sum()
    models = list(per_model.index)
    code = {model: index for index, model in enumerate(models)}

    # Distinct (a, b, outcome) cells of the battles that count, a < b by model code.
    rated = tally[tally["model"].map(code) < tally["opponent"].map(code)]
    cells: list[tuple[int, int, float]] = []
    counts: list[int] = []
    for row in rated.itertuples(index=False):
        for outcome, count in ((1.0, row.wins), (0.0, row.losses), (0.5, row.ties)):
            if count:
                cells.append((code[row.model], code[row.opponent], outcome))
                counts.append(count)
    cell_a = np.asarray([a for a, _, _ in cells], dtype=np.int64)
    cell_b = np.asarray([b for _, b, _ in cells], dtype=np.int64)
    cell_y = np.asarray([y for _, _, y in cells], dtype=np.float64)
    strengths = np.full((n_bootstrap + 1, len(models)), np.nan)
    if counts:
        counts_array = np.asarray(counts, dtype=np.float64)
        total = int(counts_array.sum())
        rng = np.random.default_rng(seed)
        resampled = rng.multinomial(total, counts_array / total, size=n_bootstrap).astype(np.float64)
        weights = np.vstack([counts_array, resampled])  # replicate 0 is the data itself
        strengths = _fit_replicates(cell_a, cell_b, cell_y, weights, len(models), l2)

    point = strengths[0]
    tail = (1.0 - confidence) / 2
    low, high = np.full(len(models), np.nan), np.full(len(models), np.nan)
    fitted = ~np.isnan(point)
    if n_bootstrap and fitted.any():
        low[fitted], high[fitted] = np.quantile(strengths[1:, fitted], [tail, 1.0 - tail], axis=0)
    board = pd.DataFrame(
        {
            "model": models,
            "rating": ELO_BASE + ELO_SCALE * point,
            "rating_low": ELO_BASE + ELO_SCALE * low,
            "rating_high": ELO_BASE + ELO_SCALE * high,
            "strength": point,
            "n_battles": per_model[list(_TALLY_COLUMNS)].sum(axis=1).to_numpy(np.int64),
            "wins": per_model["wins"].to_numpy(np.int64),
            "losses": per_model["losses"].to_numpy(np.int64),
            "ties": per_model["ties"].to_numpy(np.int64),
            "both_bad": per_model["both_bad"].to_numpy(np.int64),
            "group": _groups(cell_a, cell_b, len(models)),
        }
    )
    board["rank"] = _ranks(board)
    board = board.sort_values(
        ["group", "rating", "model"], ascending=[True, False, True], na_position="last", ignore_index=True
    )
    return board[list(LEADERBOARD_COLUMNS)]


def _fit_replicates(
    cell_a: np.ndarray, cell_b: np.ndarray, cell_y: np.ndarray, weights: np.ndarray, n_models: int, l2: float
) -> np.ndarray:
    """Bradley-Terry strengths per replicate (row of ``weights``) and model: one fit, a task per replicate.

    Response ids are ``replicate * n_models + model``, so each replicate's models are the responses
    of its own task; ``bradley_terry`` solves all tasks' Newton steps in one batched solve. A model
    with no weight in a replicate stays at the prior's 0 there.
    """
    replicates, n_cells = weights.shape
    offset = np.repeat(np.arange(replicates, dtype=np.int64) * n_models, n_cells)
    pairs = pd.DataFrame(
        {
            "task_id": np.repeat(np.arange(replicates, dtype=np.int64), n_cells),
            "a": offset + np.tile(cell_a, replicates),
            "b": offset + np.tile(cell_b, replicates),
            "outcome": np.tile(cell_y, replicates),
            "strength": 0,
            "both_bad": False,
        }
    )
    result = bradley_terry(pairs, weights=weights.ravel(), l2=l2)
    if not result.converged:
        raise ArithmeticError("the Bradley-Terry fit did not converge")
    scores = result.scores
    strengths = np.full((replicates, n_models), np.nan)
    response = scores["response_id"].to_numpy()
    strengths[response // n_models, response % n_models] = scores["score"].to_numpy()
    return strengths


def _groups(cell_a: np.ndarray, cell_b: np.ndarray, n_models: int) -> np.ndarray:
    """The connected part of the comparison graph of each model, numbered from the largest (0)."""
    graph = coo_matrix((np.ones(len(cell_a)), (cell_a, cell_b)), shape=(n_models, n_models))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    # Largest first; equal sizes in the order of their first model.
    order = sorted(range(len(sizes)), key=lambda label: (-sizes[label], int(np.argmax(labels == label))))
    renumber = np.empty(len(sizes), dtype=np.int64)
    renumber[order] = np.arange(len(sizes))
    return renumber[labels]


def _ranks(board: pd.DataFrame) -> np.ndarray:
    """1 + the models of the same group rated clearly above (lower bound over this upper bound)."""
    low, high = board["rating_low"].to_numpy(), board["rating_high"].to_numpy()
    rating, group = board["rating"].to_numpy(), board["group"].to_numpy()
    ranks = np.empty(len(board), dtype=np.int64)
    for index in range(len(board)):
        if np.isnan(rating[index]):
            ranks[index] = len(board)
            continue
        same = group == group[index]
        if np.isnan(high[index]):  # no bootstrap: order by the point estimates
            ranks[index] = 1 + int(np.sum(same & (rating > rating[index])))
        else:
            ranks[index] = 1 + int(np.sum(same & (low > high[index])))
    return ranks


def _tally(battles: pd.DataFrame) -> pd.DataFrame:
    """Per ordered pair of models that met: ``model, opponent, wins, losses, ties, both_bad`` of ``model``."""
    missing = [column for column in BATTLE_COLUMNS if column not in battles.columns]
    if missing:
        raise ValueError(f"battles need the columns {', '.join(BATTLE_COLUMNS)}; missing {', '.join(missing)}")
    if battles.empty:
        return pd.DataFrame({column: pd.Series(dtype="int64") for column in _TALLY_COLUMNS}).assign(
            model=pd.Series(dtype="object"), opponent=pd.Series(dtype="object")
        )[["model", "opponent", *_TALLY_COLUMNS]]
    model_a = battles["model_a"].astype(str).to_numpy()
    model_b = battles["model_b"].astype(str).to_numpy()
    outcome = battles["outcome"].astype(str).to_numpy()
    unknown = sorted(set(outcome) - set(OUTCOMES))
    if unknown:
        raise ValueError(f"unknown outcome(s) {unknown}; expected one of {', '.join(OUTCOMES)}")
    if np.any(model_a == model_b):
        raise ValueError("a battle names two different models")
    # Each battle from both sides: a's record against b, and b's against a.
    both = pd.DataFrame(
        {
            "model": np.r_[model_a, model_b],
            "opponent": np.r_[model_b, model_a],
            "wins": np.r_[outcome == "a", outcome == "b"],
            "losses": np.r_[outcome == "b", outcome == "a"],
            "ties": np.r_[outcome == "tie", outcome == "tie"],
            "both_bad": np.r_[outcome == "both_bad", outcome == "both_bad"],
        }
    )
    tally = both.groupby(["model", "opponent"], sort=True)[list(_TALLY_COLUMNS)].sum().astype(np.int64)
    return tally.reset_index()


def _check_confidence(confidence: float) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be between 0 and 1, e.g. 0.95")


def _empty_head_to_head() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "model": pd.Series(dtype="object"),
            "opponent": pd.Series(dtype="object"),
            **{column: pd.Series(dtype="int64") for column in (*_TALLY_COLUMNS, "n")},
            "win_rate": pd.Series(dtype="float64"),
        }
    )


def _empty_leaderboard() -> pd.DataFrame:
    floats = ("rating", "rating_low", "rating_high", "strength")
    return pd.DataFrame(
        {
            column: pd.Series(dtype="object" if column == "model" else "float64" if column in floats else "int64")
            for column in LEADERBOARD_COLUMNS
        }
    )
