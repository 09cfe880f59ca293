"""The schema of a hospital directory: what its columns mean, and its fingerprint.

Hospitals can train one model only if their directories describe the same thing: the same
features in the same order with the same units and definitions (itemids, valid ranges, unit
conversions), the same labels with the same ICD definitions, the same static columns and the
same time grid. ``partition`` and ``prepare`` write this description into every hospital's
manifest.json (``schema``) with its SHA-256 (``schema_sha256``); before the first round the
hospitals exchange their descriptions (they hold names, units and hashes of definitions, never
data) and stop if they differ (fedtrain/sessions/schema_check.py).

A MEDS site's mapping counts only when it is custom (``extraction.meds_mapping``): the default
mapping reads the MIMIC-IV codes and gives the CSV path's cohort.

Data-derived statistics (prevalences, counts, normalisation moments) are not part of it: those
differ between hospitals by nature, and the normalisation statistics are pooled securely at
train time. Nor is a site's ``--split`` (its train/val/test fractions): it decides which of its
own patients train, not what the columns mean, and nothing at train time reads it.

The description is rebuilt from the manifest's own ``features``, ``labels``, ``static``,
``n_bins`` and ``bin_hours`` (the fields the data reader uses), completed with the definition
hashes, window and extraction settings that ``schema`` records; so a manifest edited by hand is
compared by what it says now.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Mapping
from typing import Any

from crypten_fl.common.errors import UserError

#: bumped when the description's fields change meaning
SCHEMA_VERSION = 1
#: fields every member of a vertical federation must share (the rest is per party)
VERTICAL_COMMON = ("version", "n_bins", "bin_hours", "hours", "extraction", "record_key")
#: at most this many differences are named per hospital
MAX_SHOWN = 3


def canonical_json(obj: Any) -> str:
    """The one text of ``obj`` that is hashed: sorted keys, no spaces, ASCII (a hand-edited NaN
    stays ``NaN``, anything not JSON becomes its text)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      default=str)


def fingerprint(description: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of a schema description."""
    return hashlib.sha256(canonical_json(description).encode()).hexdigest()


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def describe(manifest: Mapping[str, Any], extras: Mapping[str, Any] | None = None
             ) -> dict[str, Any]:
    """The schema description of a hospital manifest.

    Args:
        manifest: the hospital manifest's fields (``features`` records with name, unit, group;
            ``labels`` names; ``static``; ``n_bins``; ``bin_hours``; ``groups``; ``label_party``;
            ``key``).
        extras: what the manifest fields do not say: ``features`` and ``labels`` (name ->
            definition hash), ``hours`` and ``extraction`` (cohort criteria, SQL hash); from the
            cohort (:func:`cohort_extras`) or an earlier description (:func:`extras_of`).
    """
    extras = extras or {}
    feature_defs = extras.get("features") or {}
    label_defs = extras.get("labels") or {}
    groups = manifest.get("groups")
    return {
        "version": SCHEMA_VERSION,
        "features": [{"name": f.get("name"), "unit": f.get("unit"), "group": f.get("group"),
                      "definition": feature_defs.get(f.get("name"))}
                     for f in manifest.get("features") or [] if isinstance(f, dict)],
        "labels": [{"name": name, "definition": label_defs.get(name)}
                   for name in manifest.get("labels") or []],
        "static": list(manifest.get("static") or []),
        "n_bins": manifest.get("n_bins"),
        "bin_hours": _number(manifest.get("bin_hours")),
        "hours": _number(extras.get("hours")),
        "extraction": extras.get("extraction"),
        "record_key": manifest.get("key"),
        "groups": list(groups) if isinstance(groups, list) else None,
        "label_party": bool(manifest.get("label_party", True)),
    }


def cohort_extras(cohort_manifest: Mapping[str, Any]) -> dict[str, Any]:
    """Definition hashes, window and extraction settings recorded by ``extract`` (None where an
    older or hand-made cohort lacks them)."""
    definitions = cohort_manifest.get("definitions")
    definitions = definitions if isinstance(definitions, dict) else {}
    params = cohort_manifest.get("parameters")
    params = params if isinstance(params, dict) else {}
    criteria = {k: params[k] for k in ("min_age", "min_los_hours") if k in params}
    extraction = {**criteria, "sql": definitions.get("sql")} if criteria or definitions else None
    if extraction is not None and definitions.get("meds_mapping"):
        extraction["meds_mapping"] = definitions["meds_mapping"]  # only a custom one
    return {"features": definitions.get("features") or {},
            "labels": definitions.get("labels") or {},
            "hours": cohort_manifest.get("hours"), "extraction": extraction}


def extras_of(description: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a stored description that the manifest's other fields do not repeat."""
    def defs(key: str) -> dict[str, Any]:
        items = description.get(key)
        return {i["name"]: i.get("definition") for i in items if isinstance(i, dict)
                and isinstance(i.get("name"), str)} if isinstance(items, list) else {}

    return {"features": defs("features"), "labels": defs("labels"),
            "hours": description.get("hours"), "extraction": description.get("extraction")}


