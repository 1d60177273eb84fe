import pytest

from s3rec_tf.evaluation_gate import bless, flatten


def test_flatten():
    assert flatten({"test/full": {"HR@10": 0.5}}) == {"test/full/HR@10": 0.5}


def test_thresholds_and_baseline():
    m = {"test/full/NDCG@10": 0.05, "test/sampled/HR@10": 0.4}
    assert bless(m, {"test/sampled/HR@10": 0.3}, "test/full/NDCG@10")["blessed"]
    no = bless(m, {"test/sampled/HR@10": 0.5}, "test/full/NDCG@10")
    assert not no["blessed"] and "threshold" in no["reasons"][0]
    worse = bless(m, {}, "test/full/NDCG@10", baseline={"test/full/NDCG@10": 0.06})
    assert not worse["blessed"] and "below the last blessed" in worse["reasons"][0]
    assert bless(m, {}, "test/full/NDCG@10", baseline={"test/full/NDCG@10": 0.05})["blessed"]
    with pytest.raises(ValueError, match="unknown metric"):
        bless(m, {"nope": 1}, "test/full/NDCG@10")
