"""A seeded synthetic dataset in the S3-Rec format, with learnable structure.

Users move through latent topics: each user has a few preferred topics, the
next item's topic follows a topic-transition matrix (sequential dependence),
items within a topic are drawn with a Zipf-like popularity skew, and each
item's attributes are mostly its topic's attributes plus a little noise. So
attributes predict items (what AAP/MAP learn), items predict the next item
(what MIP/SP and fine-tuning learn), and a popularity baseline is beatable.
With a `repeat_rate`, users also come back to items they had before (repeat
consumption: music, local businesses, groceries), what the full ranking's
history rule (`s3rec_tf.models.ranking.answer_ranks`) is about.
"""

from __future__ import annotations

import json
import os
import tempfile

import numpy as np


def _check(num_items: int, min_length: int, max_length: int, repeat_rate: float = 0.0) -> None:
    if not 0.0 <= repeat_rate <= 1.0:
        raise ValueError(f"`repeat_rate` must be in [0, 1]. Received: repeat_rate={repeat_rate}")
    if num_items < max_length + 100:
        raise ValueError(f"`num_items` must exceed max_length + 100 so that 99 negatives "
                         f"remain per user. Received: num_items={num_items}, "
                         f"max_length={max_length}")
    if min_length < 3 or max_length < min_length:
        raise ValueError(f"Need 3 <= min_length <= max_length. Received: "
                         f"min_length={min_length}, max_length={max_length}")


def _cdf(p):
    """The cumulative table `Generator.choice(..., p=p)` builds on every call."""
    cdf = np.cumsum(p)
    return cdf / cdf[-1]


