"""Money arithmetic in integer fen. The commission split lives here and nowhere else."""

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


def sale_split(*, price_fen: int, refunded_fen: int, rate_bp: int) -> tuple[int, int]:
    """(commission_fen, seller_fen) of a sale after refunds: commission is charged only on what
    the buyer finally paid (price − refunded), with `split_commission`'s rounding. The one rule
    for payment (nothing refunded), a partial refund settled in a dispute, and the credit."""
    if not 0 <= refunded_fen <= price_fen:
        raise ValueError("the refund must be between 0 and the price")
    return split_commission(price_fen=price_fen - refunded_fen, rate_bp=rate_bp)


def yuan(fen: int | None, *, grouped: bool = False) -> str:
    """An amount of fen as staff read it: "-1234.50" (or "-1,234.50" grouped), "-" for none.
    Integer arithmetic only, so no amount is ever shown rounded."""
    if fen is None:
        return "-"
    sign = "-" if fen < 0 else ""
    whole, cents = divmod(abs(fen), 100)
    return f"{sign}{whole:,}.{cents:02d}" if grouped else f"{sign}{whole}.{cents:02d}"
