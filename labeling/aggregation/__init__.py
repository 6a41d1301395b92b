"""Turn reviewers' judgements into preference verdicts: pure functions over pandas/numpy, no Django.

``expand_pairs`` turns judgements into pairwise votes; ``majority``, ``weighted`` (with
``reviewer_reliability``) and ``bradley_terry`` turn votes into one verdict per pair.
``quality`` measures agreement (Krippendorff's alpha, Kendall's tau-b) and flags unreliable reviewers.
``arena`` compares the models that wrote the responses: win rates, head-to-head records and a
Bradley-Terry leaderboard of models.
"""

from labeling.aggregation.arena import (
    BATTLE_COLUMNS,
    ELO_BASE,
    ELO_SCALE,
    HEAD_TO_HEAD_COLUMNS,
    LEADERBOARD_COLUMNS,
    OUTCOMES,
    WinRate,
    head_to_head,
    leaderboard,
    wilson_interval,
    win_rate,
)
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
from labeling.aggregation.pairs import (
    PAIR_COLUMNS,
    JudgementRecord,
    JudgementTable,
    empty_pairs,
    expand_pairs,
    gold_pairs,
)
from labeling.aggregation.quality import (
    FLAGS,
    REVIEWER_COLUMNS,
    Agreement,
    PairwiseAgreement,
    agreement_over_time,
    exclude_reviewers,
    likert_agreement,
    pairwise_agreement,
    ranking_agreement,
    reviewer_table,
)

__all__ = [
    "BATTLE_COLUMNS",
    "DEFAULT_MARGIN_MAP",
    "ELO_BASE",
    "ELO_SCALE",
    "FLAGS",
    "HEAD_TO_HEAD_COLUMNS",
    "LEADERBOARD_COLUMNS",
    "OUTCOMES",
    "PAIR_COLUMNS",
    "REVIEWER_COLUMNS",
    "VERDICT_COLUMNS",
    "Agreement",
    "BradleyTerryResult",
    "JudgementRecord",
    "JudgementTable",
    "PairwiseAgreement",
    "ReliabilityResult",
    "WinRate",
    "agreement_over_time",
    "bradley_terry",
    "empty_pairs",
    "exclude_reviewers",
    "expand_pairs",
    "gold_pairs",
    "head_to_head",
    "leaderboard",
    "likert_agreement",
    "majority",
    "margin_from_strength",
    "pairwise_agreement",
    "position_bias",
    "ranking_agreement",
    "reviewer_reliability",
    "reviewer_table",
    "vote_weights",
    "weighted",
    "wilson_interval",
    "win_rate",
]