def iter_generate(num_users: int = 1000, num_items: int = 500, num_topics: int = 20,
                  num_attributes: int = 60, min_length: int = 5, max_length: int = 40,
                  seed: int = 0, repeat_rate: float = 0.0):
    """`(item_attributes, sequences)`: the attributes, then the users one at a time.

    The same draws as `generate` (which collects it), made in memory bounded
    by the catalogue: `sequences` is an iterator over the users, so writing
    10M interactions never holds them all. Each weighted draw reuses its
    precomputed cumulative table with the draw `Generator.choice` makes
    (one `random()`, `searchsorted(side="right")`), so the output is
    identical to calling `choice(..., p=...)` and its cost is O(log n).
    """
    _check(num_items, min_length, max_length, repeat_rate)
    rng = np.random.default_rng(seed)
    num_topics = max(1, min(num_topics, num_items // 5))
    item_topic = rng.integers(0, num_topics, size=num_items)
    # Zipf-like popularity inside each topic
    popularity = 1.0 / np.arange(1, num_items + 1) ** 0.8
    popularity = popularity[rng.permutation(num_items)]
    topic_items = [np.flatnonzero(item_topic == t) for t in range(num_topics)]
    topic_items = [t if len(t) else np.array([0]) for t in topic_items]
    topic_cdfs = [_cdf(popularity[t] / popularity[t].sum()) for t in topic_items]
    # sparse topic transitions: stay in the topic half the time, else move
    # mostly to 3 successor topics
    transition = np.full((num_topics, num_topics), 0.02 / num_topics)
    for t in range(num_topics):
        transition[t, t] += 0.5
        nxt = rng.choice(num_topics, size=min(3, num_topics), replace=False)
        transition[t, nxt] += rng.dirichlet(np.ones(len(nxt))) * 0.48
    transition /= transition.sum(axis=1, keepdims=True)
    transition_cdfs = [_cdf(row) for row in transition]
    # attributes tied to topics
    per_topic = max(2, num_attributes // num_topics)
    topic_attrs = [rng.choice(num_attributes, size=min(per_topic, num_attributes),
                              replace=False) + 1 for _ in range(num_topics)]
    item_attributes = {}
    for i in range(num_items):
        base = topic_attrs[item_topic[i]]
        k = int(rng.integers(1, min(4, len(base)) + 1))
        attrs = set(rng.choice(base, size=k, replace=False).tolist())
        if rng.random() < 0.2:
            attrs.add(int(rng.integers(1, num_attributes + 1)))
        item_attributes[i + 1] = sorted(int(a) for a in attrs)

    lengths = np.clip(rng.geometric(1.0 / 12, size=num_users) + min_length - 1,
                      min_length, max_length)

    def sequences():
        random, integers = rng.random, rng.integers
        for u in range(num_users):
            topic = int(integers(num_topics))
            chosen: list = []
            seen: set = set()
            while len(chosen) < lengths[u]:
                # one draw per event decides a repeat; none at all without repeats,
                # so the output of repeat_rate 0 is that of a generator without them
                if repeat_rate and chosen and random() < repeat_rate:
                    chosen.append(chosen[int(integers(len(chosen)))])
                    continue
                item = 0
                while not item or item in seen:  # a new item: redraw the seen ones
                    if random() < 0.85:
                        topic = int(transition_cdfs[topic].searchsorted(random(), side="right"))
                    else:
                        topic = int(integers(num_topics))
                    item = int(topic_items[topic][
                        topic_cdfs[topic].searchsorted(random(), side="right")]) + 1
                seen.add(item)
                chosen.append(item)
            yield np.asarray(chosen, dtype=np.int64)

    return item_attributes, sequences()


def generate(num_users: int = 1000, num_items: int = 500, num_topics: int = 20,
             num_attributes: int = 60, min_length: int = 5, max_length: int = 40,
             seed: int = 0, repeat_rate: float = 0.0):
    """Generates `(sequences, item_attributes)`.

    Args:
        num_users: int. Users (one sequence each).
        num_items: int. Catalogue size; item ids run `1..num_items`.
        num_topics: int. Latent topics.
        num_attributes: int. Attribute ids run `1..num_attributes`.
        min_length: int. Shortest sequence (>= 5, the five-core convention).
        max_length: int. Longest sequence.
        seed: int. Every draw comes from this seed.
        repeat_rate: float in [0, 1]. Probability that an event after a
            user's first repeats an item of the user's earlier history (drawn
            uniformly over the earlier events). Defaults to 0: no repeats,
            and no draw for them.

    Returns:
        `(sequences, item_attributes)`: a list of int arrays (item ids, no
        repeats within a user unless `repeat_rate`) and a dict
        `{item: sorted attribute list}`.
    """
    item_attributes, sequences = iter_generate(num_users, num_items, num_topics,
                                               num_attributes, min_length, max_length, seed,
                                               repeat_rate)
    return list(sequences), item_attributes


def mean_length(min_length: int = 5, max_length: int = 40) -> float:
    """Expected sequence length of `generate`: a geometric(1/12) shifted and clipped."""
    k = np.arange(1, max_length + 1)
    pmf = (11 / 12) ** (k - 1) / 12
    length = np.clip(k + min_length - 1, min_length, max_length)
    return float((pmf * length).sum() + (11 / 12) ** max_length * max_length)


def users_for(interactions: int, min_length: int = 5, max_length: int = 40) -> int:
    """Users that give about `interactions` interactions in expectation."""
    return max(1, round(interactions / mean_length(min_length, max_length)))


def write(output_dir: str, sequences, item_attributes: dict, name: str = "Synthetic") -> dict:
    """Writes `<name>.txt` and `<name>_item2attributes.json` (atomically).

    `sequences` may be any iterable (e.g. `iter_generate`'s): each user is
    written as it comes, so the file never needs the dataset in memory.

    Returns:
        dict of the written paths and `users`, `interactions` (counts written).
    """
    os.makedirs(output_dir, exist_ok=True)
    paths = {"sequences": os.path.join(output_dir, f"{name}.txt"),
             "attributes": os.path.join(output_dir, f"{name}_item2attributes.json")}
    with tempfile.TemporaryDirectory(dir=output_dir) as tmp:
        seq_tmp = os.path.join(tmp, "seq")
        attr_tmp = os.path.join(tmp, "attr")
        users = interactions = 0
        with open(seq_tmp, "w") as f:
            for user, seq in enumerate(sequences, start=1):
                f.write(" ".join(str(int(v)) for v in [user, *seq]) + "\n")
                users, interactions = user, interactions + len(seq)
        with open(attr_tmp, "w") as f:
            json.dump({str(k): v for k, v in item_attributes.items()}, f)
        os.replace(seq_tmp, paths["sequences"])
        os.replace(attr_tmp, paths["attributes"])
    return {**paths, "users": users, "interactions": interactions}
