"""argon2id password hashing in a bounded thread pool (pwdlib; passlib is unmaintained).

argon2 is deliberately slow and memory-hard (RFC 9106 second recommended option: t=3,
m=64 MiB, p=4), so it runs off the event loop in a small pool: at most ``workers`` hashes at
once, which also bounds the memory they take. A login for an unknown user still verifies
against a dummy hash, so both answers take about the same time (no user enumeration).
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher


class PasswordService:
    def __init__(self, *, time_cost: int, memory_kib: int, parallelism: int, workers: int) -> None:
        self._hasher = PasswordHash(
            (Argon2Hasher(time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism),)
        )
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="argon2")
        self._slots = asyncio.Semaphore(workers)
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def hash(self, password: str) -> str:
        async with self._slots:
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._pool, self._hasher.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """True only if ``password`` matches; ``None`` (no such user) costs the same and fails."""
        target = password_hash if password_hash is not None else self._dummy_hash
        async with self._slots:
            loop = asyncio.get_running_loop()
            ok = await loop.run_in_executor(self._pool, self._hasher.verify, password, target)
        return ok and password_hash is not None

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
