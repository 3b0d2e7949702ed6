"""Finance rules: good and bad news in a sentence, from a direction and the figure it moves.

Single words cannot read news sentences: "operating loss narrowed" is good news built from a bad
word and a falling verb, "cut 250 jobs" and "cut costs" point opposite ways, and "EUR 9.8 mn
(EUR 6.1 mn)" says "up" with no word at all. :func:`finance_signals` finds

- moves: a direction word (``UP_WORDS``/``DOWN_WORDS``) times the sign of the figure it moves
  (``GOOD_FIGURES`` +1, ``BAD_FIGURES`` -1; the subject before it, or for a transitive verb the
  object after it);
- comparisons: two numbers joined by "from/to", "compared with", "vs" or a parenthesis, times the
  figure's sign ("a loss of EUR 1.3 mn" counts as -1.3 against a profit);
- events: words and phrases that are news by themselves ("won a contract", "returned to profit",
  "beat estimates", "no dividend").

A negation in the three words before flips the sign. The counts are features of the fallback
classifier (:func:`sentinel42.sentiment.fallback.dense_features`), which learns their weights.
"""

from __future__ import annotations

import itertools
import re
from typing import NamedTuple

from sentinel42.sentiment.lexicon import (
    BAD_EVENTS,
    BAD_FIGURES,
    BETTER_WORDS,
    DOWN_WORDS,
    GOOD_EVENTS,
    GOOD_FIGURES,
    NEGATIONS,
    UP_WORDS,
    WORSE_WORDS,
)


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


# The first word of a comparison with an earlier or expected figure.
_COMPARE = _wordset("compared versus vs against from")
_CLAUSE_ENDS = _wordset(
    "after as while but although though despite because due thanks which whereas ; ."
)
_COPULAS = _wordset("was were is are be been being came come comes stood stands")
_WIN_VERBS = _wordset(
    "win wins won winning secure secures secured securing land lands landed sign signs signed"
    " receive receives received awarded"
)
_DEALS = _wordset("contract contracts order orders deal deals agreement agreements")
_TRANSITIVE = _wordset(
    "cut cuts cutting slash slashes slashed trim trims trimmed reduce reduces reduced reducing"
    " raise raises raised raising lift lifts lifted lifting boost boosts boosted lower lowered"
    " lowers lowering hike hikes hiked upped halve halved double doubled withdraw withdraws"
    " withdrew withdrawn pull pulls pulled scrap scraps scrapped"
)
_ADVANCED = _wordset("advance advances advanced")
_ROUGHLY = _wordset("about around nearly almost roughly some approximately over more")
_CLOSE_VERBS = _wordset("close closes closing closed shut shuts shutting")
_SITES = _wordset(
    "plant plants factory factories mill mills unit units store stores site sites line"
)
_PAID_FIGURES = _wordset("prices price costs cost")
_INPUTS = _wordset(
    "raw-material energy input fuel commodity feedstock electricity freight labour labor wage"
)
_SWING_INTO = _wordset("swung swing swings turned turn turns returned return returns moved into")
# Joined before lookup, so a two-word figure is one token.
_PHRASES = {
    ("cash", "flow"): "cash-flow",
    ("market", "share"): "market-share",
    ("bad", "loans"): "bad-loans",
    ("non-performing", "loans"): "bad-loans",
    ("loan", "losses"): "loan-losses",
    ("credit", "losses"): "credit-losses",
    ("raw", "material"): "raw-material",
    ("raw", "materials"): "raw-material",
    ("all-time", "high"): "all-time-high",
    ("record", "high"): "record-high",
    ("lay", "off"): "lay-off",
    ("laid", "off"): "lay-off",
    ("job", "cuts"): "redundancies",
    ("combined", "ratio"): "combined-ratio",
    ("cost", "ratio"): "cost-ratio",
    ("cost-income", "ratio"): "cost-ratio",
    ("cost-to-income", "ratio"): "cost-ratio",
    ("below", "expectations"): "below-expectations",
    ("below", "estimates"): "below-expectations",
    ("below", "forecasts"): "below-expectations",
    ("below", "analysts"): "below-expectations",
    ("above", "expectations"): "above-expectations",
    ("above", "estimates"): "above-expectations",
    ("above", "forecasts"): "above-expectations",
    ("above", "analysts"): "above-expectations",
    ("below", "consensus"): "below-expectations",
    ("above", "consensus"): "above-expectations",
    ("record", "low"): "record-low",
    ("record", "lows"): "record-low",
    ("record", "date"): "record-date",
}
_TOKEN = re.compile(r"(?<![\w.])[-−]?\d+(?:[.,]\d+)*|[a-z]+(?:['’\-][a-z]+)*|[();.]")


