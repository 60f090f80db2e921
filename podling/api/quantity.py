"""Kubernetes resource quantities (apimachinery ``resource.Quantity``), parsed to ``Decimal``.

A quantity is ``<number><suffix>``: a decimal SI suffix (``n u m "" k M G T P E``), a binary
SI suffix (``Ki Mi Gi Ti Pi Ei``) or a decimal exponent (``e3``, ``E-2``). The wire form the
API server writes back is the *canonical* one (``1000`` -> ``1k``, ``0.5`` -> ``500m``,
``1536Mi`` stays, ``1024Mi`` -> ``1Gi``); :func:`canonical_quantity` reproduces it, including
the rounding up to milli precision that defaulting applies to resource lists.

Pure functions, no I/O; every failure is a :class:`QuantityError` carrying Kubernetes' text.
"""

from __future__ import annotations

import re
from decimal import ROUND_UP, Decimal, InvalidOperation

FORMAT_DECIMAL_SI = "DecimalSI"
FORMAT_BINARY_SI = "BinarySI"
FORMAT_DECIMAL_EXPONENT = "DecimalExponent"

ERR_FORMAT_WRONG = ("quantities must match the regular expression "
                    "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
ERR_NUMERIC = "unable to parse quantity's numeric part"
ERR_SUFFIX = "unable to parse quantity's suffix"

_SHAPE = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
_NUMBER = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)$")
_EXPONENT = re.compile(r"^[eE]([+-]?[0-9]+)$")

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12,
                     "P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]


class QuantityError(ValueError):
    """A string that is not a Kubernetes quantity; ``str()`` is Kubernetes' message."""


def parse_quantity(text: str | int | float) -> Decimal:
    """Return the exact value of a quantity (``"100m"`` -> ``Decimal("0.1")``).

    Ints and floats (JSON numbers) are accepted as Kubernetes accepts them. Raises
    :class:`QuantityError` for anything else.
    """
    return parse_quantity_with_format(text)[0]


def parse_quantity_with_format(text: str | int | float) -> tuple[Decimal, str]:
    """Like :func:`parse_quantity`, also returning the format the suffix implies."""
    if isinstance(text, bool):
        raise QuantityError(ERR_FORMAT_WRONG)
    if isinstance(text, int):
        return Decimal(text), FORMAT_DECIMAL_SI
    if isinstance(text, float):
        text = repr(text)
    if not isinstance(text, str):
        raise QuantityError(ERR_FORMAT_WRONG)
    match = _SHAPE.match(text)
    if not match:
        raise QuantityError(ERR_FORMAT_WRONG)
    number, suffix = match.group(1), match.group(2)
    if not _NUMBER.match(number):
        raise QuantityError(ERR_NUMERIC)
    try:
        value = Decimal(number)
    except InvalidOperation as exc:  # pragma: no cover - guarded by _NUMBER
        raise QuantityError(ERR_NUMERIC) from exc
    return _apply_suffix(value, suffix)


def _apply_suffix(value: Decimal, suffix: str) -> tuple[Decimal, str]:
    if suffix in _DECIMAL_SUFFIXES:
        return value.scaleb(_DECIMAL_SUFFIXES[suffix]), FORMAT_DECIMAL_SI
    if suffix in _BINARY_SUFFIXES:
        return value * (Decimal(2) ** _BINARY_SUFFIXES[suffix]), FORMAT_BINARY_SI
    exp = _EXPONENT.match(suffix)
    if exp:
        return value.scaleb(int(exp.group(1))), FORMAT_DECIMAL_EXPONENT
    raise QuantityError(ERR_SUFFIX)


def format_quantity(value: Decimal | int, fmt: str = FORMAT_DECIMAL_SI) -> str:
    """Render ``value`` canonically in ``fmt`` (apimachinery ``Quantity.String``).

    BinarySI falls back to DecimalSI for magnitudes below 1024 and for non-integers, so no
    precision is ever lost.
    """
    value = Decimal(value)
    if value == 0:
        return "0"
    if fmt == FORMAT_BINARY_SI:
        if abs(value) < 1024 or value != value.to_integral_value():
            fmt = FORMAT_DECIMAL_SI
        else:
            return _format_binary(int(value))
    return _format_decimal(value, fmt)


def _format_binary(amount: int) -> str:
    power = 0
    while power < len(_BINARY_BY_POWER) - 1 and amount % 1024 == 0 and amount != 0:
        amount //= 1024
        power += 1
    return f"{amount}{_BINARY_BY_POWER[power]}"


def _format_decimal(value: Decimal, fmt: str) -> str:
    sign, digits, exponent = value.normalize().as_tuple()
    assert isinstance(exponent, int)
    mantissa = int("".join(map(str, digits)))
    shift = exponent % 3
    mantissa *= 10 ** shift
    exponent -= shift
    text = ("-" if sign else "") + str(mantissa)
    if fmt == FORMAT_DECIMAL_SI and exponent in _DECIMAL_BY_EXPONENT:
        return text + _DECIMAL_BY_EXPONENT[exponent]
    return text if exponent == 0 else f"{text}e{exponent}"


def round_up_milli(value: Decimal) -> Decimal:
    """Round away from zero to three decimals, as resource-list defaulting does."""
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and exponent >= -3:
        return value
    return value.quantize(Decimal("0.001"), rounding=ROUND_UP)


def canonical_quantity(text: str | int | float) -> str:
    """The string the API server stores for a resource-list quantity (rounded to milli)."""
    value, fmt = parse_quantity_with_format(text)
    return format_quantity(round_up_milli(value), fmt)
