"""resource.Quantity parsing and canonical formatting."""

from __future__ import annotations

from decimal import Decimal

import pytest

from podling.api.quantity import (ERR_FORMAT_WRONG, ERR_NUMERIC, ERR_SUFFIX, QuantityError,
                                  canonical_quantity, format_quantity, parse_quantity)


@pytest.mark.parametrize("text,value", [
    ("0", "0"), ("1", "1"), ("100m", "0.1"), ("1.5", "1.5"), (".5", "0.5"), ("5.", "5"),
    ("+2", "2"), ("-3", "-3"), ("1k", "1000"), ("1M", "1000000"), ("2G", "2e9"),
    ("1T", "1e12"), ("1P", "1e15"), ("1E", "1e18"), ("1n", "1e-9"), ("1u", "1e-6"),
    ("1Ki", "1024"), ("1Mi", "1048576"), ("1.5Gi", "1610612736"), ("1Ti", str(2**40)),
    ("1Pi", str(2**50)), ("1Ei", str(2**60)), ("1e3", "1000"), ("1E3", "1000"),
    ("5e-3", "0.005"), ("1e+2", "100"), (2, "2"), (0.5, "0.5"),
])
def test_parse(text: str | int | float, value: str) -> None:
    assert parse_quantity(text) == Decimal(value)


@pytest.mark.parametrize("text,message", [
    ("", ERR_FORMAT_WRONG), ("abc", ERR_FORMAT_WRONG), ("1 Gi", ERR_FORMAT_WRONG),
    ("1Xi", ERR_FORMAT_WRONG), ("Gi", ERR_FORMAT_WRONG), ("1.2.3", ERR_NUMERIC),
    ("1mm", ERR_SUFFIX), ("1Kib", ERR_FORMAT_WRONG), ("1K", ERR_SUFFIX), ("1ki", ERR_SUFFIX),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(QuantityError) as exc:
        parse_quantity(text)
    assert str(exc.value) == message


def test_format_error_text_is_kubernetes() -> None:
    assert ERR_FORMAT_WRONG == ("quantities must match the regular expression "
                                "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")


@pytest.mark.parametrize("text,canonical", [
    ("0", "0"), ("0Mi", "0"), ("1", "1"), ("1000", "1k"), ("1500", "1500"), ("0.5", "500m"),
    ("1.5", "1500m"), ("100m", "100m"), ("0.1", "100m"), ("1.0001", "1001m"),
    ("1u", "1m"), ("-1", "-1"), ("1024Mi", "1Gi"), ("1536Mi", "1536Mi"), ("512Ki", "512Ki"),
    ("0.5Ki", "512"), ("1023", "1023"), ("128Mi", "128Mi"), ("2Gi", "2Gi"),
    ("1e3", "1e3"), ("1000000", "1M"), ("2k", "2k"), (1, "1"), (0.25, "250m"),
])
def test_canonical(text: str | int | float, canonical: str) -> None:
    assert canonical_quantity(text) == canonical


def test_format_binary_falls_back_to_decimal() -> None:
    assert format_quantity(Decimal("1.5"), "BinarySI") == "1500m"
    assert format_quantity(Decimal(1024 * 1024), "BinarySI") == "1Mi"
    assert format_quantity(Decimal(1000), "DecimalExponent") == "1e3"
