"""Speed kernels of the encoder: packing a batch's items and bucketing by length.

`TokenLayout` lists a left-padded batch's items alone, grouped in buckets of
similar length; `encode_bucketed` and `encode_positions` run a
`SequenceEncoder` (`s3rec_tf.models.layers`) on them, so the padding costs
no work. Values are those of the padded batch up to float rounding.
"""

from __future__ import annotations

import tensorflow as tf

from s3rec_tf import ids
from s3rec_tf.models.layers import (SequenceEncoder, causal_attention_bias,
                                    padding_attention_bias)

#: Default bucket edges (in items) for `encode_bucketed`.
DEFAULT_LENGTH_BUCKETS = (4, 8, 16, 32)


class _Bucket:
    """One bucket of a `TokenLayout`: its rows on a `[rows, width]` grid."""

    def __init__(self, grid_ids, causal, max_length):
        shape = tf.shape(grid_ids)
        self.rows, self.width = shape[0], shape[1]
        # a row's items, and its last column even when that is padding (a row without
        # items), so that every row has a last token
        is_token = tf.logical_or(grid_ids > ids.PADDING_ID,
                                 tf.range(self.width)[None, :] == self.width - 1)
        self.coords = tf.cast(tf.where(is_token), tf.int32)  # [tokens, 2], row by row
        self.token_ids = tf.gather_nd(grid_ids, self.coords)
        self.positions = max_length - self.width + self.coords[:, 1]
        self.row_tokens = tf.reduce_sum(tf.cast(is_token, tf.int32), axis=1)
        self.num_tokens = tf.shape(self.coords)[0]
        self.bias = causal_attention_bias(grid_ids) if causal else padding_attention_bias(grid_ids)

    def to_grid(self, tokens):
        """`[tokens, d]` -> `[rows, width, d]`, zeros at padding."""
        return tf.scatter_nd(self.coords, tokens,
                             tf.stack([self.rows, self.width, tf.shape(tokens)[1]]))

    def from_grid(self, grid):
        """`[rows, width, d]` -> `[tokens, d]`."""
        return tf.gather_nd(grid, self.coords)


class TokenLayout:
    """A left-padded batch as its items alone, grouped in buckets of similar length.

    Rows are split by their number of items into buckets `(0, e1], (e1, e2],
    ..., (e_last, seq_len]`, each cut to its bucket's upper edge (position
    ids kept). The batch's items (its tokens) are listed bucket by bucket,
    row by row; per-position layers run on them all at once, and attention
    runs per bucket on its grid (`TransformerBlock.call_tokens`).

    Args:
        item_ids: int `[batch, seq_len]`, left-padded with 0.
        bucket_edges: increasing ints.
        max_length: int. The encoder's number of positions.
        causal: bool. Causal (fine-tuning) or bidirectional attention bias.
    """

    def __init__(self, item_ids, bucket_edges, max_length: int, causal: bool):
        item_ids = tf.cast(item_ids, tf.int32)
        self.batch = tf.shape(item_ids)[0]
        self.seq_len = tf.shape(item_ids)[1]
        lengths = tf.reduce_sum(tf.cast(item_ids > ids.PADDING_ID, tf.int32), axis=1)
        edges = [int(e) for e in bucket_edges]
        self.num_buckets = len(edges) + 1
        bucket = tf.searchsorted(tf.constant(edges, tf.int32), lengths, side="left")
        rows = tf.dynamic_partition(item_ids, bucket, self.num_buckets)
        self.row_index = tf.dynamic_partition(tf.range(self.batch), bucket, self.num_buckets)
        self.buckets = []
        for k in range(self.num_buckets):
            width = self.seq_len if k == len(edges) else tf.minimum(self.seq_len, edges[k])
            self.buckets.append(_Bucket(rows[k][:, self.seq_len - width:], causal, max_length))
        self.token_ids = tf.concat([b.token_ids for b in self.buckets], 0)
        self.positions = tf.concat([b.positions for b in self.buckets], 0)
        self.token_counts = tf.stack([b.num_tokens for b in self.buckets])
        self.row_counts = tf.stack([b.rows for b in self.buckets])
        # each row's last token in the list
        self.last_tokens = tf.cumsum(tf.concat([b.row_tokens for b in self.buckets], 0)) - 1
        # each token's [row, column] in the batch
        self.batch_coords = tf.concat([
            tf.stack([tf.gather(index, b.coords[:, 0]), self.seq_len - b.width + b.coords[:, 1]],
                     axis=1)
            for index, b in zip(self.row_index, self.buckets)], 0)

    def gather(self, values):
        """Each token's entry of a `[batch, seq_len, ...]` tensor: `[tokens, ...]`."""
        return tf.gather_nd(values, self.batch_coords)

    def tokens_to_batch(self, tokens):
        """`[tokens, d]` -> `[batch, seq_len, d]` in the batch's row order, zeros at padding."""
        outputs = []
        for bucket, chunk in zip(self.buckets, tf.split(tokens, self.token_counts,
                                                        num=self.num_buckets)):
            grid = bucket.to_grid(chunk)
            outputs.append(tf.pad(grid, [[0, 0], [self.seq_len - bucket.width, 0], [0, 0]]))
        return tf.dynamic_stitch(self.row_index, outputs)

    def rows_to_batch(self, rows):
        """`[batch, d]` in bucket order (one per row) -> `[batch, d]` in the batch's order."""
        return tf.dynamic_stitch(self.row_index,
                                 tf.split(rows, self.row_counts, num=self.num_buckets))


