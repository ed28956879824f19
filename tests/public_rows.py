"""What the real public rows in the shared data folder hold, where more than one test expects it."""

from __future__ import annotations

from punie.records.toolcall_text import TextToolCall

# The call in the first row (Hermes) of other_toolcall_rows.jsonl.
HERMES_FLIGHT_SEARCH = TextToolCall(
    "search_flights",
    {
        "departure_city": "Los Angeles",
        "destination_city": "Auckland",
        "departure_date": "2023-07-10",
        "return_date": "2023-07-24",
        "class": "economy",
        "flexible_cancellation": True,
    },
)
