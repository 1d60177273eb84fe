#!/usr/bin/env python3
"""Builds the README's results table from benchmarks/results/*.json (fine-tuning records).

Usage: python benchmarks/results_table.py [--write]   (--write updates README.md
between the RESULTS-TABLE markers)
"""

import glob
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")
PAPER = {  # REFERENCE.md
    ("Beauty", "sampled", "SASRec"): {"HR@10": .4651, "NDCG@10": .3142, "MRR": .2850},
    ("Beauty", "sampled", "S3-Rec"): {"HR@10": .5687, "NDCG@10": .3816, "MRR": .3390},
    ("LastFM", "sampled", "SASRec"): {"HR@10": .4587, "NDCG@10": .2605, "MRR": .2209},
    ("LastFM", "sampled", "S3-Rec"): {"HR@10": .6083, "NDCG@10": .3577, "MRR": .2981},
    ("Sports_and_Outdoors", "sampled", "SASRec"): {"HR@10": .4645, "NDCG@10": .2875,
                                                   "MRR": .2524},
    ("Sports_and_Outdoors", "sampled", "S3-Rec"): {"HR@10": .5664, "NDCG@10": .3559,
                                                   "MRR": .3084},
    ("Sports_and_Outdoors", "full", "SASRec"): {"HR@10": .0350, "NDCG@10": .0192,
                                                "HR@20": .0507, "NDCG@20": .0231},
    ("Sports_and_Outdoors", "full", "S3-Rec"): {"HR@10": .0385, "NDCG@10": .0204,
                                                "HR@20": .0607, "NDCG@20": .0260},
    ("Beauty", "full", "SASRec"): {"HR@10": .0605, "NDCG@10": .0318, "HR@20": .0902,
                                   "NDCG@20": .0394},
    ("Beauty", "full", "S3-Rec"): {"HR@10": .0647, "NDCG@10": .0327, "HR@20": .0994,
                                   "NDCG@20": .0414},
    ("LastFM", "full", "SASRec"): {"HR@10": .0688, "NDCG@10": .0390, "HR@20": .0972,
                                   "NDCG@20": .0463},
    ("LastFM", "full", "S3-Rec"): {"HR@10": .0743, "NDCG@10": .0427, "HR@20": .1229,
                                   "NDCG@20": .0550},
}
KEYS = {"sampled": ("HR@10", "NDCG@10", "MRR"), "full": ("HR@10", "NDCG@10", "HR@20", "NDCG@20")}

#: Quality targets for our own pretraining with full-softmax fine-tuning (test, full
#: ranking, mean over at least `TARGET_SEEDS` fine-tuning seeds): a floor per metric, or,
#: for a dataset in `TARGET_ABOVE`, above the best of those baseline rows (tag, loss).
TARGET_METRICS = ("HR@10", "NDCG@10")
TARGET_SEEDS = 3
TARGETS = {"Beauty": {"HR@10": .105, "NDCG@10": .063},
           "Sports_and_Outdoors": {"HR@10": .065, "NDCG@10": .037}}
TARGET_ABOVE = {"LastFM": (("sasrec", "ce"), ("s3rec-authors", "ce"))}
#: The rule that picks a dataset's row: the highest mean of this validation metric.
SELECT_BY = ("valid/full", "NDCG@20")


def negatives_label(recs) -> str:
    """Which 99 negatives the sampled metrics of these runs were measured on."""
    labels = set()
    for rec, _ in recs:
        source = str(rec.get("negatives", ""))
        if source.endswith("_sample.txt"):
            labels.add("authors' file")
        elif source.startswith("generated("):
            rule, _, seed = source[len("generated("):-1].rpartition("seed=")
            how = "" if "per-user" in rule else ", earlier sequential draw"
            labels.add(f"ours, seed {seed}{how} (no authors' file)")
        else:
            labels.add(source or "not recorded")
    return "; ".join(sorted(labels))


def commits(recs) -> str:
    """The code the runs of a row were made with: their distinct short commits."""
    seen = []
    for rec, _ in recs:
        short = str(rec.get("commit") or "?")[:7]
        if short not in seen:
            seen.append(short)
    return ", ".join(f"`{c}`" for c in seen)


def display_command(command: str) -> str:
    """A record's command with the checkout's own path dropped (`<checkout>/../shared/...`
    reads `../shared/...`), wherever the checkout was."""
    return re.sub(r"(?<=\s)/\S*?/(?=\.\./shared/)", "", command.replace(ROOT + "/", ""))


