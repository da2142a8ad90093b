"""Django admin, one module per area; importing them registers the models."""

from marketplace.admin import (
    accounts,  # noqa: F401
    catalog,  # noqa: F401
    orders,  # noqa: F401
    wallet,  # noqa: F401
)
