"""Every exported column is described once, with a valid UCD, and fits a FITS TCOMMn card."""

from __future__ import annotations

import pytest
from astropy.io.votable.ucd import check_ucd

from lenscast.db.column_docs import DERIVED_COLUMNS, IMAGE_COLUMNS, RESULT_COLUMNS, column_doc
from lenscast.db.models import images_table, results_table
from lenscast.db.queries import flatten_images
from lenscast.model import parameter_spec as spec

ALL = {**RESULT_COLUMNS, **IMAGE_COLUMNS, **DERIVED_COLUMNS}


def test_every_stored_column_is_described_and_nothing_else() -> None:
    assert set(RESULT_COLUMNS) == {c.name for c in results_table.columns}
    assert set(IMAGE_COLUMNS) == {c.name for c in images_table.columns}


@pytest.mark.parametrize("name", sorted(ALL))
def test_ucds_are_ivoa_words_and_descriptions_fit_a_fits_card(name: str) -> None:
    doc = ALL[name]
    assert check_ucd(doc.ucd, check_controlled_vocabulary=True), doc.ucd
    assert 0 < len(doc.description) <= 68  # a FITS string value holds 68 characters


def test_mass_parameters_take_their_units_from_the_spec() -> None:
    for p in spec.MASS_PARAMETERS:
        assert RESULT_COLUMNS[p.name].unit == p.unit
        assert RESULT_COLUMNS[p.sigma_name].unit == p.unit
        assert p.description in RESULT_COLUMNS[p.name].description


def test_positions_and_times_carry_the_ucds_topcat_looks_for() -> None:
    assert RESULT_COLUMNS["ra"].ucd.startswith("pos.eq.ra")
    assert RESULT_COLUMNS["dec"].ucd.startswith("pos.eq.dec")
    assert IMAGE_COLUMNS["ra"].ucd.startswith("pos.eq.ra")
    assert RESULT_COLUMNS["mjd"].ucd == "time.epoch"
    assert IMAGE_COLUMNS["arrival_mjd"].ucd.startswith("time.epoch")


def test_flattened_image_columns_find_their_description() -> None:
    result = {name: None for name in RESULT_COLUMNS if name != "id"}
    image = {name: 0.0 for name in IMAGE_COLUMNS if name not in ("alert_id", "model_version")}
    (row,) = flatten_images([{**result, "images": [image]}])
    for name in row:
        assert column_doc(name) is not None, name
    assert column_doc("image_ra") == IMAGE_COLUMNS["ra"]
    assert column_doc("image_ra_p16") == IMAGE_COLUMNS["ra_p16"]
    assert column_doc("ra") == RESULT_COLUMNS["ra"]
