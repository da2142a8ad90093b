"""Catalog: categories, banners, home, listings, uploads (issue 3)."""

from ninja import Router

router = Router(tags=["catalog"])
