"""Unit, UCD and description of every stored (and derived) column: one place for every export.

``lenscast query`` writes FITS, VOTable and ECSV tables whose columns carry these (units as
astropy unit strings, UCDs from the IVOA UCD1+ vocabulary for TOPCAT and the VO, a one-line
description); a test checks that every column of :data:`lenscast.db.models.results_table` and
:data:`lenscast.db.models.images_table` is described here, and that each UCD is valid. The mass
parameters take their units and descriptions from :mod:`lenscast.model.parameter_spec`.

Percentiles of the Monte Carlo distributions: ``_p16``/``_p84`` are marked ``stat.min`` /
``stat.max`` (the 68 % interval's bounds) and ``_p50`` ``stat.median`` on the quantity's UCD.
"""

from __future__ import annotations

from dataclasses import dataclass

from lenscast.model import parameter_spec as spec


@dataclass(frozen=True)
class ColumnDoc:
    """What a column means.

    Attributes
    ----------
    unit : str
        astropy unit string (``""``: dimensionless or not a quantity).
    ucd : str
        IVOA UCD1+ word(s), ``;``-separated.
    description : str
        One line: what it is, its convention.
    """

    unit: str
    ucd: str
    description: str


def _doc(unit: str, ucd: str, description: str) -> ColumnDoc:
    return ColumnDoc(unit, ucd, description)


#: UCDs of the mass parameters (lenstronomy conventions; see lenscast.model.parameter_spec).
_MASS_UCD = {
    "theta_e": "phys.angSize;meta.modelled",
    "e1": "src.ellipticity;meta.modelled",
    "e2": "src.ellipticity;meta.modelled",
    "center_x": "pos.cartesian.x;meta.modelled",
    "center_y": "pos.cartesian.y;meta.modelled",
    "gamma1": "phys.gravity;meta.modelled",
    "gamma2": "phys.gravity;meta.modelled",
}

_MASS = {
    p.name: _doc(p.unit, _MASS_UCD[p.name], f"predicted {p.description}")
    for p in spec.MASS_PARAMETERS
}
_SIGMA = {
    p.sigma_name: _doc(
        p.unit, f"stat.error;{_MASS_UCD[p.name]}", f"1-sigma uncertainty of {p.name}"
    )
    for p in spec.MASS_PARAMETERS
}

RESULT_COLUMNS: dict[str, ColumnDoc] = {
    "id": _doc("", "meta.record", "row number in lens_results"),
    "alert_id": _doc("", "meta.id;meta.main", "alert identifier (with model_version: the key)"),
    "candidate_id": _doc("", "meta.id", "lens candidate (object) identifier"),
    "ra": _doc("deg", "pos.eq.ra;meta.main", "cutout centre right ascension (ICRS)"),
    "dec": _doc("deg", "pos.eq.dec;meta.main", "cutout centre declination (ICRS)"),
    "mjd": _doc("d", "time.epoch", "alert time, MJD"),
    "survey": _doc("", "meta.id;instr.obsty", "survey the cutouts come from"),
    "upstream_broker": _doc("", "meta.id", "broker that forwarded the alert"),
    "upstream_alert_id": _doc("", "meta.id.cross", "the upstream broker's alert identifier"),
    "model_name": _doc("", "meta.id;meta.software", "mass model (ONNX) name"),
    "model_version": _doc("", "meta.version", "mass model version"),
    "onnx_sha256": _doc("", "meta.checksum", "SHA-256 of the ONNX model file"),
    "parameter_spec_version": _doc("", "meta.version", "version of the parameter specification"),
    "alert_schema_version": _doc("", "meta.version", "alert schema version of the packet"),
    **_MASS,
    **_SIGMA,
    "out_of_range": _doc(
        "", "meta.code.qual", "parameters predicted outside the trained range, comma-separated"
    ),
    "source_x": _doc(
        "arcsec", "pos.cartesian.x;meta.modelled", "source position, dRA cos(Dec) from centre"
    ),
    "source_y": _doc(
        "arcsec", "pos.cartesian.y;meta.modelled", "source position, dDec from centre"
    ),
    "n_images": _doc("", "meta.number", "number of predicted lensed images"),
    "p_lens": _doc("", "stat.probability", "model's probability that the cutout shows a lens"),
    "p_lens_threshold": _doc("", "stat.probability", "p_lens threshold in force when processed"),
    "no_lens": _doc("", "meta.code", "p_lens below the threshold: the model sees no lens"),
    "image_count_mismatch_fraction": _doc(
        "", "stat.probability", "fraction of Monte Carlo draws with another image count"
    ),
    "z_lens": _doc("", "src.redshift", "lens redshift (from the alert)"),
    "z_lens_err": _doc("", "stat.error;src.redshift", "1-sigma error of z_lens"),
    "z_source": _doc("", "src.redshift", "source redshift (from the alert)"),
    "z_source_err": _doc("", "stat.error;src.redshift", "1-sigma error of z_source"),
    "z_lens_origin": _doc("", "meta.code", "z_lens measured (alert) or from the prior"),
    "z_source_origin": _doc("", "meta.code", "z_source measured (alert) or from the prior"),
    "z_lens_used": _doc("", "src.redshift", "lens redshift behind the nominal delays"),
    "z_source_used": _doc("", "src.redshift", "source redshift behind the nominal delays"),
    "time_delay_distance_mpc": _doc(
        "Mpc", "pos.distance;meta.modelled", "time-delay distance D_dt of the delays"
    ),
    "cosmology": _doc("", "meta.note;phys.cosmology", "cosmology of the time delays"),
    "cosmology_h0": _doc(
        "km / (Mpc s)", "stat.param;phys.cosmology", "Hubble constant H0 of the delays"
    ),
    "cosmology_om0": _doc(
        "", "stat.param;phys.cosmology", "matter density Om0 of the delays (flat LCDM)"
    ),
    "has_transient": _doc("", "meta.code", "the alert carries a triggering transient"),
    "transient_dia_source_id": _doc("", "meta.id.assoc", "diaSource id of the transient"),
    "transient_ra": _doc("deg", "pos.eq.ra", "transient right ascension (ICRS)"),
    "transient_dec": _doc("deg", "pos.eq.dec", "transient declination (ICRS)"),
    "transient_mjd": _doc("d", "time.epoch", "transient detection time, MJD (TAI)"),
    "transient_band": _doc("", "instr.bandpass", "band of the transient detection"),
    "transient_flux": _doc("nJy", "phot.flux.density", "transient PSF flux"),
    "transient_x": _doc(
        "arcsec", "pos.cartesian.x", "transient position, dRA cos(Dec) from centre"
    ),
    "transient_y": _doc("arcsec", "pos.cartesian.y", "transient position, dDec from centre"),
    "source_topic": _doc("", "meta.id", "Kafka topic, or file:<path> of an archive"),
    "source_partition": _doc("", "meta.id.part", "Kafka partition (0 for archives)"),
    "source_offset": _doc("", "meta.record", "Kafka offset, or index in the archive"),
    "message_timestamp": _doc("", "time.epoch", "message timestamp, ISO 8601 UTC"),
    "processed_at": _doc("", "time.processing", "when the alert was processed, ISO 8601 UTC"),
    "latency_s": _doc("s", "time.interval", "message timestamp to processing"),
    "stored_at": _doc("", "time.processing", "when the row was stored, ISO 8601 UTC"),
}


