"""Time one signed tree head, one inclusion proof and one consistency proof on a SQLite log.

Usage: .venv/bin/python -m bench.tlog_proofs [--leaves 20000] [--db /tmp/tlog-bench.db]
The log is built once (events written in batches of 1000) and reused by later runs.
"""
from __future__ import annotations

import argparse
import asyncio
import random
import time
from pathlib import Path

from admin_api.store import open_store
from admin_api.transparency import TransparencyLog

MASTER = b"bench-master-key-0123456789abcdef"


async def main(leaves: int, db: Path, rounds: int) -> None:
    store = await open_store(f"sqlite:///{db}", master_key=MASTER)
    try:
        log_id = "platform"
        have = await store.log_size(log_id)
        while have < leaves:
            n = min(1000, leaves - have)
            await store.write_audit_events([{"action": "bench.event", "details": {"i": have + i}} for i in range(n)])
            have += n
        tlog = TransparencyLog(store, MASTER)
        rng = random.Random(7)
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            head = await tlog.sign_head(log_id)
            await tlog.inclusion(log_id, rng.randrange(head.tree_size), head.tree_size)
            await tlog.consistency(log_id, rng.randrange(1, head.tree_size), head.tree_size)
            times.append(time.perf_counter() - start)
        times.sort()
        print(f"tree_size={head.tree_size} rounds={rounds} median={times[len(times) // 2] * 1000:.2f} ms "
              f"min={times[0] * 1000:.2f} ms max={times[-1] * 1000:.2f} ms")
    finally:
        await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--leaves", type=int, default=20_000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/tlog-bench.db"))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    asyncio.run(main(args.leaves, args.db, args.rounds))