def encode_bucketed(encoder: SequenceEncoder, item_ids, causal: bool = False, training=None,
                    bucket_edges=DEFAULT_LENGTH_BUCKETS, last_only: bool = False):
    """Encodes a left-padded batch without computing its padding; exact, less work.

    The batch's items (`TokenLayout`) go through the embedding, dense layers,
    LayerNorms and dropout as one `[tokens, hidden]` block; attention runs
    per bucket of similar length, each cut to its bucket's upper edge
    (position ids kept). Real positions get the same values as
    `encoder(item_ids)` up to float rounding, because padded keys are
    masked; padded positions hold 0, which no loss reads. The batch (and so
    the loss and gradient) is unchanged: only the work is. A row without
    items gets a defined output from its last (padded) position alone.

    Args:
        encoder: `SequenceEncoder`.
        item_ids: int `[batch, seq_len]`, left-padded with 0.
        causal: bool. Causal (fine-tuning) or bidirectional attention.
        bucket_edges: increasing ints. Defaults to `(4, 8, 16, 32)`.
        last_only: bool. Only the last position's output (see
            `SequenceEncoder.call`).

    Returns:
        `[batch, seq_len, hidden]` (`[batch, 1, hidden]` with `last_only`).
    """
    layout = TokenLayout(item_ids, bucket_edges, encoder.max_length, causal)
    x = encoder.encode_tokens(layout, training=training, last_only=last_only)
    if last_only:
        return layout.rows_to_batch(x)[:, None]
    return layout.tokens_to_batch(x)


def encode_positions(encoder: SequenceEncoder, item_ids, causal: bool, training=None,
                     bucket_edges=DEFAULT_LENGTH_BUCKETS, shards: int = 1):
    """The outputs at a batch's positions as rows, for losses that read them one by one.

    With `bucket_edges`, only the items are encoded (`TokenLayout`); without,
    the padded batch as one block. With `shards` > 1 the batch's rows are
    split into that many consecutive parts, each encoded on its own: the
    parts share no op until their rows are joined, so TensorFlow's inter-op
    threads run them (and their gradients) side by side
    (`s3rec_tf.runtime.batch_shards`). Each position's output is the same as
    unsharded (dropout draws its masks per part).

    Returns:
        `(rows, per_position)`: the outputs `[positions, hidden]`, and a
        function that gives any `[batch, seq_len]` tensor's entries at the
        same positions, in the same order.
    """
    if shards > 1:
        size = tf.shape(item_ids)[0]
        bounds = [size * k // shards for k in range(shards + 1)]
        parts = [encode_positions(encoder, item_ids[lo:hi], causal, training, bucket_edges)
                 for lo, hi in zip(bounds, bounds[1:])]

        def per_position(values):
            return tf.concat([read(values[lo:hi]) for (_, read), lo, hi
                              in zip(parts, bounds, bounds[1:])], 0)

        return tf.concat([rows for rows, _ in parts], 0), per_position
    if bucket_edges:
        layout = TokenLayout(item_ids, bucket_edges, encoder.max_length, causal)
        return encoder.encode_tokens(layout, training=training), layout.gather
    out = encoder(item_ids, causal=causal, training=training)
    return (tf.reshape(out, [-1, encoder.hidden_size]),
            lambda values: tf.reshape(values, [-1]))
