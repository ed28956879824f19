"""A store: stock levels by SKU."""

from __future__ import annotations

from inventory.items import Item

LOW_STOCK_THRESHOLD = 5


class Store:
    def __init__(self) -> None:
        self._items: dict[str, Item] = {}
        self._stock: dict[str, int] = {}

    def add(self, item: Item, quantity: int) -> None:
        self._items[item.sku] = item
        self._stock[item.sku] = self._stock.get(item.sku, 0) + quantity

    def remove(self, sku: str, quantity: int) -> None:
        if self._stock.get(sku, 0) < quantity:
            raise ValueError(f"not enough {sku} in stock")
        self._stock[sku] -= quantity

    def low_stock(self) -> list[str]:
        return sorted(sku for sku, n in self._stock.items() if n < LOW_STOCK_THRESHOLD)

    def value_cents(self) -> int:
        return sum(self._items[sku].total(n) for sku, n in self._stock.items())
