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


def test_repeat_rate_zero_is_the_output_without_repeats(tmp_path):
    import hashlib
    # the sequences file of this configuration, as written before repeats existed
    seqs, attrs = synthetic.generate(num_users=50, num_items=200, seed=1, repeat_rate=0.0)
    paths = synthetic.write(str(tmp_path), seqs, attrs, "Syn")
    assert hashlib.sha256(open(paths["sequences"], "rb").read()).hexdigest() == \
        "4631952e26e5d60cc61af1ebe0333fb21012826da28dcb4f1518d01719e9cc91"
    assert all(len(set(s.tolist())) == len(s) for s in seqs)


def test_repeat_rate_repeats_earlier_items_of_the_user(tmp_path):
    seqs, attrs = synthetic.generate(num_users=300, num_items=300, seed=2, repeat_rate=0.3)
    events = repeats = 0
    for s in seqs:
        for i in range(1, len(s)):
            events += 1
            repeats += int(s[i] in set(s[:i].tolist()))
    assert 0.25 < repeats / events < 0.35  # only repeat draws repeat; new items are new
    assert min(len(s) for s in seqs) >= 5
    # the reader takes them as they are (a user may hold an item twice)
    synthetic.write(str(tmp_path), seqs, attrs, "Rep")
    data = read_dataset(str(tmp_path), "Rep")
    assert [s.tolist() for s in data.sequences] == [s.tolist() for s in seqs]
    with pytest.raises(ValueError, match="repeat_rate"):
        synthetic.generate(num_users=10, num_items=200, repeat_rate=1.5)