def _percentiles(name: str, unit: str, ucd: str, what: str) -> dict[str, ColumnDoc]:
    return {
        f"{name}_p16": _doc(unit, f"{ucd};stat.min", f"16th percentile of {what}"),
        f"{name}_p50": _doc(unit, f"{ucd};stat.median", f"median of {what}"),
        f"{name}_p84": _doc(unit, f"{ucd};stat.max", f"84th percentile of {what}"),
    }


IMAGE_COLUMNS: dict[str, ColumnDoc] = {
    "alert_id": RESULT_COLUMNS["alert_id"],
    "model_version": RESULT_COLUMNS["model_version"],
    "image_index": _doc("", "meta.number", "image in arrival order, 0 arriving first"),
    "x": _doc(
        "arcsec", "pos.cartesian.x;meta.modelled", "image position, dRA cos(Dec) from centre"
    ),
    "y": _doc("arcsec", "pos.cartesian.y;meta.modelled", "image position, dDec from centre"),
    **_percentiles("x", "arcsec", "pos.cartesian.x", "x over the Monte Carlo draws"),
    **_percentiles("y", "arcsec", "pos.cartesian.y", "y over the Monte Carlo draws"),
    "magnification": _doc("", "arith.factor;meta.modelled", "signed point-source magnification"),
    "time_delay_days": _doc("d", "time.interval;meta.modelled", "time delay after the first image"),
    **_percentiles("time_delay", "d", "time.interval", "the time delay"),
    "fermat_potential_arcsec2": _doc(
        "arcsec2", "phys.potential;meta.modelled", "Fermat potential minus the first image's"
    ),
    "is_observed": _doc("", "meta.code", "the image the triggering transient was seen in"),
    "arrival_mjd": _doc("d", "time.epoch;meta.modelled", "predicted MJD the transient appears"),
    "arrival_mjd_p16": _doc("d", "time.epoch;stat.min", "16th percentile of arrival_mjd"),
    "arrival_mjd_p84": _doc("d", "time.epoch;stat.max", "84th percentile of arrival_mjd"),
    "ra": _doc("deg", "pos.eq.ra;meta.modelled", "image right ascension (ICRS), cutout WCS"),
    "dec": _doc("deg", "pos.eq.dec;meta.modelled", "image declination (ICRS), cutout WCS"),
    "ra_p16": _doc("deg", "pos.eq.ra;stat.min", "RA at the 16th percentile of x"),
    "ra_p84": _doc("deg", "pos.eq.ra;stat.max", "RA at the 84th percentile of x"),
    "dec_p16": _doc("deg", "pos.eq.dec;stat.min", "Dec at the 16th percentile of y"),
    "dec_p84": _doc("deg", "pos.eq.dec;stat.max", "Dec at the 84th percentile of y"),
}

#: Columns computed by ``lenscast query`` (not stored).
DERIVED_COLUMNS: dict[str, ColumnDoc] = {
    "max_delay_days": _doc("d", "time.interval;stat.max", "longest predicted time delay"),
}


def column_doc(name: str) -> ColumnDoc | None:
    """The description of an exported column, or None if it has none.

    ``name`` is a result field, a derived field, or an image field as
    :func:`lenscast.db.queries.flatten_images` names it (``image_`` before names the result also
    has).
    """
    if name in RESULT_COLUMNS:
        return RESULT_COLUMNS[name]
    if name in DERIVED_COLUMNS:
        return DERIVED_COLUMNS[name]
    return IMAGE_COLUMNS.get(name.removeprefix("image_"), IMAGE_COLUMNS.get(name))
