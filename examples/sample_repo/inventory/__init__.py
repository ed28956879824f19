"""A tiny stock-keeping package."""

from inventory.items import Item, PerishableItem
from inventory.store import Store

__all__ = ["Item", "PerishableItem", "Store"]
