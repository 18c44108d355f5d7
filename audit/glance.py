"""The access page at a glance: a summary sentence and a bar chart of accesses per partner.

Built from the rows the overview already read from the daily rollups, so the chart costs no query.
``chart_bars`` lays out any such two-part bar chart (the operations dashboard draws its charts with it).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.utils.translation import gettext as _
from django.utils.translation import ngettext

if TYPE_CHECKING:
    from audit.selectors import PartnerAccessRow

# Geometry of the inline SVG, in its own user units (the browser scales it to the column width).
CHART_WIDTH = 400
BAR_MAX = 290
ROW_HEIGHT = 44
BAR_HEIGHT = 16
LABEL_GAP = 6


@dataclass(frozen=True)
class ChartBar:
    """One row of a bar chart (e.g. a partner's accesses): the first part solid, the second part hatched."""

    key: Any
    events: float
    flagged: float
    y: int
    covered_width: float
    flagged_width: float
    count_label: str

    @property
    def covered(self) -> float:
        return self.events - self.flagged

    @property
    def bar_y(self) -> int:
        return self.y + 20

    @property
    def label_y(self) -> int:
        return self.y + 14

    @property
    def count_x(self) -> float:
        return self.covered_width + self.flagged_width + LABEL_GAP

    @property
    def count_y(self) -> int:
        return self.bar_y + BAR_HEIGHT - 3


@dataclass(frozen=True)
class AccessGlance:
    """What the access page opens with."""

    summary: str
    needs_attention: int
    bars: list[ChartBar]

    @property
    def width(self) -> int:
        return CHART_WIDTH

    @property
    def height(self) -> int:
        return ROW_HEIGHT * len(self.bars)

    @property
    def bar_height(self) -> int:
        return BAR_HEIGHT


def flagged_count_label(events: float, flagged: float) -> str:
    if not flagged:
        return str(events)
    return _("%(events)s (%(flagged)s flagged)") % {"events": events, "flagged": flagged}


def chart_bars(
    items: Sequence[tuple[Any, float, float]], count_label: Callable[[float, float], str] = flagged_count_label
) -> list[ChartBar]:
    """Lay out ``(key, total, hatched part)`` rows as bars scaled to the largest total, in the order given."""
    scale = BAR_MAX / (max((total for _key, total, _part in items), default=0) or 1)
    return [
        ChartBar(
            key=key,
            events=total,
            flagged=part,
            y=index * ROW_HEIGHT,
            covered_width=round((total - part) * scale, 1),
            flagged_width=round(part * scale, 1),
            count_label=count_label(total, part),
        )
        for index, (key, total, part) in enumerate(items)
    ]


def access_glance(rows: list[PartnerAccessRow]) -> AccessGlance:
    """The summary sentence over all flagged accesses, and the last 90 days per partner, busiest first."""
    needs_attention = sum(row.flagged_total for row in rows)
    if needs_attention:
        summary = ngettext(
            "%(count)s access needs your attention: a partner used your data without your consent or beyond "
            "what was shared.",
            "%(count)s accesses need your attention: partners used your data without your consent or beyond "
            "what was shared.",
            needs_attention,
        ) % {"count": needs_attention}
    else:
        summary = _("Every access reported so far was covered by your consent and by what was shared.")
    recent = sorted((row for row in rows if row.events_90), key=lambda row: (-row.events_90, row.partner.name))
    bars = chart_bars([(row.partner, row.events_90, row.flagged_90) for row in recent])
    return AccessGlance(summary=summary, needs_attention=needs_attention, bars=bars)
