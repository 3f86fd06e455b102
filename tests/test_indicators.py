"""Indicator names as spelled in data, and their families (cabench.indicators)."""

from __future__ import annotations

import pytest

from cabench.indicators import (
    FAMILIES,
    INDICATORS,
    UNKNOWN,
    canonical_indicator,
    indicator_family,
    indicator_index,
)
from cabench.readers import _cascade_indicator
from cabench.simulators.presets import PRESETS, preset_for_indicator


def test_spellings_of_the_data_find_the_canonical_name():
    assert INDICATORS[indicator_index("OGB1", INDICATORS)] == "OGB-1"
    assert INDICATORS[indicator_index("GCaMP8f", INDICATORS)] == "jGCaMP8f"
    assert INDICATORS[indicator_index("XCaMPgf", INDICATORS)] == "XCaMP-Gf"
    assert indicator_index("", INDICATORS) is None and indicator_index("foo", INDICATORS) is None
    assert canonical_indicator("cal520") == "Cal-520" and canonical_indicator(None) is None


@pytest.mark.parametrize("folder, family", [
    ("DS01-OGB1-m-V1", "OGB-1"), ("DS03-Cal520-m-S1", "Cal-520"),
    ("DS06-GCaMP6f-zf-aDp", "GCaMP6f"), ("DS13-GCaMP6s-m-V1-neuropil-corrected", "GCaMP6s"),
    ("DS17-GCaMP5k-m-V1", "GCaMP5k"), ("DS18-R-CaMP-m-CA3", "red"),
    ("DS20-jRCaMP1a-m-V1", "red"), ("DS28-XCaMPgf-m-V1", "XCaMP-Gf"),
    ("DS30-GCaMP8f-m-V1", "jGCaMP8"), ("DS32-GCaMP8s-m-V1", "jGCaMP8"),
    ("DS33-Interneurons2023-m-V1", UNKNOWN),
])
def test_every_ground_truth_folder_has_its_family(folder, family):
    assert indicator_family(_cascade_indicator(folder)) == family


def test_families_group_known_indicators_and_presets_are_known():
    assert set(FAMILIES) <= set(INDICATORS)
    assert indicator_family("jGCaMP8m") == indicator_family("GCaMP8s") == "jGCaMP8"
    indicator_presets = {n for n, p in PRESETS.items() if p["indicator"] != "AR1-paper"}
    assert {canonical_indicator(n) for n in indicator_presets} == indicator_presets
    assert preset_for_indicator("OGB1") == "OGB-1" and preset_for_indicator("Cal520") is None
