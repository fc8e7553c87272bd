"""The Kubernetes quantity arithmetic the operator needs: CPU cores and value equality.

The API server stores quantities canonically ("4096Mi" becomes "4Gi", "2000m" becomes "2"),
so comparing a rendered manifest with the stored object must compare values, not strings.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal
from typing import Final

_QUANTITY: Final = re.compile(
    r"^(?P<number>[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+))(?P<suffix>[KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]+)?$"
)
_BINARY: Final = {f"{prefix}i": 1024 ** (index + 1) for index, prefix in enumerate("KMGTPE")}
_DECIMAL: Final = {"n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1)} | {
    prefix: Decimal(1000) ** (index + 1) for index, prefix in enumerate("kMGTPE")
}


def value(quantity: str | int | float) -> Decimal:
    """The exact value of a quantity such as 2, "1.5", "500m", "4Gi" or "1e3"."""
    match = _QUANTITY.match(str(quantity).strip())
    if match is None:
        raise ValueError(f"{quantity!r} is not a Kubernetes quantity (examples: 2, 500m, 4Gi)")
    number, suffix = Decimal(match["number"]), match["suffix"] or ""
    if suffix in _BINARY:
        return number * _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * _DECIMAL[suffix]
    return number * Decimal(10) ** int(suffix[1:])


def same_value(left: str | int | float, right: str | int | float) -> bool:
    try:
        return value(left) == value(right)
    except ValueError:
        return False


def whole_cores(quantity: str | int | float) -> int:
    """Threads that fit in a CPU quantity: never more than the quota, never fewer than one."""
    return max(1, math.floor(value(quantity)))


def mebibytes(count: int) -> str:
    """A size in MiB written the way the API server stores it (4096 -> "4Gi")."""
    suffixes = ("Mi", "Gi", "Ti", "Pi", "Ei")
    index = 0
    while count % 1024 == 0 and index < len(suffixes) - 1 and count:
        count //= 1024
        index += 1
    return f"{count}{suffixes[index]}"
