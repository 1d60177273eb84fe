#!/usr/bin/env python3
"""Builds the results tables from the records in benchmarks/results/.

Three generated blocks, each between `<!-- NAME:START -->` and `<!-- NAME:END -->`
markers in its file (nothing outside the markers is touched):

- `docs/results.md`, RESULTS-TABLE: every results row (fine-tuning records) and
  the quality-targets table;
- `README.md`, HEADLINE-TABLE: per dataset, the paper's S3-Rec, SASRec `ce` and
  the S3-Rec row validation selects, test full ranking, each row linking its
  records;
- `docs/results.md`, TIME-TO-QUALITY-TABLE: the time-to-quality runs
  (`benchmarks/time_to_quality.py`), per dataset and recipe over pretraining
  seeds: wall time, quality under the `remove` and `original` history rules,
  Segment Prediction's last loss, and the goal;
- `docs/results.md`, HISTORY-RULE-TABLE: the headline's fine-tuning rows made again
  (`benchmarks/results/history-rule/`), each model ranked under the `remove` and
  the `original` history rules, beside the headline's own records;
- `README.md`, SPEED-TABLE: the latest side-by-side bench
  (`benchmarks/side_by_side.py --original`), its ratio to the original per work.

Usage: python benchmarks/results_table.py [--write | --check]
    (no flag: print the blocks; --write: update the files; --check: exit 1 if
    a block differs from what the records give)
"""

import argparse
import glob
import json
import os
import re
import statistics
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Where the records live.
RESULTS = os.path.join(ROOT, "benchmarks", "results")
#: The paper's numbers, as ../shared/docs/REFERENCE.md (the project's reference
#: numbers) lists them, with their source per protocol.
PAPER_SOURCES = {
    "sampled": "the authors' re-runs in the original repository's `reproduce/README.md`",
    "full": "the original repository's full-ranking figure (`all_rank.PNG`)",
}
PAPER = {
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
    reads `../shared/...`), wherever the checkout was, and its record where the
    records now live (`--record results/x.json` reads `--record benchmarks/results/x.json`)."""
    command = re.sub(r"(?<=\s)/\S*?/(?=\.\./shared/)", "", command.replace(ROOT + "/", ""))
    return re.sub(r"(?<=--record )results/", "benchmarks/results/", command)


def load(folder: str = RESULTS):
    """The fine-tuning records in `folder`, `{(dataset, tag, loss, valid): [(record,
    file name without .json), ...]}`, grouped by the name `DATASET_TAG_LOSS_VALID_seedN`."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
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


def header(*cells) -> list:
    """A Markdown table's header row and its delimiter row, with one cell per name."""
    return ["| " + " | ".join(cells) + " |", "|" + "---|" * len(cells)]


def table(rows=None) -> str:
    rows = load() if rows is None else rows
    out = []
    for protocol in ("sampled", "full"):
        keys = KEYS[protocol]
        out.append(f"\n**{'99 sampled negatives' if protocol == 'sampled' else 'Full ranking'} "
                   f"(test)**\n")
        negatives = protocol == "sampled"
        out += header("dataset", "model", "pretraining", "loss", "early stop", "seeds",
                      *(["negatives"] if negatives else []), *keys, "paper", "commit",
                      "command")
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
           *header("dataset", "selected row", "seeds", "valid " + SELECT_BY[1],
                   *(f"test {k}" for k in TARGET_METRICS), "target", "met", "SASRec `ce`",
                   "gain")]
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


def results_block(rows=None) -> str:
    """What docs/results.md holds between its RESULTS-TABLE markers."""
    rows = load() if rows is None else rows
    return table(rows) + target_table(rows)


#: The datasets of the headline table, in its order.
HEADLINE_DATASETS = ("Beauty", "Sports_and_Outdoors", "LastFM")
#: The metrics of the headline table (test, full ranking).
HEADLINE_METRICS = ("HR@10", "NDCG@10")
#: The time-to-quality recipes the headline shows (the one a newcomer starts with; every
#: recipe is in docs/results.md, and the headline stays at 12 rows).
HEADLINE_RECIPES = ("fast",)