def load():
    rows = {}
    for path in sorted(glob.glob(os.path.join(RESULTS, "*.json"))):
        with open(path) as f:
            rec = json.load(f)
        if "metrics" not in rec or "valid_metric" not in rec:
            continue
        name = os.path.basename(path)[:-5]
        dataset, tag, loss, valid, _seed = name.split("_")[-5:] if name.count("_") >= 4 \
            else (None,) * 5
        if name.startswith("Sports_and_Outdoors"):
            dataset = "Sports_and_Outdoors"
        group = (dataset, tag, loss, valid)
        rows.setdefault(group, []).append((rec, name))
    return rows


def pretraining(tag):
    """`(model, pretraining)` cells of an own-pretraining tag, else None.

    `own-pretrain-epN` is N epochs of our pretraining with its defaults (0: none);
    `own-pretrain-VARIANT-epN` the same with the named variant (e.g. `mask0.5`:
    `--mask-p 0.5`).
    """
    match = re.fullmatch(r"own-pretrain(?:-(?P<variant>.+))?-ep(?P<epochs>\d+)", tag)
    if not match:
        return None
    epochs = int(match["epochs"])
    if not epochs:
        return "SASRec", "none (same code/budget)"
    variant = f", {match['variant']}" if match["variant"] else ""
    return "S3-Rec", f"ours, {epochs} epochs{variant}"


def model_name(tag):
    return {"sasrec": "SASRec", "s3rec-authors": "S3-Rec"}.get(tag, tag)


def cell(vs) -> str:
    """One metric over a row's seeds: the value, or mean ± population std."""
    if len(vs) == 1:
        return f"{vs[0]:.4f}"
    return f"{statistics.mean(vs):.4f} ± {statistics.pstdev(vs):.4f}"


def table(rows=None) -> str:
    rows = load() if rows is None else rows
    out = []
    for protocol in ("sampled", "full"):
        keys = KEYS[protocol]
        out.append(f"\n**{'99 sampled negatives' if protocol == 'sampled' else 'Full ranking'} "
                   f"(test)**\n")
        negatives = protocol == "sampled"
        out.append("| dataset | model | pretraining | loss | early stop | seeds | "
                   + ("negatives | " if negatives else "")
                   + " | ".join(keys) + " | paper | commit | command |")
        out.append("|" + "---|" * (len(keys) + 8 + negatives))
        for (dataset, tag, loss, valid), recs in sorted(rows.items()):
            values = {k: [r["metrics"][f"test/{protocol}"][k] for r, _ in recs] for k in keys}
            paper = PAPER.get((dataset, protocol, model_name(tag.split("-")[0] if
                                                             tag.startswith("s3rec") else tag)))
            if tag.startswith("s3rec"):
                paper = PAPER.get((dataset, protocol, "S3-Rec"))
            paper_cell = " / ".join(f"{paper[k]:.4f}" for k in keys if k in paper) \
                if paper and loss == "bce" else ""
            pre = {"sasrec": "none", "s3rec-authors": "authors' 150-epoch checkpoint"}.get(
                tag, tag)
            label = model_name(tag)
            own = pretraining(tag)
            if own:
                label, pre = own
            seeds = ",".join(str(r["seed"]) for r, _ in recs)
            cmd = display_command(recs[0][0]["command"])
            out.append(f"| {dataset} | {label} "
                       f"| {pre} | {loss} | {valid.replace('valid', '')} | {seeds} | "
                       + (f"{negatives_label(recs)} | " if negatives else "")
                       + " | ".join(cell(values[k]) for k in keys)
                       + f" | {paper_cell} | {commits(recs)} | `{cmd}` |")
    return "\n".join(out) + "\n"


def _mean(recs, split, key):
    return statistics.mean(r["metrics"][split][key] for r, _ in recs)


def _stats(recs, key):
    return cell([r["metrics"]["test/full"][key] for r, _ in recs])


