"""Ids are taken exactly as written, so ``' u1'`` and ``'u1'`` (or an accented name in composed and in
decomposed Unicode) are two users. That is rarely what a file means, and it is invisible in most viewers:
such variants are reported (how many, with examples) and refused, or merged when
``prepare.id_variants=merge`` says so (each group becomes its trimmed, NFC-normalised form)."""
from __future__ import annotations

import dataclasses
from typing import Callable

import pandas as pd

from .formats import DataFormatError, RawDataset


def canonical(ids: pd.Series) -> pd.Series:
    """The form two variants share: surrounding whitespace removed, Unicode NFC."""
    return ids.str.strip().str.normalize("NFC")


def variant_groups(values) -> dict[str, list[str]]:
    """{canonical form: [its distinct spellings]} for every form written in more than one way."""
    ids = pd.Series(pd.unique(pd.Series(values).astype(str)), dtype=object)
    if ids.empty:
        return {}
    forms = canonical(ids)
    changed = forms != ids
    if not changed.any():
        return {}
    involved = forms.isin(set(forms[changed]))
    groups = ids[involved].groupby(forms[involved].to_numpy()).agg(list)
    return {form: sorted(spellings) for form, spellings in groups.items() if len(spellings) > 1}


def _examples(groups: dict[str, list[str]], n: int = 3) -> str:
    shown = "; ".join(" and ".join(repr(s) for s in spellings[:3]) for spellings in list(groups.values())[:n])
    return shown + (f"; and {len(groups) - n} more" if len(groups) > n else "")


def check_id_variants(raw: RawDataset, policy: str, log: Callable[[str], None]) -> RawDataset:
    """``raw`` unchanged when no two ids differ only by surrounding spaces or Unicode normalisation; else a
    DataFormatError (policy ``refuse``) or ``raw`` with each group of variants merged into one id (``merge``)."""
    found = {"user": variant_groups(raw.interactions["user"]),
             "item": variant_groups(pd.concat([raw.interactions["item"].astype(str), raw.items["item"].astype(str)]))}
    found = {kind: groups for kind, groups in found.items() if groups}
    if not found:
        return raw
    said = ", ".join(f"{len(groups):,} {kind} ids written in more than one way (e.g. {_examples(groups)})"
                     for kind, groups in found.items())
    if policy != "merge":
        raise DataFormatError(f"[{raw.name}] {said}: they differ only by surrounding spaces or Unicode normalisation "
                              "and would be counted as different. Fix them in the files, or pass "
                              "--prepare.id_variants=merge to read each group as one id (trimmed, NFC)")
    log(f"[{raw.name}] merged {said} into one id each (prepare.id_variants=merge)")
    inter, items = raw.interactions.copy(), raw.items.copy()
    for kind, groups in found.items():
        mapping = {spelling: form for form, spellings in groups.items() for spelling in spellings}
        inter[kind] = _renamed(inter[kind], mapping)
        if kind == "item":
            items["item"] = _renamed(items["item"], mapping)
    return dataclasses.replace(raw, interactions=inter, items=items)


def _renamed(column: pd.Series, mapping: dict[str, str]) -> pd.Series:
    text = column.astype(str)
    return text.map(mapping).fillna(text)