def headline_label(tag: str, loss: str) -> str:
    """The headline's name for a row of fine-tuning records: SASRec (no pretraining) or
    S3-Rec with our pretraining's budget."""
    if tag == "sasrec":
        return f"SASRec `{loss}` (ours, no pretraining)"
    budget = pretraining(tag)[1].removeprefix("ours, ")
    return f"S3-Rec (ours, pretrained {budget}; `{loss}`)"


def record_links(recs, prefix: str = "benchmarks/results/") -> str:
    """Markdown links to a row's record files, each named by its seed."""
    return ", ".join(f"[{rec['seed']}]({prefix}{name}.json)" for rec, name in recs)


def headline_table(rows=None, runs=None) -> str:
    """What README.md holds between its HEADLINE-TABLE markers: per dataset, the
    paper's S3-Rec, SASRec `ce` (ours, no pretraining), the S3-Rec row that
    validation selects (`selected_rows`) and each time-to-quality recipe
    (`runs`, over pretraining seeds) in `HEADLINE_RECIPES`, on test full ranking."""
    rows = load() if rows is None else rows
    runs = load_time_to_quality() if runs is None else runs
    chosen = selected_rows(rows)
    out = header("dataset", "model", *(f"test {k}" for k in HEADLINE_METRICS), "seeds",
                 "records (by seed)")

    def ours(dataset, label, recs):
        out.append(f"| {dataset} | {label} | "
                   + " | ".join(_stats(recs, k) for k in HEADLINE_METRICS)
                   + f" | {len(recs)} | {record_links(recs)} |")

    for dataset in HEADLINE_DATASETS:
        paper = PAPER.get((dataset, "full", "S3-Rec"))
        if paper:
            out.append(f"| {dataset} | S3-Rec (paper) | "
                       + " | ".join(f"{paper[k]:.4f}" for k in HEADLINE_METRICS)
                       + " | | paper¹ |")
        base = rows.get((dataset, "sasrec", "ce", "validfull"))
        if base:
            ours(dataset, headline_label("sasrec", "ce"), base)
        if dataset in chosen:
            (_, tag, loss, _), recs = chosen[dataset]
            ours(dataset, headline_label(tag, loss), recs)
        for (name, recipe), recs in sorted(runs.items()):
            if name == dataset and recipe in HEADLINE_RECIPES:
                minutes = statistics.mean(r["wall_time_s"] for r, _ in recs) / 60
                out.append(
                    f"| {dataset} | S3-Rec (ours, `--preset {recipe}`, {minutes:.0f} min "
                    "end to end) | "
                    + " | ".join(cell([r["metrics"]["test/full"][k] for r, _ in recs])
                                 for k in HEADLINE_METRICS)
                    + f" | {len(recs)} pretraining | "
                    + ", ".join(f"[{r['pretrain_seed']}](benchmarks/results/time-to-quality/"
                                f"{file}.json)" for r, file in recs) + " |")
    out.append("")
    out.append(f"¹ Paper: {PAPER_SOURCES['full']}. Ours: mean ± std over fine-tuning "
               "seeds (over pretraining seeds for a `--preset` row, one fine-tuning seed "
               "each, timed from the raw files; [docs/results.md](docs/results.md#time-to-"
               "quality)); the S3-Rec \"pretrained\" row "
               f"is the one with the highest mean validation {SELECT_BY[1]} among our "
               f"pretraining's full-softmax rows with {TARGET_SEEDS}+ seeds; the same rows "
               "under the original code's history rule: [docs/results.md](docs/results.md"
               "#history-rules).")
    return "\n".join(out) + "\n"


#: Where the headline's fine-tuning rows, made again with their records' commands, are
#: kept: `<name>.json`, the fine-tuning record (its test metrics under `remove`), and
#: `<name>.original-rule.json`, the same model's `s3rec-tf evaluate --history-rule
#: original --output` record.
HISTORY_RULE = os.path.join(RESULTS, "history-rule")
ORIGINAL_RULE = ".original-rule"


def _relative(values, against) -> str:
    """Per metric, the change of `values`' mean from `against`'s; "identical" when every
    seed's value is the same under both."""
    return " / ".join("identical" if v == a else
                      f"{(statistics.mean(v) / statistics.mean(a) - 1) * 100:+.1f}%"
                      for v, a in zip(values, against))