def selected_rows(rows=None) -> dict:
    """Per dataset, the row that validation selects among our own pretraining's
    full-softmax rows (`ce` or `sampled-ce` fine-tuning, early stopping on full
    ranking, at least `TARGET_SEEDS` seeds): the highest mean `SELECT_BY`.
    Returns `{dataset: (group, recs)}`; nothing on the test split is looked at."""
    rows = load() if rows is None else rows
    best = {}
    for group, recs in rows.items():
        dataset, tag, loss, valid = group
        own = pretraining(tag)
        if (not own or own[0] != "S3-Rec" or valid != "validfull"
                or not (loss.startswith("ce") or loss.startswith("sampled-ce"))
                or len(recs) < TARGET_SEEDS):
            continue
        score = _mean(recs, *SELECT_BY)
        if dataset not in best or score > best[dataset][0]:
            best[dataset] = (score, group, recs)
    return {d: (group, recs) for d, (_, group, recs) in best.items()}


def targets(rows=None) -> dict:
    """Per dataset, `{metric: (floor, strict)}`: a fixed floor (reached at `>=`), or
    the best mean of the `TARGET_ABOVE` rows (to be exceeded)."""
    rows = load() if rows is None else rows
    out = {d: {k: (v, False) for k, v in t.items()} for d, t in TARGETS.items()}
    for dataset, baselines in TARGET_ABOVE.items():
        groups = [rows[(dataset, tag, loss, "validfull")] for tag, loss in baselines
                  if (dataset, tag, loss, "validfull") in rows]
        if groups:
            out[dataset] = {k: (max(_mean(g, "test/full", k) for g in groups), True)
                            for k in TARGET_METRICS}
    return out


def target_table(rows=None) -> str:
    """The quality targets against the rows validation selects, with each row's gain
    over SASRec `ce` (no pretraining, same code)."""
    rows = load() if rows is None else rows
    goals, chosen = targets(rows), selected_rows(rows)
    out = ["\n**Quality targets: our own pretraining, test full ranking** (per dataset the "
           f"row with the highest mean validation {SELECT_BY[1]} among our own pretraining's "
           f"full-softmax rows with {TARGET_SEEDS}+ fine-tuning seeds; mean ± std over "
           "those seeds; \"gain\" is over SASRec `ce`, the same code without "
           "pretraining)\n",
           "| dataset | selected row | seeds | valid " + SELECT_BY[1] + " | "
           + " | ".join(f"test {k}" for k in TARGET_METRICS)
           + " | target | met | SASRec `ce` | gain |",
           "|" + "---|" * (8 + len(TARGET_METRICS))]
    for dataset in sorted(goals):
        goal = goals[dataset]
        wanted = " / ".join(f"{'>' if strict else '≥'} {v:.4f}" for v, strict in
                            (goal[k] for k in TARGET_METRICS))
        if dataset not in chosen:
            out.append(f"| {dataset} | none yet | | | " + " | " * len(TARGET_METRICS)
                       + f"{wanted} | no | | |")
            continue
        (_, tag, loss, _), recs = chosen[dataset]
        verdicts = []
        for k in TARGET_METRICS:
            value, (floor, strict) = _mean(recs, "test/full", k), goal[k]
            if value > floor or (value == floor and not strict):
                continue
            verdicts.append(f"{k} {(value / floor - 1) * 100:+.1f}%")
        met = "yes" if not verdicts else "no: " + ", ".join(verdicts)
        base = rows.get((dataset, "sasrec", "ce", "validfull"))
        base_cell = " / ".join(_stats(base, k) for k in TARGET_METRICS) if base else ""
        gain = " / ".join(
            f"{(_mean(recs, 'test/full', k) / _mean(base, 'test/full', k) - 1) * 100:+.0f}%"
            for k in TARGET_METRICS) if base else ""
        out.append(f"| {dataset} | {pretraining(tag)[1]}, {loss} | "
                   f"{','.join(str(r['seed']) for r, _ in recs)} | "
                   f"{_mean(recs, *SELECT_BY):.5f} | "
                   + " | ".join(_stats(recs, k) for k in TARGET_METRICS)
                   + f" | {wanted} | {met} | {base_cell} | {gain} |")
    return "\n".join(out) + "\n"


def results_block() -> str:
    """What the README holds between its RESULTS-TABLE markers."""
    rows = load()
    return table(rows) + target_table(rows)


def main():
    text = results_block()
    if "--write" in sys.argv:
        readme = os.path.join(ROOT, "README.md")
        with open(readme) as f:
            content = f.read()
        start, end = "<!-- RESULTS-TABLE:START -->", "<!-- RESULTS-TABLE:END -->"
        head, rest = content.split(start, 1)
        _, tail = rest.split(end, 1)
        with open(readme, "w") as f:
            f.write(head + start + "\n" + text + end + tail)
    print(text)


if __name__ == "__main__":
    main()
