"""Turn reviewers' judgements into preference verdicts: pure functions over pandas/numpy, no Django.

``expand_pairs`` turns judgements into pairwise votes; ``majority``, ``weighted`` (with
``reviewer_reliability``) and ``bradley_terry`` turn votes into one verdict per pair.
"""

from labeling.aggregation.methods import (
    DEFAULT_MARGIN_MAP,
    VERDICT_COLUMNS,
    BradleyTerryResult,
    ReliabilityResult,
    bradley_terry,
    majority,
    margin_from_strength,
    position_bias,
    reviewer_reliability,
    vote_weights,
    weighted,
)
from labeling.aggregation.pairs import PAIR_COLUMNS, JudgementRecord, empty_pairs, expand_pairs, gold_pairs

__all__ = [
    "DEFAULT_MARGIN_MAP",
    "PAIR_COLUMNS",
    "VERDICT_COLUMNS",
    "BradleyTerryResult",
    "JudgementRecord",
    "ReliabilityResult",
    "bradley_terry",
    "empty_pairs",
    "expand_pairs",
    "gold_pairs",
    "majority",
    "margin_from_strength",
    "position_bias",
    "reviewer_reliability",
    "vote_weights",
    "weighted",
]