def history_rule_table(rows=None, folder: str = HISTORY_RULE) -> str:
    """What docs/results.md holds between its HISTORY-RULE-TABLE markers: per headline
    row made again (`folder`), its records' test metrics, and the new models' under the
    `remove` rule (their fine-tuning records) and the `original` rule (their evaluation
    records), with the change from one rule to the other."""
    rows = load() if rows is None else rows
    out = header("dataset", "model", "headline records, `remove`", "made again: seeds",
                 "`remove`", "`original`", "`original` against `remove`", "commit",
                 "records (by seed)")
    for group, recs in sorted(load(folder).items()):
        dataset, tag, loss, _ = group
        original = []
        for rec, name in recs:
            path = os.path.join(folder, name + ORIGINAL_RULE + ".json")
            if not os.path.isfile(path):
                raise ValueError(f"{path}: missing; rank the model of {name}.json with "
                                 "s3rec-tf evaluate --history-rule original --output "
                                 f"{os.path.basename(path)}")
            with open(path) as f:
                evaluation = json.load(f)
            if evaluation.get("history_rule") != "original":
                raise ValueError(f"{path}: history_rule is "
                                 f"{evaluation.get('history_rule')!r}, not 'original'")
            original.append(evaluation["metrics"]["test/full"])
        remove = [[r["metrics"]["test/full"][k] for r, _ in recs] for k in HEADLINE_METRICS]
        by_rule = [[m[k] for m in original] for k in HEADLINE_METRICS]
        headline = rows.get(group)
        shown = " / ".join(_stats(headline, k) for k in HEADLINE_METRICS) if headline \
            else "no such row"
        out.append(f"| {dataset} | {headline_label(tag, loss)} | {shown} | "
                   f"{','.join(str(r['seed']) for r, _ in recs)} | "
                   + " / ".join(cell(v) for v in remove) + " | "
                   + " / ".join(cell(v) for v in by_rule) + f" | {_relative(by_rule, remove)} | "
                   f"{commits(recs)} | "
                   + ", ".join(f"[{r['seed']}](../benchmarks/results/history-rule/{name}.json) "
                               f"([`original`](../benchmarks/results/history-rule/{name}"
                               f"{ORIGINAL_RULE}.json))" for r, name in recs) + " |")
    out.append("")
    out.append("Test full ranking, HR@10 / NDCG@10, mean ± std over fine-tuning seeds; "
               "\"made again\" are new models of the row's recipe and seeds, made at the "
               "commit shown, each ranked under both rules (its fine-tuning record: "
               "`remove`; `s3rec-tf evaluate --history-rule original`: `original`).")
    return "\n".join(out) + "\n"


#: Where the time-to-quality records live (one per dataset, recipe and pretraining seed).
TIME_TO_QUALITY = os.path.join(RESULTS, "time-to-quality")
#: The time-to-quality goals per (dataset, recipe): test full HR@10, NDCG@10 (means over
#: pretraining seeds) and the wall time per seed, pretraining and fine-tuning together.
TTQ_GOALS = {("Beauty", "fast"): (.105, .063, 15 * 60),
             ("Beauty", "best"): (.110, .066, 60 * 60),
             ("Sports_and_Outdoors", "fast"): (.065, .038, 25 * 60),
             ("LastFM", "fast"): (.0823, .0451, 5 * 60)}
#: The best published full-ranking test HR@10 / NDCG@10 per dataset that a recipe is
#: timed against (../shared/docs/REFERENCE.md).
PUBLISHED_BEST = {"Beauty": ("BSARec", .1008, .0611)}
#: The history rules a time-to-quality row reports (`metrics`, `metrics_original_rule`).
TTQ_RULES = (("remove", "metrics"), ("original", "metrics_original_rule"))


def load_time_to_quality(folder: str = TIME_TO_QUALITY) -> dict:
    """`{(dataset, recipe): [(record, file name without .json), ...]}`, by pretraining seed."""
    rows = {}
    for path in sorted(glob.glob(os.path.join(folder, "*.json"))):
        with open(path) as f:
            rec = json.load(f)
        rows.setdefault((rec["dataset"], rec["recipe"]), []).append(
            (rec, os.path.basename(path)[:-5]))
    for recs in rows.values():
        recs.sort(key=lambda r: r[0]["pretrain_seed"])
    return rows