class FinanceSignals(NamedTuple):
    """Counts of good and bad news found by :func:`finance_signals` in one text."""

    moves_good: int  # a figure moved the way its company wants ("loss narrowed", "sales rose")
    moves_bad: int
    compared_good: int  # a figure against its earlier one: "EUR 9.8 mn (EUR 6.1 mn)"
    compared_bad: int
    events_good: int  # "won a contract", "beat estimates", "returned to profit"
    events_bad: int  # "will cut 250 jobs", "swung to a loss", "no dividend"
    amounts: int  # money or percentage figures in the text


def _tokens(text: str) -> list[str]:
    raw = _TOKEN.findall(text.lower().replace("−", "-"))
    out: list[str] = []
    i = 0
    while i < len(raw):
        phrase = _PHRASES.get((raw[i], raw[i + 1])) if i + 1 < len(raw) else None
        out.append(phrase or raw[i])
        i += 2 if phrase else 1
    return out


def _number(tok: str) -> float | None:
    if not tok or not (tok[0].isdigit() or (tok[0] == "-" and len(tok) > 1)):
        return None
    body = tok.lstrip("-")
    # "1,800" and "42,150,000" are thousands; "13,1" is a decimal comma.
    if "," in body and not re.fullmatch(r"\d{1,3}(,\d{3})+(\.\d+)?", body):
        body = body.replace(",", ".", 1).replace(",", "")
    body = body.replace(",", "")
    try:
        value = float(body)
    except ValueError:
        return None
    return -value if tok.startswith("-") else value


def _figure_sign(toks: list[str], k: int) -> int:
    tok = toks[k]
    if tok in _PAID_FIGURES and k and toks[k - 1] in _INPUTS:
        return -1  # "raw material prices", "energy costs": what the company pays
    return 1 if tok in GOOD_FIGURES else -1 if tok in BAD_FIGURES else 0


def _find_figure(toks: list[str], i: int, forward_first: bool) -> int:
    """Sign of the figure that word ``i`` moves: +1 good, -1 bad, 0 none found."""

    def ahead() -> int:
        for k in range(i + 1, min(i + 6, len(toks))):
            if toks[k] in _CLAUSE_ENDS:
                break
            if sign := _figure_sign(toks, k):
                return sign
        return 0

    def behind() -> int:
        for k in range(i - 1, max(i - 11, -1), -1):
            if toks[k] in _CLAUSE_ENDS:
                break
            if sign := _figure_sign(toks, k):
                return sign
        return 0

    # "rising costs", "lower sales": the figure right after; "an increase in costs": after "in".
    if i + 1 < len(toks) and (sign := _figure_sign(toks, i + 1)):
        return sign
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    if nxt in ("in", "of") and (sign := ahead()):
        return sign
    if forward_first:
        return ahead() or behind()
    return behind() or ahead()


def _before(toks: list[str], i: int) -> str:
    return toks[i - 1] if i else ""


def _negated(toks: list[str], i: int) -> bool:
    window = toks[max(i - 3, 0) : i]
    return any(t in NEGATIONS or t.endswith("n't") for t in window)


def _is_direction(toks: list[str], i: int) -> int:
    tok = toks[i]
    nxt = toks[i + 1] if i + 1 < len(toks) else ""
    prev = toks[i - 1] if i else ""
    if tok in ("up", "down"):
        # "up 6%", "down about 10%", "was down", "up from": a move; "set up", "step down",
        # "up to 250": not.
        soon = toks[i + 1 : i + 3] if nxt in _ROUGHLY else toks[i + 1 : i + 2]
        if any(_number(t) is not None for t in soon) or nxt in ("from", "by", "on"):
            return 1 if tok == "up" else -1
        if prev in _COPULAS:
            return 1 if tok == "up" else -1
        return 0
    if tok in UP_WORDS or (tok in _ADVANCED and _number(nxt) is not None):
        return 1  # "advanced 3.9%", not "Advanced Micro Devices"
    if tok in DOWN_WORDS:
        return -1
    return 0


