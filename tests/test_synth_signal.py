"""The synthetic release carries a calibrated, uneven label signal (bench/synth_signal.py).

The 1,500-patient calibration check takes about 20-25 s, so it runs by default.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from crypten_fl.mimic_etl.synth import clinical, generate
from helpers.synth import release, signal_bench

bench = signal_bench()


def test_prefix_ranges_expand_exactly() -> None:
    assert bench._expand("4254-4259 428") == ("4254", "4255", "4256", "4257", "4258", "4259", "428")
    assert bench._expand("E40-E46") == ("E40", "E41", "E42", "E43", "E44", "E45", "E46")
    assert bench._expand("I10-I13 I15") == ("I10", "I11", "I12", "I13", "I15")
    assert bench._expand("038") == ("038",)
    assert bench.label_prefixes()["aki"] == {9: ("584",), 10: ("N17",)}


def test_stay_features_and_labels_on_a_small_release(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    root: Path = release(tmp_path_factory)
    features, labels = bench.stay_features(root)
    assert features["stay_id"].to_list() == labels["stay_id"].to_list()
    assert list(labels.columns) == ["stay_id", "subject_id", *clinical.LABELS]
    for stat in ("mean", "min", "max"):
        for name in ("heart_rate", "creatinine", "temp_c", "gcs_motor", "lactate"):
            assert f"{stat}_{name}" in features.columns
    temp = features["mean_temp_c"].drop_nulls()
    assert 36 < temp.median() < 38  # °F rows converted
    prevalence = labels.select(clinical.LABELS).mean().row(0)
    assert all(0.02 < p < 0.8 for p in prevalence)
    assert features["drug_antibiotic"].mean() > 0.2


@pytest.mark.slow  # a 30-100 s synth + extract + fit; bench/synth_signal.py reports the same band
def test_pooled_logistic_regression_reaches_the_calibrated_band(tmp_path: Path) -> None:
    root = generate(tmp_path / "mimic", 1500, seed=0).out
    auc = bench.auroc_by_label(*bench.stay_features(root), seed=0)
    values = np.array(list(auc.values()))
    assert 0.74 <= values.mean() <= 0.89, auc
    assert np.ptp(values) >= 0.1, auc
    assert values.min() > 0.6, auc