def _minutes(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"{statistics.mean(values):.1f} ± {statistics.pstdev(values):.1f}"


def time_to_quality_table(runs=None, folder: str = TIME_TO_QUALITY) -> str:
    """What docs/results.md holds between its TIME-TO-QUALITY-TABLE markers: the
    recipes' runs (`runs`, or the records in `folder`), then the levers tried
    (`folder/levers`) and the ablation (`folder/ablation`)."""
    runs = load_time_to_quality(folder) if runs is None else runs
    out = header("dataset", "recipe", "pretraining seeds", "wall time per seed (min)",
                 "test HR@10", "test NDCG@10", "same, `original` rule", "SP last loss (max)",
                 "runs alone", "goal", "met", "records")
    for (dataset, recipe), recs in sorted(runs.items()):
        minutes = [r["wall_time_s"] / 60 for r, _ in recs]
        quality = {rule: [[r[key]["test/full"][k] for r, _ in recs] for k in HEADLINE_METRICS]
                   for rule, key in TTQ_RULES}
        alone = [r for r, _ in recs if r["alone"]]
        goal = TTQ_GOALS.get((dataset, recipe))
        if goal:
            hr, ndcg, limit = goal
            means = [statistics.mean(v) for v in quality["remove"]]
            misses = [f"{k} {(v / g - 1) * 100:+.1f}%" for k, v, g in
                      zip(HEADLINE_METRICS, means, (hr, ndcg)) if v < g]
            slow = [r["wall_time_s"] for r in alone if r["wall_time_s"] > limit]
            if len(alone) < len(recs):
                misses.append(f"{len(recs) - len(alone)} run(s) not alone")
            if slow or not alone:
                misses.append(f"time > {limit / 60:.0f} min" if slow else "no run alone")
            if len(recs) < 3:
                misses.append(f"{len(recs)} of 3 seeds")
            goal_cell = f"≥ {hr:.4f} / ≥ {ndcg:.4f}, ≤ {limit / 60:.0f} min"
            met = "yes" if not misses else "no: " + ", ".join(misses)
        else:
            goal_cell, met = "", ""
        out.append(
            f"| {dataset} | `{recipe}` | {','.join(str(r['pretrain_seed']) for r, _ in recs)} | "
            f"{_minutes(minutes)} | {cell(quality['remove'][0])} | {cell(quality['remove'][1])} | "
            f"{cell(quality['original'][0])} / {cell(quality['original'][1])} | "
            f"{max(r['sp_final_loss'] for r, _ in recs):.4f} | {len(alone)}/{len(recs)} | "
            f"{goal_cell} | {met} | "
            + ", ".join(f"[{r['pretrain_seed']}](../benchmarks/results/time-to-quality/"
                        f"{name}.json)" for r, name in recs) + " |")
    passes = []
    for (dataset, recipe), recs in sorted(runs.items()):
        if dataset not in PUBLISHED_BEST:
            continue
        model, hr, ndcg = PUBLISHED_BEST[dataset]
        past = [r for r, _ in recs if r["metrics"]["test/full"]["HR@10"] >= hr
                and r["metrics"]["test/full"]["NDCG@10"] >= ndcg]
        when = ", ".join(f"seed {r['pretrain_seed']} in {r['wall_time_s'] / 60:.1f} min"
                         for r in past)
        passes.append(f"{dataset}, `{recipe}`: past {model}'s {hr:.4f} / {ndcg:.4f} (the best "
                      f"published, full ranking) on both metrics in {len(past)} of {len(recs)} "
                      f"pretraining seeds{': ' + when if past else ''}.")
    if passes:
        out += ["", "**Time to first pass the published best** (the fine-tuned model's test "
                "metrics at the end of each timed run):", ""] + [f"- {p}" for p in passes]
    levers = load_time_to_quality(os.path.join(folder, "levers"))
    if levers:
        out += ["", "**Levers tried** (one pretraining and fine-tuning seed each; a probe "
                "that shared the machine gives quality, not time):", "",
                *header("dataset", "variant", "pretraining (s)", "fine-tuning (s)",
                        "best epoch", "test HR@10", "test NDCG@10", "alone", "record")]
        for (dataset, recipe), recs in sorted(levers.items()):
            for r, name in recs:
                full = r["metrics"]["test/full"]
                pre = r.get("pretrain_s")
                fine = r.get("finetune_s", r.get("finetune_train_s"))
                flags = " ".join(r.get("pretrain_flags") or ())
                described = r.get("variant") or (f"`{recipe}`: pretraining `{flags}`" if flags
                                                 else f"`{recipe}`")
                out.append(
                    f"| {dataset} | {described} | "
                    f"{'' if pre is None else f'{pre:.0f}'} | "
                    f"{'' if fine is None else f'{fine:.0f}'} | {r.get('best_epoch', '')} | "
                    f"{full['HR@10']:.4f} | {full['NDCG@10']:.4f} | "
                    f"{'yes' if r.get('alone') else 'no'} | "
                    f"[{name}](../benchmarks/results/time-to-quality/levers/{name}.json) |")
    ablation = load_time_to_quality(os.path.join(folder, "ablation"))
    if ablation:
        out += ["", "**Ablation**: the recipe with one objective's weight at 0 in pretraining "
                "(`--variant no-X --pretrain-flag=--X-weight=0`), otherwise unchanged, "
                "against the full recipe with the same pretraining seed:", "",
                *header("dataset", "pretraining", "seed", "test HR@10", "test NDCG@10",
                        "change against all four", "SP last loss", "record")]
        full = {(r["dataset"], r["recipe"], r["pretrain_seed"]): r
                for recs in runs.values() for r, _ in recs}
        for (dataset, recipe), recs in sorted(ablation.items()):
            for r, name in recs:
                preset, _, variant = recipe.partition("-")
                base = full.get((dataset, preset, r["pretrain_seed"]))
                values = [r["metrics"]["test/full"][k] for k in HEADLINE_METRICS]
                change = " / ".join(
                    f"{(v / base['metrics']['test/full'][k] - 1) * 100:+.1f}%"
                    for v, k in zip(values, HEADLINE_METRICS)) if base else "no full run"
                out.append(f"| {dataset} | `{preset}` without "
                           f"{variant.removeprefix('no-').upper()} | {r['pretrain_seed']} | "
                           f"{values[0]:.4f} | {values[1]:.4f} | {change} | "
                           f"{r['sp_final_loss']:.4f} | [{name}](../benchmarks/results/"
                           f"time-to-quality/ablation/{name}.json) |")
    out.append("")
    out.append("Mean ± std over pretraining seeds (one fine-tuning seed each); wall time is "
               "pretraining plus fine-tuning from the raw files, end to end; \"`original` "
               "rule\" is the same model ranked with the original code's history rule "
               "(`s3rec-tf evaluate --history-rule original`); a run that started on a busy "
               "machine does not count toward a time goal.")
    return "\n".join(out) + "\n"


#: Each work of the side-by-side bench, by the first part of its case key.
WORK = {"pretrain": "pretraining", "finetune_bce": "fine-tuning, `bce`",
        "finetune_ce": "fine-tuning, `ce` (full softmax)",
        "finetune_sampled-ce": "fine-tuning, `sampled-ce`",
        "evaluate_full": "full-ranking evaluation", "prepare": "Beam preparation"}


def latest_side_by_side(paths=None):
    """`(path, report)` of the side-by-side bench (`original` set) that finished last."""
    found = []
    for path in paths if paths is not None else glob.glob(os.path.join(RESULTS, "*.json")):
        with open(path) as f:
            report = json.load(f)
        if report.get("original") and report.get("results"):
            found.append((report.get("finished_at", ""), path, report))
    if not found:
        raise ValueError(f"no side-by-side bench record in {RESULTS}")
    _, path, report = max(found, key=lambda x: x[:2])
    return path, report


def speed_table(path: str, report: dict) -> str:
    """What README.md holds between its SPEED-TABLE markers: from one side-by-side
    bench, per work timed against the original, both medians and their ratio."""
    link = os.path.relpath(path, ROOT)
    out = ["| work | s3rec-tf | original (same run) | ratio | per round |",
           "|---|---|---|---|---|"]

    def order(key):
        work = key.split("/")[0]
        return (list(WORK).index(work) if work in WORK else len(WORK), key)

    for key in sorted(report["results"], key=order):
        r = report["results"][key]
        side = r.get("original")
        if not side:
            continue
        work, dataset = key.split("/", 1)
        against = "" if side["case"] == key else \
            f" (its `{side['case'].split('/')[0].split('_', 1)[1]}`)"
        out.append(f"| {WORK.get(work, work)}, {dataset} | {r['median']:,.0f} {r['unit']} | "
                   f"{side['median']:,.0f} {r['unit']}{against} | "
                   f"{r['median'] / side['median']:.1f}x | "
                   + " / ".join(f"{x:.1f}" for x in side["round_ratios"]) + " |")
    machine = report.get("machine", {})
    out.append("")
    out.append(f"Medians of {report['repeats']} rounds; in each round the original code runs "
               "first, then each case of ours, on the same machine "
               f"({machine.get('cpu', '?')}, {machine.get('cpu_count', '?')} cores). "
               f"Record: [{link}]({link}), commit `{str(report.get('commit'))[:7]}`.")
    return "\n".join(out) + "\n"


class MarkerError(ValueError):
    """A file lacks a block's markers, or has them out of order."""


def markers(name: str):
    return f"<!-- {name}:START -->", f"<!-- {name}:END -->"


def current_block(text: str, name: str, where: str = "the text"):
    """What `text` holds between `name`'s markers; None when it has neither marker."""
    start, end = markers(name)
    if start not in text and end not in text:
        return None
    if text.count(start) != 1 or text.count(end) != 1:
        raise MarkerError(f"{where}: needs exactly one {start} and one {end}")
    rest = text.split(start, 1)[1]
    if end not in rest:
        raise MarkerError(f"{where}: {end} comes before {start}")
    return rest.split(end, 1)[0].removeprefix("\n")


def replace_block(text: str, name: str, block: str, where: str = "the text") -> str:
    """`text` with `block` between `name`'s markers (on their own lines), nothing else
    changed; a `MarkerError` naming `where` when the markers are missing."""
    if current_block(text, name, where) is None:
        start, end = markers(name)
        raise MarkerError(f"{where}: no {start} ... {end} markers; add them where the "
                          "generated block goes")
    start, end = markers(name)
    head, rest = text.split(start, 1)
    return head + start + "\n" + block + rest[rest.index(end):]


#: The generated blocks: (file under the checkout, marker name) -> its builder, given
#: the fine-tuning records (`load`).
BLOCKS = {("docs/results.md", "RESULTS-TABLE"): results_block,
          ("docs/results.md", "TIME-TO-QUALITY-TABLE"):
              lambda rows: time_to_quality_table(),
          ("docs/results.md", "HISTORY-RULE-TABLE"): history_rule_table,
          ("README.md", "HEADLINE-TABLE"): headline_table,
          ("README.md", "SPEED-TABLE"): lambda rows: speed_table(*latest_side_by_side())}


def blocks() -> dict:
    """`{(file, marker name): block}` from the records (read once)."""
    rows = load()
    return {where: build(rows) for where, build in BLOCKS.items()}


def update(root: str = ROOT, write: bool = False, generated: dict | None = None) -> list:
    """The `(file, marker name)` blocks under `root` that differ from the records'
    (rewritten first when `write`); a `MarkerError` for a missing file or marker."""
    generated = blocks() if generated is None else generated
    stale = []
    for rel in dict.fromkeys(path for path, _ in generated):
        path = os.path.join(root, rel)
        if not os.path.isfile(path):
            raise MarkerError(f"{rel}: no such file")
        with open(path, encoding="utf-8") as f:
            text = f.read()
        new = text
        for (where, name), block in generated.items():
            if where == rel:
                new = replace_block(new, name, block, rel)
                if current_block(text, name, rel) != block:
                    stale.append((rel, name))
        if write and new != text:
            with open(path, "w", encoding="utf-8") as f:
                f.write(new)
    return stale


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/results_table.py",
                                     description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--write", action="store_true", help="update the files' blocks")
    mode.add_argument("--check", action="store_true",
                      help="exit 1 if a block differs from what the records give")
    args = parser.parse_args(argv)
    generated = blocks()
    if not (args.write or args.check):
        for (path, name), block in generated.items():
            print(f"{path}, {name}:\n{block}")
        return 0
    try:
        stale = update(ROOT, write=args.write, generated=generated)
    except MarkerError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2
    for path, name in stale:
        print(f"{path}: {name} {'updated' if args.write else 'is stale'}")
    if args.check and stale:
        print(f"run: python {parser.prog} --write", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
