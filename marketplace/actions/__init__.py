"""Every write in the marketplace: one module per area (STYLE.md)."""
