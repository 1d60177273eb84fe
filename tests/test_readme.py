"""The README's quick starts run as printed, and its links and the guides' links resolve.

The command-line quick start (the ```bash block after `<!-- QUICKSTART:CLI -->`) runs
once, exactly as printed, in a temporary directory; its export then answers the
README's REST request (`<!-- SERVING:REQUEST -->`) through the Python loader, in the
shape of the README's response (`<!-- SERVING:RESPONSE -->`). No prose is asserted.
"""

import glob
import json
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
MAX_README_LINES = 350

#: Link targets under these prefixes (relative to the repository root) may not exist
#: in every checkout: the records and experiment scripts live in `benchmarks/`.
LINK_ALLOWLIST_PREFIXES = ("benchmarks/",)

#: TensorFlow's C++ logging (absl: `W0000 00:00:1733.. 123 file.cc:45] ...`; TF's own:
#: `2026-12-07 09:31:08.815657: I tensorflow/core/...cc:113] ...`): start-up notices of
#: the native library, written before Python runs, which no Python filter can drop.
_NATIVE_LOG = re.compile(
    r"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ \S+:\d+\]"
    r"|\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+: [IWEF] \S+:\d+\])")


def _block_after(marker: str, language: str) -> str:
    """The fenced block of `language` that follows `marker` in the README."""
    text = open(README, encoding="utf-8").read()
    assert marker in text, f"README.md has no {marker}"
    rest = text.split(marker, 1)[1]
    match = re.match(r"\s*```" + language + r"\n(.*?)\n```", rest, re.S)
    assert match, f"no ```{language} block right after {marker} in README.md"
    return match.group(1)


def _noisy_lines(output: str) -> list:
    """Lines of a Python warning, a Keras/TF `WARNING` or a traceback."""
    return [line for line in output.splitlines()
            if not _NATIVE_LOG.match(line)
            and ("Warning:" in line or "WARNING" in line or "Traceback" in line)]


@pytest.fixture(scope="module")
def quickstart(tmp_path_factory):
    """Runs the CLI quick start once; returns its directory and combined output."""
    script = _block_after("<!-- QUICKSTART:CLI -->", "bash")
    tmp = tmp_path_factory.mktemp("quickstart")
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONWARNINGS", "S3REC_VERBOSE_LIBRARIES", "TF_CPP_MIN_LOG_LEVEL")}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env["PYTHONPATH"] = ROOT  # this checkout's s3rec_tf behind the venv's s3rec-tf
    proc = subprocess.run(["bash", "-e", "-c", script], cwd=tmp, env=env,
                          capture_output=True, text=True, timeout=600)
    return tmp, proc.returncode, proc.stdout + proc.stderr


def test_cli_quickstart_runs_as_printed_without_a_warning(quickstart):
    _, returncode, output = quickstart
    assert returncode == 0, output[-4000:]
    noisy = _noisy_lines(output)
    assert not noisy, "\n".join(noisy)


def test_the_readme_request_gets_the_readme_response_shape(quickstart):
    import tensorflow as tf

    from s3rec_tf import serving

    tmp, returncode, output = quickstart
    assert returncode == 0, output[-4000:]
    exports = glob.glob(os.path.join(str(tmp), "**", "saved_model.pb"), recursive=True)
    assert len(exports) == 1, f"the quick start should write one export, found {exports}"
    request = json.loads(_block_after("<!-- SERVING:REQUEST -->", "json"))
    expected = json.loads(_block_after("<!-- SERVING:RESPONSE -->", "json"))

    loaded = tf.saved_model.load(os.path.dirname(exports[0]))
    signature = loaded.signatures["serving_default"]
    inputs = serving.rest_to_signature_inputs(request, signature.structured_input_signature[1])
    outputs = {k: v.numpy() for k, v in signature(**inputs).items()}
    rows = len(request["instances"]) if "instances" in request else len(outputs["item_ids"])
    predictions = [{k: v[r].tolist() for k, v in outputs.items()} for r in range(rows)]

    assert set(expected) == {"predictions"}
    assert len(expected["predictions"]) == len(predictions)
    for got, shown in zip(predictions, expected["predictions"]):
        assert set(got) == set(shown)
        for key, value in shown.items():
            if isinstance(value, list):
                assert len(got[key]) == len(value), key
            else:
                assert isinstance(value, int) and int(got[key]) >= 0, key
        assert all(isinstance(i, str) for i in shown["item_ids"])
        assert got["num_results"] == len([i for i in got["item_ids"] if i != b""])
    if "instances" in request:
        for instance, got in zip(request["instances"], predictions):
            assert got["num_known"] + got["num_unknown"] == len(instance["history"])


def test_readme_is_short():
    with open(README, encoding="utf-8") as f:
        lines = f.read().splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines"


def _without_code(path: str) -> str:
    text = open(path, encoding="utf-8").read()
    return re.sub(r"```.*?```", "", text, flags=re.S)  # links in code are not links


def _relative_links(path: str) -> list:
    targets = re.findall(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)", _without_code(path))
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def _anchors(path: str) -> set:
    """GitHub's anchors of a Markdown file's headings."""
    headings = re.findall(r"^#+\s+(.*?)\s*$", _without_code(path), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_points_to_a_file():
    documents = [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md")))]
    assert len(documents) > 1, "docs/ has no guide"
    broken = []
    for document in documents:
        for target in _relative_links(document):
            path, _, anchor = target.partition("#")
            resolved = (os.path.normpath(os.path.join(os.path.dirname(document), path))
                        if path else document)
            relative = os.path.relpath(resolved, ROOT).replace(os.sep, "/")
            if not os.path.exists(resolved):
                if not relative.startswith(LINK_ALLOWLIST_PREFIXES):
                    broken.append(f"{os.path.relpath(document, ROOT)}: {target}")
                continue
            if anchor and resolved.endswith(".md") and anchor not in _anchors(resolved):
                broken.append(f"{os.path.relpath(document, ROOT)}: {target} (no such heading)")
    assert not broken, "\n".join(broken)


def _cells(row: str) -> int:
    """Cells of a Markdown table row, as GitHub splits it (on every `|` not escaped)."""
    inner = row.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return len(re.split(r"(?<!\\)\|", inner))


def _table_rows_off_their_header(path: str) -> list:
    """`line: cells (header has n)` for each row of a table whose cell count differs from
    its header's, the delimiter row included (GitHub shows such a table as plain text)."""
    lines = [line.lstrip() for line in _without_code(path).split("\n")]  # lists indent tables
    found, i = [], 0
    while i < len(lines):
        starts = (lines[i].startswith("|") and i + 1 < len(lines)
                  and re.match(r"^\|[-:| ]+\|\s*$", lines[i + 1])
                  and (i == 0 or not lines[i - 1].startswith("|")))
        if not starts:
            i += 1
            continue
        header, j = _cells(lines[i]), i + 1
        while j < len(lines) and lines[j].startswith("|"):
            if _cells(lines[j]) != header:
                found.append(f"{lines[j][:60]}...: {_cells(lines[j])} cells (header has {header})")
            j += 1
        i = j
    return found


def test_every_table_row_has_as_many_cells_as_its_header():
    documents = [README, *sorted(glob.glob(os.path.join(ROOT, "docs", "*.md"))),
                 os.path.join(ROOT, "benchmarks", "README.md")]
    broken = [f"{os.path.relpath(d, ROOT)}: {row}" for d in documents if os.path.exists(d)
              for row in _table_rows_off_their_header(d)]
    assert not broken, "\n".join(broken)
