"""Seeded samples of a stream of rows in memory bounded by the sample, not the stream.

`BottomK` keeps a uniform sample without replacement of at most `count` rows of blocks of rows
(the frames or latents of one utterance each) that arrive one at a time: every row gets a
random key drawn from its block's own seed (the sample's seed and a 128-bit hash of the block's
name), and the
rows with the `count` smallest keys are kept (bottom-k sampling). Which rows are kept depends on
the seed and the blocks alone, not on the order or grouping they arrive in (shard by shard, in
any shard order); a stream of at most `count` rows is kept whole, in the order it came.
"""

from __future__ import annotations

import hashlib

import numpy as np


class BottomK:
    def __init__(self, count: int, seed: int) -> None:
        if count <= 0:
            raise ValueError(f"a sample of {count} rows")
        self.count, self.seed = count, seed
        self._rows: list[np.ndarray] = []
        self._keys: list[np.ndarray] = []
        self._pending = 0
        self.seen = 0  # rows offered

    def add(self, name: str, rows: np.ndarray) -> None:
        """Offer the rows [n, ...] of block `name` (names must be unique in the stream)."""
        digest = hashlib.blake2b(name.encode(), digest_size=16).digest()
        rng = np.random.default_rng([self.seed, *np.frombuffer(digest, np.uint32).tolist()])
        self._rows.append(rows)
        self._keys.append(rng.random(len(rows)))
        self._pending += len(rows)
        self.seen += len(rows)
        if self._pending > 2 * self.count:
            self._compact()

    def _compact(self) -> None:
        rows, keys = np.concatenate(self._rows), np.concatenate(self._keys)
        if len(rows) > self.count:
            keep = np.sort(np.argpartition(keys, self.count - 1)[: self.count])  # stream order
            rows, keys = rows[keep], keys[keep]
        self._rows, self._keys, self._pending = [rows], [keys], len(rows)

    def result(self) -> np.ndarray:
        """The kept rows [min(count, seen), ...], in the order they came."""
        if not self._rows:
            raise ValueError("an empty stream has no sample")
        self._compact()
        return self._rows[0]