def _comparisons(toks: list[str]) -> list[int]:
    """Signs of the news in "to X from Y", "from Y to X", "X (Y)", "X compared with Y", "X vs Y"."""
    # Years are dates, not figures: "to EUR 20.5 mn in 2005 from EUR 9.3 mn in 2004".
    nums = [
        (i, v)
        for i, t in enumerate(toks)
        if (v := _number(t)) is not None and not _is_year(toks, i)
    ]
    out: list[int] = []
    for (i, new), (j, old) in itertools.pairwise(nums):
        between = toks[i + 1 : j]
        if j - i > 10 or any(t in _CLAUSE_ENDS for t in between):
            continue
        if new == old:
            continue
        if "to" in between and "from" in toks[max(i - 3, 0) : i]:
            new, old = old, new  # "from Y to X"
        elif not ("(" in between or any(t in _COMPARE for t in between)):
            continue
        figure = _find_figure(toks, i, forward_first=False) or 1
        # The other sign of result stated in words: "EUR 4.6 mn, compared to a loss of EUR 1.3 mn"
        # (the earlier figure in the current figure's units is negative).
        other = {"loss", "losses"} if figure > 0 else {"profit", "profits"}
        if other & set(toks[max(j - 4, i + 1) : j]):
            old = -abs(old)
        out.append(figure * (1 if new > old else -1))
    return out


def finance_signals(text: str) -> FinanceSignals:
    """Good and bad news in one text, with a direction composed with the figure it moves.

    ``"Operating loss narrowed to EUR 1.2 mn from EUR 4.5 mn"`` is one good move and one good
    comparison; ``"Net sales decreased by 12 percent"`` one bad move. Words in a negated
    context ("did not improve") count the other way.
    """
    toks = _tokens(text)
    moves = [0, 0]
    events = [0, 0]
    for i, tok in enumerate(toks):
        if direction := _is_direction(toks, i):
            figure = _find_figure(toks, i, forward_first=tok in _TRANSITIVE)
            if not figure and tok in _TRANSITIVE:
                continue  # "to raise $500 mn", "cuts rates": nothing the company wants moved
            sign = direction * (figure or 1)
            moves[(-sign if _negated(toks, i) else sign) < 0] += 1
        elif sign := _event_sign(toks, i):
            events[(-sign if _negated(toks, i) else sign) < 0] += 1
    compared = _comparisons(toks)
    amounts = sum(1 for i, t in enumerate(toks) if _number(t) is not None and not _is_year(toks, i))
    return FinanceSignals(
        moves_good=moves[0],
        moves_bad=moves[1],
        compared_good=sum(1 for c in compared if c > 0),
        compared_bad=sum(1 for c in compared if c < 0),
        events_good=events[0],
        events_bad=events[1],
        amounts=amounts,
    )


def _event_sign(toks: list[str], i: int) -> int:
    """+1/-1 for a word or phrase at ``i`` that is news in itself, else 0."""
    tok = toks[i]
    after = toks[i + 1 : i + 7]
    if tok in BETTER_WORDS or tok in GOOD_EVENTS:
        return 1
    if tok in WORSE_WORDS or tok in BAD_EVENTS:
        return -1
    if tok in _WIN_VERBS and any(t in _DEALS for t in after):
        return 1  # "won a EUR 30 mn contract"
    if tok in _CLOSE_VERBS and any(t in _SITES for t in after[:4]):
        return -1  # "close its plant", not "closing price"
    if tok == "hit" and after[:1] == ["by"]:
        return -1  # "hit by the strike", not "hit a record"
    if tok in ("weighed", "weighs", "weigh", "weighing") and after[:1] == ["on"]:
        return -1  # "weighed on margins", not "weighs options"
    if tok in ("better", "worse") and (after[:1] == ["than"] or _before(toks, i) in _COPULAS):
        return 1 if tok == "better" else -1  # "better than expected", not "a better buy?"
    if tok in ("profit", "profits", "loss", "losses") and any(
        t in _SWING_INTO for t in toks[max(i - 4, 0) : i]
    ):
        return 1 if tok.startswith("profit") else -1  # "returned to profit", "swung to a loss"
    if tok == "no" and after[:1] in (["dividend"], ["dividends"]):
        return -1
    return 0


def _is_year(toks: list[str], i: int) -> bool:
    """A bare four-digit 1900-2100 ("2,050 employees" and "EUR 1950 mn" are not years)."""
    tok = toks[i]
    unit = toks[i + 1] if i + 1 < len(toks) else ""
    return (
        len(tok) == 4
        and tok.isdigit()
        and 1900 <= int(tok) <= 2100
        and unit not in ("mn", "million", "bn", "billion", "m", "k", "tonnes", "units")
    )
