"""The rating scale of a reader study: a Likert scale of consecutive integers.

Scores are single digits so that a reader answers with one key press: the lowest score is at least 0,
the highest at most 9, and a scale has 2 to 10 points. A 5-point scale gets the labels of the absolute
category rating of ITU-R BT.500 / P.910 (1 Bad ... 5 Excellent); other scales label only their ends.
"""

import re
from dataclasses import dataclass

from taskloss.errors import InputError

FIVE_POINT_LABELS = ("Bad", "Poor", "Fair", "Good", "Excellent")
"""Labels of the five points of the absolute category rating scale, worst first."""

_SCALE_PATTERN = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*$")


@dataclass(frozen=True)
class LikertScale:
    """A scale of consecutive integer scores from ``low`` (worst) to ``high`` (best).

    Attributes:
        low: the worst score, 0 to 8.
        high: the best score, ``low + 1`` to 9.
    """

    low: int
    high: int

    def __post_init__(self) -> None:
        if not 0 <= self.low < self.high <= 9:
            raise InputError(f"rating scale {self.low}-{self.high} is not valid; use two single-digit "
                             "integers, lowest first, e.g. 1-5 or 1-4")

    @property
    def values(self) -> tuple[int, ...]:
        """Every score, worst first."""
        return tuple(range(self.low, self.high + 1))

    @property
    def labels(self) -> tuple[str, ...]:
        """One label per score, worst first: the ACR words for 5 points, else only the ends."""
        if len(self.values) == len(FIVE_POINT_LABELS):
            return FIVE_POINT_LABELS
        middle = ("",) * (len(self.values) - 2)
        return ("Worst", *middle, "Best")

    def __str__(self) -> str:
        return f"{self.low}-{self.high}"

    def check(self, score: object) -> int:
        """Return ``score`` if it is an integer on this scale.

        Args:
            score: a value from a request or a file.

        Returns:
            The score as ``int``.

        Raises:
            InputError: when ``score`` is not an integer (booleans and floats are refused) or lies off
                the scale.
        """
        if isinstance(score, bool) or not isinstance(score, int) or score not in self.values:
            raise InputError(f"score must be an integer from {self.low} to {self.high}, "
                             f"got {score!r}")
        return score


def parse_scale(text: str) -> LikertScale:
    """Parse ``"LOW-HIGH"`` (e.g. ``"1-5"``) into a :class:`LikertScale`.

    Raises:
        InputError: when ``text`` has another form or the bounds are not single digits, lowest first.
    """
    match = _SCALE_PATTERN.match(text)
    if match is None:
        raise InputError(f"--scale {text!r} is not of the form LOW-HIGH; pass e.g. --scale 1-5")
    return LikertScale(int(match.group(1)), int(match.group(2)))
