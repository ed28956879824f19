"""Things a store keeps."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass
class Item:
    """An item with a unit price in cents."""

    sku: str
    name: str
    price_cents: int

    def total(self, quantity: int) -> int:
        return self.price_cents * quantity


@dataclass
class PerishableItem(Item):
    """An item that expires."""

    expires: date

    def is_expired(self, today: date) -> bool:
        return today > self.expires
