"""Process-wide TensorFlow CPU settings that decide training speed.

S3-Rec's pretraining step is many small ops on batches cut into length
buckets. On a small CPU two settings matter there more than any kernel
(measured on the 2-core machine of the benchmarks; README "Performance
notes"):

- **intra-op threads = 1, inter-op threads = cores**: independent ops (the
  length buckets, the segment passes, forward and gradient branches) run
  side by side instead of each small op being split across the cores.
- **oneDNN off** (`TF_ENABLE_ONEDNN_OPTS=0`): on these small shapes, which
  change from batch to batch, oneDNN's batch-matmul and transpose kernels
  took 2-4x longer per call than TensorFlow's Eigen kernels (op profile of a
  LastFM step). Both are float32; results differ only by rounding.

Large scoring matmuls (full softmax, full ranking) want the opposite: both
threads per op and oneDNN. `WORKLOADS` holds the measured choice per kind of
work. Both must be set before TensorFlow runs its first op (oneDNN: before
TensorFlow is imported), so the command line calls `configure` first thing;
library users call it at the top of their program, or keep TensorFlow's
defaults.
"""

from __future__ import annotations

import glob
import os
import sys
import warnings

#: Where the NVIDIA driver lists the GPUs it sees.
NVIDIA_PROC = "/proc/driver/nvidia/gpus"

#: Up to this many cores, `"auto"` uses one intra-op thread for small-op work.
SMALL_CPU = 4

#: What suits each kind of work, measured with `s3rec-tf bench` on 2 cores
#: (README "Performance notes"): small bucketed ops want one thread per op and
#: no oneDNN; large scoring matmuls (full softmax, full ranking) want both.
WORKLOADS = {
    "pretrain": {"single_thread_ops": True, "onednn": False},
    "finetune-bce": {"single_thread_ops": True, "onednn": True},
    "finetune-ce": {"single_thread_ops": False, "onednn": True},
    "finetune-sampled-ce": {"single_thread_ops": True, "onednn": True},
    "default": {"single_thread_ops": False, "onednn": True},
}


def training_workload(work: str) -> str:
    """The workload of training `work`: `"pretrain"`, or a fine-tuning loss
    (`"bce"` -> `"finetune-bce"`). Raises `ValueError` for any other work."""
    workload = "pretrain" if work == "pretrain" else f"finetune-{work}"
    if workload not in WORKLOADS:
        trainings = sorted(w.removeprefix("finetune-") for w in WORKLOADS if w != "default")
        raise ValueError(f"work must be one of {trainings}. Received: work={work!r}")
    return workload


def recommended(workload: str = "default", cpu_count: int | None = None) -> dict:
    """The `"auto"` settings for a workload: `intra_op_threads`,
    `inter_op_threads` (0: TensorFlow's choice) and `onednn`."""
    if workload not in WORKLOADS:
        raise ValueError(f"Unknown workload {workload!r}; expected one of {sorted(WORKLOADS)}")
    cores = cpu_count or os.cpu_count() or 1
    w = WORKLOADS[workload]
    small = w["single_thread_ops"] and cores <= SMALL_CPU
    return {"intra_op_threads": 1 if small else 0, "inter_op_threads": cores if small else 0,
            "onednn": w["onednn"]}


#: Compute precisions (`--precision`) and their Keras dtype policies. Variables stay
#: float32; `mixed-bfloat16` runs the encoder's matmuls, attention and feed-forward layers
#: in bfloat16 and keeps its LayerNorms, its output, the heads, scores and losses in
#: float32. bfloat16 has float32's range, so it needs no loss scaling. (float16 is not
#: offered: with Keras's loss scaling around this project's sparse-gradient Adam the
#: weights turned NaN on the first step of a test, and that is not resolved.)
PRECISIONS = {"float32": "float32", "mixed-bfloat16": "mixed_bfloat16"}


def set_precision(precision: str = "float32") -> None:
    """Makes `precision` (a key of `PRECISIONS`) the policy of the models built next."""
    if precision not in PRECISIONS:
        raise ValueError(f"Unknown precision {precision!r}; expected one of {list(PRECISIONS)}")
    import keras
    keras.config.set_dtype_policy(PRECISIONS[precision])


