from inventory import Item, Store


def test_low_stock() -> None:
    store = Store()
    store.add(Item("a1", "apple", 30), 3)
    store.add(Item("b2", "bread", 250), 10)
    assert store.low_stock() == ["a1"]
    assert store.value_cents() == 3 * 30 + 10 * 250
