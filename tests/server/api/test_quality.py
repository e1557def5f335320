"""Quality through the server: STS-B test Spearman equals sentence-transformers' published figure."""

from __future__ import annotations

import numpy as np
from scipy.stats import spearmanr


def test_stsb_spearman_through_the_server(minilm_server, stsb_test) -> None:  # type: ignore[no-untyped-def]
    first = [pair[0] for pair in stsb_test]
    second = [pair[1] for pair in stsb_test]
    gold = np.array([pair[2] for pair in stsb_test])
    a = np.concatenate([minilm_server.embed(first[i : i + 512]) for i in range(0, len(first), 512)])
    b = np.concatenate([minilm_server.embed(second[i : i + 512]) for i in range(0, len(second), 512)])
    scores = (a * b).sum(axis=1)  # vectors are L2-normalised
    rho = spearmanr(scores, gold).statistic
    assert abs(rho - 0.8203) < 0.002, rho
