"""Money arithmetic in integer fen. The commission split lives here and nowhere else."""

import re

BASIS_POINTS = 10_000


def split_commission(*, price_fen: int, rate_bp: int) -> tuple[int, int]:
    """Returns (commission_fen, seller_fen); they add up to price_fen exactly.

    Rounding rule: the commission is rounded half up to a whole fen (integer arithmetic, no
    floats), and the seller gets the rest, so no fen is ever created or lost.
    """
    if price_fen < 0 or not 0 <= rate_bp <= BASIS_POINTS:
        raise ValueError("price must be >= 0 and the rate within 0..10000 basis points")
    commission = (price_fen * rate_bp + BASIS_POINTS // 2) // BASIS_POINTS
    return commission, price_fen - commission


def sale_split(
    *, price_fen: int, refunded_fen: int, rate_bp: int, shipping_fee_fen: int = 0
) -> tuple[int, int]:
    """(commission_fen, seller_fen) of a sale after refunds. The buyer paid price + shipping;
    commission is charged only on the item price the buyer finally paid for, with
    `split_commission`'s rounding, and the seller gets everything else paid, shipping included.
    A refund comes off the item price first, then the shipping (a full refund returns both).
    The one rule for payment (nothing refunded), a partial refund settled in a dispute, and the
    credit; commission + seller + refunded = price + shipping, exactly."""
    if price_fen < 0 or shipping_fee_fen < 0:
        raise ValueError("price and shipping must be >= 0")
    if not 0 <= refunded_fen <= price_fen + shipping_fee_fen:
        raise ValueError("the refund must be between 0 and the price plus shipping")
    item_paid = max(price_fen - refunded_fen, 0)
    shipping_paid = price_fen + shipping_fee_fen - refunded_fen - item_paid
    commission, item_to_seller = split_commission(price_fen=item_paid, rate_bp=rate_bp)
    return commission, item_to_seller + shipping_paid


def yuan(fen: int | None, *, grouped: bool = False) -> str:
    """An amount of fen as staff read it: "-1234.50" (or "-1,234.50" grouped), "-" for none.
    Integer arithmetic only, so no amount is ever shown rounded."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouped else f"{sign}{whole}.{cents:02d}"


def yuan_label(fen: int | None) -> str:
    """The one way staff read an amount: "¥1,234.56", "-¥5.00" for a negative, "-" for none."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    return f"{sign}¥{yuan(abs(fen), grouped=True)}"


_YUAN = re.compile(r"(?P<whole>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<cents>\d{1,2}))?", re.ASCII)


def parse_yuan(text: str) -> int:
    """Staff type yuan, we store fen: "1,234.5" → 123450. A leading "¥" and surrounding spaces
    are accepted; a third decimal ("12.345"), a sign, an exponent or anything else raises
    ValueError, so no amount is ever rounded on the way in (no floats touch it)."""
    cleaned = text.strip().removeprefix("¥").removeprefix("￥").strip()
    match = _YUAN.fullmatch(cleaned)
    if match is None:
        raise ValueError(f"not an amount in yuan with at most two decimals: {text!r}")
    whole = int(match["whole"].replace(",", ""))
    cents = int((match["cents"] or "0").ljust(2, "0"))
    return whole * 100 + cents
