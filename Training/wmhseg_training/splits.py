"""k-fold splits: which cases train and which validate, the same on every machine and every rank."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from WMHSegmenterLib.engine.errors import InputError


def split_cases(
    case_ids: Sequence[str], folds: int, fold: int | str, seed: int
) -> tuple[list[str], list[str]]:
    """(training ids, validation ids) of one fold; ``fold="all"`` trains and validates on every case.

    Ids are sorted before a seeded shuffle, so the split depends on the data set and the seed only,
    not on the order a file system lists folders in.
    """
    ids = sorted(case_ids)
    if fold == "all":
        return ids, ids
    if len(ids) < folds:
        raise InputError(f"{len(ids)} cases cannot make {folds} folds; lower data.folds or use fold 'all'")
    order = np.random.default_rng(seed).permutation(len(ids))
    validation_positions = set(np.array_split(order, folds)[int(fold)].tolist())
    training = [case for i, case in enumerate(ids) if i not in validation_positions]
    validation = [case for i, case in enumerate(ids) if i in validation_positions]
    return training, validation
