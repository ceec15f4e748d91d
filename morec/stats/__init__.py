"""The statistics layer: paired comparisons of two arms over users and seeds (:mod:`.paired`), p-values safe
from Monte-Carlo noise (:mod:`.pvalues`), the two-level bootstrap (:mod:`.bootstrap`), Holm's correction over a
family (:mod:`.family`), detectable effects and seeds needed (:mod:`.design`), mean and spread over seeds (:mod:`.seeds`), and how it is
written
(:mod:`.text`)."""
from .family import adjust, holm
from .paired import ALPHA, MARGIN, N_RESAMPLES, TWO_LEVEL, USER_LEVEL, Paired, paired, seed_matrix, user_scores
from .seeds import mean_std, metrics_mean_std
from .pvalues import PValue, format_p, sign_flip
from .text import detail, format_improv, metric_sentence, p_cell, p_text, parse_margin

__all__ = ["ALPHA", "MARGIN", "N_RESAMPLES", "TWO_LEVEL", "USER_LEVEL", "PValue", "Paired", "adjust", "detail",
           "format_improv", "format_p", "holm", "mean_std", "metric_sentence", "metrics_mean_std", "p_cell", "p_text", "paired", "parse_margin",
           "seed_matrix", "sign_flip", "user_scores"]
