"""A cone read from a named catalogue version (a recalibration's ``catalogue_versions``), not the live one."""

from __future__ import annotations

import numpy as np
import pytest

from services.catalog.loader import load_extracts
from services.catalog.store import CatalogStore
from shared.contracts.errors import ErrorCode
from shared.errors import BadInput
from tests.unit.test_catalog_store import CENTRE, SMALL, _stars


def test_a_cone_reads_the_version_asked_for_and_names_it(tmp_path):
    rng = np.random.default_rng(7)
    df = _stars(rng, n_background=300, n_cluster=100)
    first, second = df.iloc[::2], df.iloc[1::2]
    first.to_csv(tmp_path / "1.csv", index=False, na_rep="")
    second.to_csv(tmp_path / "2.csv", index=False, na_rep="")
    data = tmp_path / "data"
    load_extracts("APASS", [tmp_path / "1.csv"], data, **SMALL)
    load_extracts("APASS", [tmp_path / "2.csv"], data, **SMALL)  # v2: v1's stars and the new ones
    store = CatalogStore(data)
    assert store.versions_on_disk() == {"APASS": ["v1", "v2"]}

    live = store.cone(*CENTRE, 1.0, ["APASS"])
    pinned = store.cone(*CENTRE, 1.0, ["APASS"], versions={"APASS": "v1"})
    assert (live.versions, pinned.versions) == ({"APASS": "v2"}, {"APASS": "v1"})
    assert 0 < len(pinned.stars["APASS"]) < len(live.stars["APASS"])
    # the live version is still what an ordinary cone reads
    assert len(store.cone(*CENTRE, 1.0, ["APASS"]).stars["APASS"]) == len(live.stars["APASS"])

    with pytest.raises(BadInput) as refused:
        store.cone(*CENTRE, 1.0, ["APASS"], versions={"APASS": "v9"})
    assert refused.value.code == ErrorCode.UNKNOWN_CATALOGUE_VERSION and "v1, v2" in refused.value.message
    with pytest.raises(BadInput):
        store.cone(*CENTRE, 1.0, ["APASS"], versions={"APASS": "../v1"})

    # two loads later v1 is pruned (the live and the previous version are kept): no longer served
    for n in (3, 4):
        _stars(rng, n_background=20, n_cluster=5).to_csv(tmp_path / f"{n}.csv", index=False, na_rep="")
        load_extracts("APASS", [tmp_path / f"{n}.csv"], data, **SMALL)
    assert "v1" not in store.versions_on_disk()["APASS"]
    with pytest.raises(BadInput) as pruned:
        store.cone(*CENTRE, 1.0, ["APASS"], versions={"APASS": "v1"})
    assert pruned.value.code == ErrorCode.UNKNOWN_CATALOGUE_VERSION
