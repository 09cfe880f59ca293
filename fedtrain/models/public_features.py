"""Public feature maps for vertical learning under DP (``train --strategy vertical --dp-epsilon E
--init-from MODEL``).

Vertical's DP model is a linear model over every party's block of stay summaries, trained by noisy
full-batch steps (fedtrain/strategies/vertical_private.py). Its limit is the noise per step on
≈ 5F + S weights per label and party (docs/privacy.md, "Vertical: what else was tried"). A
party that first maps its block to a few label-relevant values learned on **public** data gives
the DP model L weights per party instead, and nothing of the private data is spent on learning
that map.

``crypten-fl pretrain`` writes the public training stays' summaries beside the weights
(``public_features.safetensors``: every feature's summary, the static vector, the labels, all as
the federation computes them, z-scored with the public data's own statistics; the card records
its SHA-256). At the start of a run each party fits, on its own columns of those rows only, a
logistic regression to the L public labels (:func:`fit_projection`, seeded, full batch, the same
at every run) and uses its L logits as its block. Everything it reads is public; the federation's
records enter only the DP mechanism, accounted as before.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from crypten_fl.common.errors import UserError
from crypten_fl.fedtrain.models.pretrained import (
    Pretrained,
    check_public,
    read_pretrained,
    sha256_file,
)
from crypten_fl.fedtrain.models.stay_summary import STATISTICS, stay_summary
from crypten_fl.mimic_etl.schema import differences
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

FILE = "public_features.safetensors"
#: the card's field describing FILE
CARD_FIELD = "public_features"
#: the logistic regression of a party's public columns on the public labels: full-batch Adam,
#: with weight decay (bench/vertical_dp_sim.py --public-model; docs/privacy.md)
EPOCHS, LR, WEIGHT_DECAY = 300, 3e-3, 1e-3
#: prefix of the projection's tensors in a party's saved model
STATE_PREFIX = "public_projection."
#: the schema fields a party's block must share with the public data (its columns are a subset)
SHARED_SCHEMA_FIELDS = ("version", "n_bins", "bin_hours", "hours", "training")


def write(directory: Path, x: torch.Tensor, static: torch.Tensor, labels: torch.Tensor
          ) -> dict[str, Any]:
    """Write the summaries of the public stays ``x (N, T, 2F)``, their ``static (N, S)`` and
    ``labels (N, L)`` into ``directory``/FILE; the card's entry for it."""
    summaries = torch.cat([stay_summary(x, x.shape[2] // 2), static], dim=1)
    path = directory / FILE
    save_file({"summaries": summaries.contiguous(), "labels": labels.float().contiguous()},
              str(path))
    return {"file": FILE, "sha256": sha256_file(path), "stays": int(summaries.shape[0]),
            "layout": f"{'; '.join(STATISTICS)} of every feature (the card's order), "
                      "then the static vector; z-scored with the public data's own statistics",
            "use": "vertical --dp-epsilon: each party's public feature map (its columns only)"}


@dataclass(frozen=True)
class PublicRows:
    """The public stays' summaries with the column layout of the card that describes them."""

    summaries: torch.Tensor
    labels: torch.Tensor
    features: list[str]
    static_columns: list[str]

    def columns(self, features: list[str], has_static: bool) -> torch.Tensor:
        """Indices of a party's block (``party_features``' layout: every statistic of its
        ``features`` in its order, then the static vector if it has one) in ``summaries``."""
        index = {name: i for i, name in enumerate(self.features)}
        width = len(self.features)
        cols = [k * width + index[name] for k in range(len(STATISTICS))
                for name in features]
        if has_static:
            start = len(STATISTICS) * width
            cols += range(start, self.summaries.shape[1])
        return torch.tensor(cols, dtype=torch.long)


def read(pretrained: Pretrained, option: str = "--init-from") -> PublicRows:
    """MODEL/'s public rows, checked against the SHA-256 its card records."""
    entry = pretrained.card.get(CARD_FIELD)
    if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str):
        raise UserError(f"{option} {pretrained.path}: the model has no public feature map (it "
                        "was pretrained by an earlier crypten-fl; run `crypten-fl pretrain` "
                        "again to use it with --strategy vertical)")
    path = pretrained.path / FILE
    if not path.is_file():
        raise UserError(f"{option} {pretrained.path}: {FILE} not found")
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise UserError(f"{option} {path}: sha256 {actual[:12]}…, its card says "
                        f"{entry['sha256'][:12]}… (the file was changed)")
    try:
        tensors = load_file(str(path))
        summaries, labels = tensors["summaries"], tensors["labels"]
    except (SafetensorError, KeyError, OSError) as err:
        raise UserError(f"{option} {path}: not a readable public feature file ({err})") from None
    return PublicRows(summaries, labels, list(pretrained.card.get("features") or []),
                      list(pretrained.card.get("static") or []))


def mismatches(pretrained: Pretrained, schema: dict[str, Any]) -> list[str]:
    """How a vertical party's data (``schema``: its own features) does not fit the public rows:
    the time grid and preprocessing must be the same; each of its features must be one of the
    public data's, with the same unit and definition; its static columns (if any) the same."""
    card_schema = pretrained.card["schema"]
    found = differences({k: card_schema.get(k) for k in SHARED_SCHEMA_FIELDS},
                        {k: schema.get(k) for k in SHARED_SCHEMA_FIELDS},
                        "the pretrained model", vertical=True)
    public = {f.get("name"): f for f in card_schema.get("features") or []}
    for feature in schema.get("features") or []:
        name = feature.get("name")
        theirs = public.get(name)
        if theirs is None:
            found.append(f"feature {name} is not in the public data")
            continue
        for key in ("unit", "definition"):
            if None not in (feature.get(key), theirs.get(key)) and feature[key] != theirs[key]:
                found.append(f"feature {name}: {key} {feature[key]}, the public data has "
                             f"{theirs[key]}")
    static = list(schema.get("static") or [])
    if static and static != list(card_schema.get("static") or []):
        found.append("static columns differ from the public data's")
    return found


def check_fits(pretrained: Pretrained, schema: dict[str, Any], option: str = "--init-from"
               ) -> None:
    """Raise one UserError naming what keeps a vertical party from the public feature map."""
    check_public(pretrained, option)
    read(pretrained, option)
    found = mismatches(pretrained, schema)
    if found:
        shown = "; ".join(found[:4]) + (" …" if len(found) > 4 else "")
        raise UserError(f"{option} {pretrained.path}: the public feature map does not fit this "
                        f"party's data: {shown}")


class PublicProjection(torch.nn.Module):
    """A party's block (``party_features``' layout, before scaling) ↦ the L logits of a logistic
    regression fitted on public data."""

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.register_buffer("mean", mean)
        self.register_buffer("std", std)
        self.linear = linear

    @property
    def width(self) -> int:
        return int(self.linear.out_features)

    def to_state(self) -> dict[str, torch.Tensor]:
        """Tensors saved with a party's model (``evaluate`` maps its data the same way)."""
        return {f"{STATE_PREFIX}{k}": v.detach().clone() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, state: dict[str, torch.Tensor]) -> PublicProjection | None:
        """The projection saved by :meth:`to_state` among ``state``'s tensors, or None."""
        mine = {k[len(STATE_PREFIX):]: v for k, v in state.items() if k.startswith(STATE_PREFIX)}
        if not mine:
            return None
        weight = mine["linear.weight"]
        linear = torch.nn.Linear(weight.shape[1], weight.shape[0])
        linear.requires_grad_(False)
        projection = cls(mine["mean"], mine["std"], linear)
        projection.load_state_dict(mine)
        return projection

    @torch.no_grad()
    def forward(self, block: torch.Tensor) -> torch.Tensor:
        return self.linear((block - self.mean) / self.std)


def fit_projection(rows: PublicRows, features: list[str], has_static: bool, seed: int
                   ) -> PublicProjection:
    """Fit the public feature map of a party holding ``features`` (and the static vector if
    ``has_static``) on the public rows: standardise its columns, logistic regression of the L
    public labels, full batch; deterministic for a given ``seed``."""
    columns = rows.columns(features, has_static)
    x = rows.summaries[:, columns]
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    generator = torch.Generator().manual_seed(seed)
    linear = torch.nn.Linear(z.shape[1], rows.labels.shape[1])
    with torch.no_grad():
        bound = 1.0 / z.shape[1] ** 0.5
        linear.weight.copy_(torch.rand(linear.weight.shape, generator=generator) * 2 * bound
                            - bound)
        linear.bias.zero_()
    optimizer = torch.optim.Adam(linear.parameters(), lr=LR, weight_decay=WEIGHT_DECAY)
    for _ in range(EPOCHS):
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(linear(z), rows.labels)
        loss.backward()
        optimizer.step()
    linear.requires_grad_(False)
    return PublicProjection(mean, std, linear)


def load_projection(path: Path, expected_sha256: str | None, features: list[str],
                    has_static: bool, seed: int, option: str = "--init-from"
                    ) -> PublicProjection:
    """The public feature map of a party holding ``features`` (and static columns if
    ``has_static``), fitted on MODEL/ at ``path`` whose weights must have the run's SHA-256 (the
    same public model at every party)."""
    pretrained = read_pretrained(path, option)
    if expected_sha256 is not None and pretrained.weights_sha256 != expected_sha256:
        raise UserError(f"{option} {path}: its card's weights have sha256 "
                        f"{pretrained.weights_sha256[:12]}…, the run's config expects "
                        f"{expected_sha256[:12]}… (every party must start from the same model)")
    return fit_projection(read(pretrained, option), features, has_static, seed)


__all__ = ["FILE", "PublicProjection", "PublicRows", "check_fits", "fit_projection",
           "load_projection", "read", "write"]
