"""docs/tf-ops.md is generated from the registry (``python -m tf2torch.tf_coverage docs/tf-ops.md``): stale, it
fails here, naming the command."""

from __future__ import annotations

from pathlib import Path

from tf2torch.tf_coverage import render, status

DOC = Path(__file__).resolve().parent.parent / "docs" / "tf-ops.md"


def test_tf_ops_doc_is_current():
    assert DOC.read_text(encoding="utf8") == render(), \
        "docs/tf-ops.md is stale: regenerate it with python -m tf2torch.tf_coverage docs/tf-ops.md"


def test_statuses_follow_the_registry():
    assert status("Conv2D")[0] == "converted" and status("Erfc")[0] == "converted"
    assert status("StatefulPartitionedCall")[0] == "walker"
    assert status("RandomUniform")[0] == "refused"  # a converter exists only to refuse it by name
    assert status("IteratorGetNext")[0] == "n/a"
