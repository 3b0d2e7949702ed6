"""Hand-written finance word lists: the lexicon baseline, and the vocabulary of the finance rules.

Words were chosen for headline and news-report language (analyst actions, results, guidance,
prices), in the spirit of Loughran-McDonald but much shorter and written by the project;
general-purpose lexicons (VADER) misread finance ("beats", "cut", "liability") and score about
0.45 macro-F1 on labelled headlines. :mod:`sentinel42.sentiment.finance_rules` combines the
lists below the first three into directional counts.
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


# --- Directional finance language --------------------------------------------------------------
# The word lists above judge words one at a time, which news sentences defeat: "operating loss
# narrowed" is good news built from a bad word and a falling verb, "cut 250 jobs" and "cut costs"
# point opposite ways. The lists below let :func:`finance_signals` compose a direction with the
# figure it moves. All of them are written by the project (no third-party lexicon is copied).

# A figure a company wants higher (its rise is good news).
GOOD_FIGURES: frozenset[str] = _wordset(
    """
    sales revenue revenues turnover profit profits earnings income ebit ebitda ebita eps margin
    margins result results order orders intake backlog book bookings demand volume volumes
    deliveries shipments output production dividend dividends cash-flow flow equity return
    returns occupancy traffic passengers customers subscribers users members membership
    market-share share shares stock stocks price prices valuation value capacity productivity
    efficiency profitability rating ratings target targets forecast forecasts guidance outlook
    exports growth liquidity jobs workforce staff employees personnel headcount position nav
    yield sentiment confidence consumption spending investment investments premium stake
    buy overweight outperform neutral hold equal-weight market-perform sector-perform
    """
)

# A figure a company wants lower (its rise is bad news).
BAD_FIGURES: frozenset[str] = _wordset(
    """
    loss losses costs cost expenses expense expenditure debt debts deficit liabilities
    unemployment layoffs impairment impairments write-down write-downs writedowns provisions
    charges churn delinquencies defaults arrears gearing leverage bad-loans loan-losses
    credit-losses combined-ratio cost-ratio concerns concern fears worries risk risks
    uncertainty inflation fines claims complaints redundancies cuts
    """
)

# Verbs and words that move a figure; "widened"/"narrowed" move its size whatever it measures.
UP_WORDS: frozenset[str] = _wordset(
    """
    rise rises rising rose risen increase increases increased increasing grow grows grew grown
    growing climb climbs climbed climbing jump jumps jumped surge surges surged soar soars soared
    gain gains gained rebound rebounds rebounded double doubles
    doubled triple tripled expand expands expanded expanding widen widens widened widening
    higher boost boosts boosted lift lifts lifted lifting raise raises raised raising
    accelerate accelerated accelerating swell swelled mount mounted rally rallied rallies
    exceed exceeds exceeded topped surpassed hike hikes hiked upped
    """
)
DOWN_WORDS: frozenset[str] = _wordset(
    """
    fall falls fell fallen falling decrease decreases decreased decreasing decline declines
    declined declining drop drops dropped dropping slump slumps slumped plunge plunges plunged
    tumble tumbles tumbled sink sinks sank slide slides slid slip slips slipped shrink shrinks
    shrank shrunk shrinking contracted contracting narrow narrows narrowed narrowing
    lower lowered lowers lowering reduce reduces reduced reducing cut cuts cutting slash
    slashes slashed trim trims trimmed halve halved halves ease eased eases dip dips dipped
    slow slows slowed slowing collapse collapsed collapses plummet plummeted plummets
    withdraw withdraws withdrew withdrawn pull pulls pulled scrap scraps scrapped
    """
)
# Words that judge a change by themselves, whatever the figure.
BETTER_WORDS: frozenset[str] = _wordset(
    """
    improve improves improved improving improvement strengthen strengthens strengthened
    recover recovers recovered recovering recovery beat beats beating outperform outperformed
    upgrade upgrades upgraded stronger robust strong record-high all-time-high
    strengthening profitable highest above-expectations record
    """
)
WORSE_WORDS: frozenset[str] = _wordset(
    """
    worsen worsens worsened worsening deteriorate deteriorates deteriorated deteriorating
    weaken weakens weakened weakening weak weaker weakness miss misses missed downgrade
    downgrades downgraded underperform underperformed disappointing disappointed
    burdened hurt squeezed squeezing lowest below-expectations shortfall record-low
    """
)
# Events that are good or bad news in themselves (news-sentence usage).
GOOD_EVENTS: frozenset[str] = _wordset(
    """
    approval approved breakthrough success successful buyback buybacks award awarded
    optimistic upbeat exceeded
    """
)
BAD_EVENTS: frozenset[str] = _wordset(
    """
    layoffs layoff redundancies lay-off closure closures bankruptcy
    bankrupt insolvency lawsuit sued suing fine fined penalty recall recalled
    impairment write-down writedown warning warns warned investigation probe fraud default
    defaulted delay delayed delays resigned suspend suspended halt halted rejected
    """
)
