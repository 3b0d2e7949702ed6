"""A small hand-written finance word list: the lexicon baseline and two features of the fallback.

Words were chosen for headline language (analyst actions, results, guidance, prices), in the
spirit of Loughran-McDonald but much shorter; general-purpose lexicons (VADER) misread finance
("beats", "cut", "liability") and score about 0.45 macro-F1 on labelled headlines.
"""

from __future__ import annotations


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


POSITIVE_WORDS: frozenset[str] = _wordset(
    """
    beat beats beating topped tops exceed exceeds exceeded surpass surpassed surpasses
    rise rises rising rose gain gains gained jump jumps jumped soar soars soared surge surges
    surged rally rallies rallied climb climbs climbed advance advances advanced rebound rebounds
    rebounded recover recovers recovered high higher highs record upgrade upgrades upgraded
    raise raises raised boost boosts boosted lift lifts lifted outperform outperforms
    outperformed overweight buy bullish strong stronger strength robust growth grow grows grew
    growing expand expands expanded expansion profit profits profitable profitability improve
    improves improved improvement upbeat optimistic optimism positive win wins won award awarded
    approval approved approves breakthrough success successful beat-and-raise tops upside
    dividend buyback buybacks accelerate accelerates accelerated momentum boom booming best
    increase increases increased increasing up upgrade top leading lead leads record-high
    """
)

NEGATIVE_WORDS: frozenset[str] = _wordset(
    """
    miss misses missed missing fall falls fell falling drop drops dropped plunge plunges
    plunged tumble tumbles tumbled slide slides slid sink sinks sank slump slumps slumped
    decline declines declined declining lower lows low weak weaker weakness loss losses lose
    loses losing lost cut cuts cutting downgrade downgrades downgraded underperform
    underperforms underweight sell bearish negative warn warns warned warning concern concerns
    risk risks fear fears worry worries worried crash crashes crashed slowdown slow slows slowed
    recession layoff layoffs lawsuit sued sue probe investigation fraud fine fined penalty
    bankruptcy bankrupt default defaults debt halt halted suspend suspended delay delayed
    disappointing disappoints disappointed disappointment shortfall plummet plummets plummeted
    sinking slashes slashed slash reduce reduces reduced decrease decreases decreased down
    worst tariff tariffs volatility selloff sell-off pressure pressured struggle struggles
    struggling recall recalls headwinds headwind deficit impairment writedown write-down
    """
)

NEGATIONS: frozenset[str] = _wordset(
    "not no never without fails fail failed neither nor cannot can't won't didn't doesn't"
)
