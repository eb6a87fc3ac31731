"""What a transfer did: each target tensor's source weight and transform, and what was left on either side."""

from __future__ import annotations

import html
import json
from dataclasses import dataclass, field
from typing import Any

OUTPUT_RTOL = 1e-4  # the verification's tolerance on the model's output, as on each layer's (check.RTOL)


@dataclass
class TransferReport:
    """``mapping``: target tensor → {"source": layer/role, "transform": name}; ``unused_source``: source weights
    no target took; ``unloaded_target``: target tensors left as they were; ``ambiguous``: targets several
    sources fit, each with its candidates. ``ok``: everything on both sides loaded exactly once."""

    mapping: dict[str, dict[str, str]] = field(default_factory=dict)
    unused_source: list[str] = field(default_factory=list)
    unloaded_target: list[str] = field(default_factory=list)
    ambiguous: list[dict[str, Any]] = field(default_factory=list)
    source: str = ""
    verification: dict[str, Any] | None = None  # None: not run (a weights-only source, or no example inputs)

    @property
    def loaded(self) -> bool:
        """Everything on both sides loaded exactly once (whatever the verification found)."""
        return not (self.unused_source or self.unloaded_target or self.ambiguous)

    @property
    def ok(self) -> bool:
        """Loaded exactly, and, where the verification ran, no matched layer nor the output diverges."""
        return self.loaded and not self.first_divergence and not self.output_diverges

    @property
    def output_diverges(self) -> bool:
        error = (self.verification or {}).get("output_max_rel_error")
        return error is not None and error > OUTPUT_RTOL

    @property
    def first_divergence(self) -> dict[str, Any] | None:
        return (self.verification or {}).get("first_divergence")

    def as_dict(self) -> dict[str, Any]:
        return {"source": self.source, "ok": self.ok, "mapping": self.mapping,
                "unused_source": self.unused_source, "unloaded_target": self.unloaded_target,
                "ambiguous": self.ambiguous, "verification": self.verification}

    def module_mapping(self) -> dict[str, str]:
        """Target module path → source layer name: the form ``transfer(mapping=...)`` takes, to read and edit; a
        loose tensor (``"loose": true``: no module kind, paired by itself) by its own names on both sides."""
        pairs: dict[str, str] = {}
        for target, entry in self.mapping.items():
            if entry.get("loose"):
                pairs[target] = entry["source"]
            else:
                pairs.setdefault(target.rpartition(".")[0], entry["source"].rpartition("/")[0])
        return pairs

    def save_mapping(self, path: str) -> None:
        """Write ``module_mapping()`` as JSON a person can read and edit; ``transfer(mapping=path)`` applies it."""
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.module_mapping(), f, indent=2)
            f.write("\n")

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2)

    def problems(self, limit: int | None = None) -> str:
        """The refusal's table: ambiguous targets with their candidates, then what was left on each side
        (``limit``: at most that many rows and names each, the count of the rest said)."""
        def some(items: list, what: str) -> list:
            if limit is None or len(items) <= limit:
                return items
            return [*items[:limit], f"... and {len(items) - limit} more (report.{what} lists them all)"]

        lines = []
        if self.ambiguous:
            lines += ["| target module | kind | candidate source layers |", "|---|---|---|"]
            lines += some([f"| {a['target']} | {a['kind']} | {', '.join(a['candidates'])} |"
                           for a in self.ambiguous], "ambiguous")
        if self.unloaded_target:
            lines += ["", "Target tensors no source weight fits: "
                      + ", ".join(some(self.unloaded_target, "unloaded_target"))]
        if self.unused_source:
            lines += ["", "Source weights no target takes: " + ", ".join(some(self.unused_source, "unused_source"))]
        first = self.first_divergence
        if first:
            lines += ["", f"First divergence: {first['target']} (from {first['source']}), max relative error "
                          f"{first['max_rel_error']:.3g}: " + "; ".join(first["diagnosis"])]
        elif self.output_diverges:
            lines += ["", f"The output differs from Keras's (max relative error "
                          f"{self.verification['output_max_rel_error']:.3g}) though every compared layer matches: "
                          "look at the layers without weights between them (pooling padding, activation variants)"]
        return "\n".join(lines).strip()

    def status(self) -> str:
        return "ok" if self.ok else "loaded, but the outputs diverge" if self.loaded else "refused or incomplete"

    def to_markdown(self) -> str:
        lines = [f"# Transfer from {self.source}: {self.status()}", "",
                 "| target tensor | source weight | transform |", "|---|---|---|"]
        lines += [f"| {t} | {m['source']} | {m['transform']} |" for t, m in self.mapping.items()]
        problems = self.problems()
        return "\n".join(lines + (["", problems] if problems else [])) + "\n"

    def to_html(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(t)}</td><td>{html.escape(m['source'])}</td>"
                       f"<td>{html.escape(m['transform'])}</td></tr>" for t, m in self.mapping.items())
        problems = html.escape(self.problems()).replace("\n", "<br>")
        return (f"<h3>Transfer from {html.escape(self.source)}: {self.status()}</h3>"
                f"<table><tr><th>target tensor</th><th>source weight</th><th>transform</th></tr>{rows}</table>"
                + (f"<p>{problems}</p>" if problems else ""))

    def _repr_html_(self) -> str:
        return self.to_html()
