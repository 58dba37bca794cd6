"""Kubernetes quantities (``k8s.io/apimachinery`` ``resource.Quantity``) as exact numbers.

One parser for every place a quantity is read: container requests and limits (backends, webhook,
kubelet stand-in), node allocatable, quotas and fleet files. Only ASCII digits count (a ``\\d``
would take Arabic-Indic or full-width digits, which the API server refuses), the text is bounded
before any arithmetic, and so is the exponent, so a hostile value costs nothing.
"""

from __future__ import annotations

import re
from fractions import Fraction

from hami_core.errors import QuantityError
from hami_core.errors import echo

#: Longer text is not something the API server stores; it is refused before any arithmetic.
MAX_LENGTH = 64

_QUANTITY = re.compile(
    r"(?P<sign>[+-]?)(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]{1,3})|(?P<decimal>[numkMGTPE]))?",
    re.ASCII,
)
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(value: object) -> Fraction:
    """The exact value of a quantity (``"2"``, ``"500m"``, ``"16Gi"``, ``"1e3"``, ``4``).

    Raises:
        QuantityError: ``value`` is not a quantity; the message quotes at most a short prefix of it.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise QuantityError(f"{echo(repr(value))} is not a quantity")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise QuantityError(f"{value!r} is not a quantity")
        return Fraction(value)
    found = _QUANTITY.fullmatch(value) if len(value) <= MAX_LENGTH else None
    if found is None:
        raise QuantityError(f"{echo(repr(value))} is not a quantity")
    number = Fraction(found["number"])
    if found["binary"]:
        number *= _BINARY[found["binary"]]
    elif found["exponent"]:
        number *= Fraction(10) ** int(found["exponent"])
    elif found["decimal"]:
        number *= Fraction(10) ** _DECIMAL[found["decimal"]]
    return -number if found["sign"] == "-" else number
