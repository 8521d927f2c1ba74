"""OAuth scopes of machine clients (rigs), and which routes need which (issue 14).

A token's ``scope`` claim (space-separated, RFC 8693 §4.2 / RFC 9068 §2.2.3) limits what a
rig client may do. Tokens of people carry no ``scope`` claim: they keep the rights of their
roles, as before. A client token always carries one (possibly empty), so a client never
gets a person's rights by accident.

    tests:write   start a test (POST /test/{type})
    tests:read    read tests, readings and sensor types (GET /test*, /tests, /sensor-types*)
    events:write  send events (POST /send-event, and the gateway's POST /events)
    events:read   read event statistics and the processing log (GET /stats, /logs)

Admin routes stay admin-only: a client token has no roles, so never the admin role.
"""

from __future__ import annotations

TESTS_READ = "tests:read"
TESTS_WRITE = "tests:write"
EVENTS_READ = "events:read"
EVENTS_WRITE = "events:write"
SCOPES: tuple[str, ...] = (TESTS_READ, TESTS_WRITE, EVENTS_READ, EVENTS_WRITE)
# One scope token, and a space-separated list of them (for OpenAPI patterns).
SCOPE_PATTERN = "(" + "|".join(SCOPES) + ")"
SCOPE_LIST_PATTERN = f"^{SCOPE_PATTERN}( {SCOPE_PATTERN})*$"


def parse_scope(value: str) -> tuple[str, ...]:
    """The scopes of a space-separated ``scope`` string, in order, without repeats."""
    return tuple(dict.fromkeys(value.split()))


def format_scope(scopes: tuple[str, ...] | list[str]) -> str:
    return " ".join(scopes)