def gpu_visible() -> bool:
    """Whether an NVIDIA GPU is visible to this process (TensorFlow's GPU builds need one).

    Read from the driver's `/proc` entries and `CUDA_VISIBLE_DEVICES`, without
    importing TensorFlow (oneDNN must be chosen before that import).
    """
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return bool(glob.glob(os.path.join(NVIDIA_PROC, "*")))


def configure(workload: str = "default", intra_op_threads="auto", inter_op_threads="auto",
              onednn="auto", precision: str = "float32") -> dict:
    """Applies thread and oneDNN settings to this process.

    Args:
        workload: str. One of `WORKLOADS`; decides the `"auto"` values.
        intra_op_threads: int | "auto". Threads one op may use (0: TensorFlow's
            default).
        inter_op_threads: int | "auto". Ops run at the same time (0: default).
        onednn: bool | "auto". Use TensorFlow's oneDNN kernels. Decided by the
            `TF_ENABLE_ONEDNN_OPTS` variable when TensorFlow is imported: if
            TensorFlow is already imported, it stays as it is (a warning says
            so when an explicit value differs).
        precision: str. A key of `PRECISIONS` (`set_precision`).

    Thread counts take effect only before TensorFlow's runtime starts; later,
    explicit counts are warned about and `"auto"` ones are left alone. When a
    GPU is visible (`gpu_visible`), `"auto"` leaves threads and oneDNN at
    TensorFlow's defaults: the choices in `WORKLOADS` were measured on CPUs.

    Returns:
        dict of the settings in force, for run records.
    """
    gpu = gpu_visible()
    if gpu:
        # measured on CPUs only: on a GPU machine "auto" keeps TensorFlow's defaults
        auto = {"intra_op_threads": 0, "inter_op_threads": 0, "onednn": None}
    else:
        auto = recommended(workload)
    intra = auto["intra_op_threads"] if intra_op_threads == "auto" else int(intra_op_threads)
    inter = auto["inter_op_threads"] if inter_op_threads == "auto" else int(inter_op_threads)
    if intra < 0 or inter < 0:
        raise ValueError(f"Thread counts must be >= 0. Received: intra={intra}, inter={inter}")
    use_onednn = auto["onednn"] if onednn == "auto" else bool(onednn)
    wanted = "1" if use_onednn else "0"
    if use_onednn is None:
        pass  # TensorFlow's default
    elif "tensorflow" in sys.modules:
        if onednn != "auto" and os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != wanted:
            warnings.warn("TensorFlow is already imported: the oneDNN setting is unchanged "
                          "(set TF_ENABLE_ONEDNN_OPTS before importing TensorFlow)",
                          stacklevel=2)
    else:
        os.environ["TF_ENABLE_ONEDNN_OPTS"] = wanted
    import tensorflow as tf

    set_precision(precision)
    if gpu and intra_op_threads == inter_op_threads == "auto":
        return settings()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra)
        tf.config.threading.set_inter_op_parallelism_threads(inter)
    except RuntimeError as e:  # the runtime already started
        if "auto" not in (intra_op_threads, inter_op_threads):
            warnings.warn(f"TensorFlow threads unchanged: {e}", stacklevel=2)
    return settings()


def batch_shards() -> int:
    """Parts a fine-tuning batch is split into (`NextItemModel`, `batch_shards=None`).

    With one thread per op (the small-op setting of `WORKLOADS`), a step is
    a chain of small ops that mostly leaves all but one core idle; split
    into one part per inter-op thread, the parts' chains run side by side.
    Otherwise 1. Measured on 2 cores: the `bce` step 1.09x with 2 parts
    (three-round A/B), slower with 4 (README "Performance notes"). Call
    after `configure`.
    """
    import tensorflow as tf

    threading = tf.config.threading
    inter = threading.get_inter_op_parallelism_threads()
    single_thread_ops = threading.get_intra_op_parallelism_threads() == 1
    return inter if single_thread_ops and inter > 1 else 1


def settings() -> dict:
    """The thread, oneDNN and precision settings this process runs with."""
    import keras
    import tensorflow as tf

    policy = keras.config.dtype_policy().name
    return {"precision": {v: k for k, v in PRECISIONS.items()}.get(policy, policy),
            "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
            "onednn": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "1") != "0",
            "batch_shards": batch_shards(), "cpu_count": os.cpu_count()}