def schema_fields(manifest: Mapping[str, Any], extras: Mapping[str, Any]) -> dict[str, Any]:
    """The ``schema`` and ``schema_sha256`` fields a hospital manifest gets when written."""
    description = describe(manifest, extras)
    return {"schema": description, "schema_sha256": fingerprint(description)}


def manifest_schema(manifest: Mapping[str, Any]) -> dict[str, Any]:
    """The description of a written hospital manifest, rebuilt from its current fields (a
    manifest written before schemas existed gets definitions and window ``None``)."""
    stored = manifest.get("schema")
    return describe(manifest, extras_of(stored) if isinstance(stored, dict) else None)


# --- comparing ----------------------------------------------------------------------------


def _names(items: list[dict[str, Any]]) -> list[Any]:
    return [i.get("name") for i in items]


def _list_diff(what: str, ref: list[Any], other: list[Any], ref_name: str) -> list[str]:
    missing = [str(n) for n in ref if n not in other]
    extra = [str(n) for n in other if n not in ref]
    if missing or extra:
        parts = [f"{', '.join(missing)} missing"] if missing else []
        parts += [f"{', '.join(extra)} not in {ref_name}'s"] if extra else []
        return [f"{what} differs: {'; '.join(parts)}"]
    if ref != other:
        at = next(i for i, (a, b) in enumerate(zip(ref, other, strict=True)) if a != b)
        return [f"{what} in another order (position {at + 1}: {other[at]}, {ref_name} has "
                f"{ref[at]})"]
    return []


def _item_diff(kind: str, ref: list[dict[str, Any]], other: list[dict[str, Any]],
               fields: tuple[str, ...], ref_name: str) -> list[str]:
    found = []
    theirs = {i.get("name"): i for i in other}
    for mine in ref:
        item = theirs.get(mine.get("name"))
        if item is None:
            continue
        for field in fields:
            if item.get(field) != mine.get(field):
                if field == "definition":
                    what = "ICD definition" if kind == "label" else \
                        "definition (itemids, valid range or unit conversion)"
                    found.append(f"{kind} {mine['name']}: {what} differs from {ref_name}'s")
                else:
                    found.append(f"{kind} {mine['name']}: {field} {item.get(field)}, "
                                 f"{ref_name} has {mine.get(field)}")
    return found


def differences(ref: Mapping[str, Any], other: Mapping[str, Any], ref_name: str,
                vertical: bool = False) -> list[str]:
    """What ``other`` says differently from ``ref`` (the hospital ``ref_name``), in the order a
    user should fix it; empty if they agree. ``vertical``: only the fields all parties share."""
    found: list[str] = []
    for field in ("version", "record_key"):
        if other.get(field) != ref.get(field):
            found.append(f"{field.replace('_', ' ')} {other.get(field)}, {ref_name} has "
                         f"{ref.get(field)}")
    grid = ("n_bins", "bin_hours", "hours")
    if any(other.get(f) != ref.get(f) for f in grid):
        def text(d: Mapping[str, Any]) -> str:
            return f"{d.get('n_bins')} bins of {d.get('bin_hours')} h over {d.get('hours')} h"
        found.append(f"time grid {text(other)}, {ref_name} has {text(ref)}")
    if other.get("extraction") != ref.get("extraction"):
        found += _extraction_diff(ref.get("extraction"), other.get("extraction"), ref_name)
    if other.get("training") != ref.get("training"):
        found.append(f"training preprocessing differs from {ref_name}'s (another crypten-fl "
                     "version?)")
    if vertical:
        return found
    rf, of = ref.get("features") or [], other.get("features") or []
    found += _list_diff("feature list", _names(rf), _names(of), ref_name)
    found += _item_diff("feature", rf, of, ("unit", "group", "definition"), ref_name)
    rl, ol = ref.get("labels") or [], other.get("labels") or []
    found += _list_diff("label list", _names(rl), _names(ol), ref_name)
    found += _item_diff("label", rl, ol, ("definition",), ref_name)
    found += _list_diff("static column list", list(ref.get("static") or []),
                        list(other.get("static") or []), ref_name)
    return found


