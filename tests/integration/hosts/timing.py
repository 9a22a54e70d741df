"""Short leases for tests and the failover bench (no Django import: bench/ reads it before setup)."""

from __future__ import annotations

LEASE, HEARTBEAT, FENCE = 6, 1, 3
HOST_ENV = {
    "HOST_LEASE_SECONDS": str(LEASE),
    "HOST_HEARTBEAT_SECONDS": str(HEARTBEAT),
    "BOT_FENCE_SECONDS": str(FENCE),
    "BOT_RECONCILE_INTERVAL": "1",
}
