import numpy as np
import pytest

from s3rec_tf.data import synthetic
from s3rec_tf.data.reader import read_dataset


def test_seeded_and_structured(tmp_path):
    a = synthetic.generate(num_users=300, num_items=300, seed=7)
    b = synthetic.generate(num_users=300, num_items=300, seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a[0], b[0]))
    c = synthetic.generate(num_users=300, num_items=300, seed=8)
    assert not all(np.array_equal(x, y) for x, y in zip(a[0], c[0]))
    seqs, attrs = a
    assert min(len(s) for s in seqs) >= 5
    counts = np.bincount(np.concatenate(seqs), minlength=301)[1:]
    top = np.sort(counts)[::-1]
    # popularity skew: the top 10% of items get far more than 10% of interactions
    assert top[:30].sum() > 0.25 * counts.sum()
    # sequential dependence: consecutive items share attributes far more than random pairs
    def share(x, y):
        return bool(set(attrs[int(x)]) & set(attrs[int(y)]))
    rng = np.random.default_rng(0)
    flat = np.concatenate(seqs)
    consecutive = np.mean([share(s[i], s[i + 1]) for s in seqs for i in range(len(s) - 1)])
    random_pairs = np.mean([share(*rng.choice(flat, 2)) for _ in range(3000)])
    assert consecutive > random_pairs + 0.1


def test_writes_the_s3rec_format(tmp_path):
    seqs, attrs = synthetic.generate(num_users=50, num_items=200, seed=1)
    synthetic.write(str(tmp_path), seqs, attrs, "Syn")
    data = read_dataset(str(tmp_path), "Syn")
    assert data.num_users == 50 and data.num_items <= 200
    assert [s.tolist() for s in data.sequences] == [s.tolist() for s in seqs]


def test_rejects_too_small_catalogue():
    with pytest.raises(ValueError, match="num_items"):
        synthetic.generate(num_users=10, num_items=50)
