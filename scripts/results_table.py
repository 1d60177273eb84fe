#!/usr/bin/env python3
"""Builds the README's results table from results/*.json (fine-tuning records).

Usage: python scripts/results_table.py [--write]   (--write updates README.md
between the RESULTS-TABLE markers)
"""

import glob
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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
    for path in sorted(glob.glob(os.path.join(ROOT, "results", "*.json"))):
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


def table() -> str:
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
        for (dataset, tag, loss, valid), recs in sorted(load().items()):
            values = {k: [r["metrics"][f"test/{protocol}"][k] for r, _ in recs] for k in keys}

            def cell(vs):
                if len(vs) == 1:
                    return f"{vs[0]:.4f}"
                return f"{statistics.mean(vs):.4f} ± {statistics.pstdev(vs):.4f}"

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


def main():
    text = table()
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