def _extraction_diff(ref: Any, other: Any, ref_name: str) -> list[str]:
    if not isinstance(other, dict):
        return [f"extraction settings not recorded (an older or hand-made cohort), {ref_name}'s "
                "are"]
    if not isinstance(ref, dict):
        return [f"extraction settings recorded, {ref_name}'s not (an older or hand-made cohort)"]
    found = []
    for key in sorted(ref.keys() | other.keys()):
        if ref.get(key) != other.get(key):
            if key == "sql":
                found.append(f"extraction SQL differs from {ref_name}'s (another crypten-fl "
                             "version?)")
            elif key == "meds_mapping":
                found.append(f"MEDS mapping {_mapping(other.get(key))}, {ref_name} uses "
                             f"{_mapping(ref.get(key))}")
            else:
                found.append(f"extraction --{key.replace('_', '-')} {other.get(key)}, "
                             f"{ref_name} has {ref.get(key)}")
    return found


def _mapping(digest: Any) -> str:
    return f"custom {digest}" if digest else "the MIMIC-IV codes (CSV or the default mapping)"


def check_agreement(descriptions: Mapping[str, Mapping[str, Any]], vertical: bool) -> None:
    """Raise one UserError naming every hospital whose schema differs, and how.

    Horizontal: the description held by most hospitals (ties: the first hospital's) is the
    reference and every other hospital is named with its first differences. Vertical: the
    shared fields must agree, the parties' feature groups must not overlap and exactly one party
    holds the labels.
    """
    names = list(descriptions)
    if not names:
        return
    if vertical:
        problems = _vertical_problems(descriptions)
    else:
        prints = {n: fingerprint(d) for n, d in descriptions.items()}
        counts = Counter(prints.values())
        # the first hospital holding the most common description
        ref_name = max(names, key=lambda n: (counts[prints[n]], -names.index(n)))
        ref_print = prints[ref_name]
        problems = []
        for name in names:
            if prints[name] == ref_print:
                continue
            found = differences(descriptions[ref_name], descriptions[name], ref_name)
            found = found or ["schema differs in a field crypten-fl does not name"]
            shown = "; ".join(found[:MAX_SHOWN]) + (" …" if len(found) > MAX_SHOWN else "")
            problems.append(f"{name}: {shown}")
    if problems:
        raise UserError("the hospitals' data schemas differ (compared before the first round): "
                        + " | ".join(problems))


def _vertical_problems(descriptions: Mapping[str, Mapping[str, Any]]) -> list[str]:
    names = list(descriptions)
    ref_name = names[0]
    ref = descriptions[ref_name]
    problems = []
    owner: dict[str, str] = {}
    for name in names:
        d = descriptions[name]
        found = differences(ref, d, ref_name, vertical=True) if name != ref_name else []
        groups = d.get("groups")
        if not isinstance(groups, list) or not groups:
            found.append("no feature groups recorded (not a vertical party's directory)")
            groups = []
        for group in groups:
            if group in owner:
                found.append(f"feature group {group} also held by {owner[group]}")
            owner.setdefault(group, name)
        outside = [f.get("name") for f in d.get("features") or [] if f.get("group") not in groups]
        if outside:
            found.append(f"features {', '.join(map(str, outside[:5]))} outside its groups "
                         f"{','.join(map(str, groups))}")
        if found:
            problems.append(f"{name}: {'; '.join(found[:MAX_SHOWN])}")
    holders = [n for n in names if descriptions[n].get("label_party")]
    if len(holders) != 1:
        problems.append(f"{len(holders)} parties hold the labels "
                        f"({', '.join(holders) or 'none'}), expected exactly one")
    return problems
