"""The negatives of the sampled-ranking protocol: one rule, one file format.

Every path (the `--data` reader of the command line, `s3rec-tf prepare`, the
pipeline's sequence step) takes the sampled negatives from here:

1. the authors' `<Name>_sample.txt` when it exists (`user neg_1 ... neg_99`
   per line, the paper's ids), read by `read_sample_file`;
2. otherwise 99 distinct items per user, uniform over the catalogue
   `1..num_items` without the user's own items, drawn by `draw_for_user`
   from a generator seeded with a hash of `(seed, user id)`. The draw of a
   user depends only on the seed, the user's raw id, the user's items and
   the catalogue size, never on the order users are read in, so a
   sequential reader and a distributed Beam step give the same negatives.

Drawn negatives are saved in the same `<Name>_sample.txt` format
(`write_sample_file`) so later runs can reuse them.
"""

from __future__ import annotations

import hashlib
import os

import numpy as np

from s3rec_tf.errors import DataError

NUM_NEGATIVES = 99


def user_rng(seed: int, user: str) -> np.random.Generator:
    """The generator of one user's draw: seeded by `sha256(f"{seed}:{user}")`."""
    digest = hashlib.sha256(f"{int(seed)}:{user}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def draw_negatives(rng: np.random.Generator, history: set, num_items: int, count: int) -> list:
    """`count` distinct uniform items in `1..num_items`, none in `history`.

    The caller ensures at least `count` items lie outside `history`.
    """
    chosen: list = []
    taken: set = set()
    while len(chosen) < count:
        for item in rng.integers(1, num_items + 1, size=2 * count).tolist():
            if item not in history and item not in taken:
                taken.add(item)
                chosen.append(item)
                if len(chosen) == count:
                    break
    return chosen


def draw_for_user(user: str, items, num_items: int, seed: int,
                  count: int = NUM_NEGATIVES) -> list:
    """The seeded negatives of one user (`user`: the raw id as text).

    Raises:
        ValueError: when fewer than `count` items lie outside the history.
    """
    history = {int(i) for i in items}
    if num_items - len(history) < count:
        raise ValueError(f"user {user} has {len(history)} distinct items of {num_items}: "
                         f"fewer than {count} negatives are left to sample")
    return draw_negatives(user_rng(seed, str(user)), history, num_items, count)


def generate_negatives(sequences, num_items: int, seed: int, count: int = NUM_NEGATIVES,
                       user_ids=None) -> np.ndarray:
    """`[num_users, count]` negatives by `draw_for_user` (`user_ids` default `1..N`)."""
    if user_ids is None:
        user_ids = range(1, len(sequences) + 1)
    out = np.zeros((len(sequences), count), dtype=np.int64)
    for u, (user, seq) in enumerate(zip(user_ids, sequences)):
        out[u] = draw_for_user(str(user), np.asarray(seq).tolist(), num_items, seed, count)
    return out


def parse_sample_line(text: str, path: str, line: int, num_items: int | None = None,
                      count: int = NUM_NEGATIVES):
    """One line of `<Name>_sample.txt` -> `(user, [negatives])` (ids as text / int)."""
    tokens = text.split()
    if not tokens:
        raise DataError(path, "empty line", line=line)
    from s3rec_tf.data.reader import _parse_int  # the one strict id rule
    values = [_parse_int(t, path, line, "item id" if i else "user id")
              for i, t in enumerate(tokens)]
    negatives = values[1:]
    if len(negatives) != count:
        raise DataError(path, f"{len(negatives)} negatives, expected {count}", line=line)
    if num_items is not None and max(negatives) > num_items:
        raise DataError(path, f"negative item {max(negatives)} exceeds the largest item id "
                              f"{num_items}", line=line)
    return tokens[0], negatives


def read_sample_file(path: str, user_ids, num_items: int,
                     count: int = NUM_NEGATIVES) -> np.ndarray:
    """Reads `<Name>_sample.txt`: the negatives of each user of `user_ids`, in that order.

    Lines are matched by user id; every user of `user_ids` needs exactly one
    line (users the reader dropped may have lines too).
    """
    from s3rec_tf.data.reader import _read_lines
    rows, first = {}, {}
    for number, text in enumerate(_read_lines(path), start=1):
        user, negatives = parse_sample_line(text, path, number, num_items, count)
        if user in rows:
            raise DataError(path, f"user {user} appears again (first on line {first[user]})",
                            line=number)
        rows[user], first[user] = negatives, number
    missing = [str(u) for u in user_ids if str(u) not in rows]
    if missing:
        raise DataError(path, f"no negatives for {len(missing)} user(s) of the interaction "
                              f"file, e.g. user {missing[0]}")
    return np.asarray([rows[str(u)] for u in user_ids], dtype=np.int64).reshape(-1, count)


def write_sample_file(path: str, user_ids, negatives) -> None:
    """Writes negatives in `<Name>_sample.txt` format (atomically)."""
    from s3rec_tf.io import write_file_atomic
    write_file_atomic(path, "".join(" ".join(str(v) for v in [user, *(int(x) for x in row)])
                                    + "\n" for user, row in zip(user_ids, negatives)))


def source_label(seed: int) -> str:
    """How drawn negatives are recorded (`negatives` in results, `stats.json`).

    Names the rule: records from before it (`generated(seed=N)`, without
    `per-user`) came from an earlier sequential draw.
    """
    return f"generated(per-user, seed={seed})"


def sample_file_name(name: str) -> str:
    return f"{name}_sample.txt"
