"""Sequence packing: several short inputs share one row of the batch, separated by a
block-diagonal attention mask and with their own position ids, so the linear layers (most of
the compute) never see padding.

A batch of 32 single sentences of mixed length pads to its longest input; packed into rows
of 128 tokens it runs about half the token positions. Attention then spans a whole row, so
rows are kept short and a cost model chooses, per batch, between plain padding and the best
row width.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

ROW_WIDTHS = (64, 128, 256)


@dataclass(frozen=True, slots=True)
class PackedLayout:
    rows: int
    width: int  # longest row, in tokens
    row_of: tuple[int, ...]  # per input
    offset_of: tuple[int, ...]  # per input: first position in its row


def plan_rows(lengths: Sequence[int], capacity: int) -> PackedLayout:
    """First-fit decreasing: longest inputs first, each into the first row with room."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    fill: list[int] = []
    row_of = [0] * len(lengths)
    offset_of = [0] * len(lengths)
    for index in order:
        length = lengths[index]
        row = next((r for r, used in enumerate(fill) if used + length <= capacity), len(fill))
        if row == len(fill):
            fill.append(0)
        row_of[index] = row
        offset_of[index] = fill[row]
        fill[row] += length
    return PackedLayout(rows=len(fill), width=max(fill), row_of=tuple(row_of), offset_of=tuple(offset_of))


class PackingPolicy:
    """Chooses padding or packing for a batch by estimated cost in token-position units.

    A token position costs 1 (its linear layers); a (query, key) pair of attention costs
    `pair_cost`, about 4H / 24H^2 = 1/(6H) flops-wise, scaled by `attention_factor` because
    masked attention runs far below peak on CPUs.
    """

    def __init__(self, hidden_size: int, attention_factor: float = 8.0) -> None:
        self.pair_cost = attention_factor / (6.0 * hidden_size)

    def cost(self, rows: int, width: int) -> float:
        return rows * width * (1.0 + self.pair_cost * width)

    def choose(self, lengths: Sequence[int]) -> PackedLayout | None:
        """The cheapest packed layout, or None when plain padding is at least as cheap."""
        if len(lengths) < 2:
            return None
        longest = max(lengths)
        best: PackedLayout | None = None
        best_cost = self.cost(len(lengths), longest)
        for capacity in ROW_WIDTHS:
            if capacity < longest:
                continue
            layout = plan_rows(lengths, capacity)
            cost = self.cost(layout.rows, layout.width)
            if cost < 0.9 * best_cost:  # a clear win only: packing has fixed overheads
                best, best_cost = layout, cost
        return best
