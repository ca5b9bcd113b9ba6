"""Result and image rows as the writer takes them: complete, plain values, for the store tests."""

from __future__ import annotations

from datetime import UTC, datetime

from lenscast.model import parameter_spec as spec

#: The columns of a result that only a transient fills (None without one).
TRANSIENT_COLUMNS = (
    "source_x", "source_y", "n_images", "image_count_mismatch_fraction",
    "transient_dia_source_id", "transient_ra", "transient_dec", "transient_mjd",
    "transient_band", "transient_flux", "transient_x", "transient_y",
)  # fmt: skip


def result_row(alert_id: str, *, version: str = "1.0", theta_e: float = 1.2) -> dict:
    """One stored result with every column set (values are arbitrary but valid)."""
    values = {p.name: 0.01 for p in spec.MASS_PARAMETERS} | {"theta_e": theta_e}
    return {
        "alert_id": alert_id,
        "candidate_id": "c1",
        "ra": 150.0,
        "dec": 2.0,
        "mjd": 60500.0,
        "survey": "simulation",
        "upstream_broker": None,
        "upstream_alert_id": None,
        "model_name": "m",
        "model_version": version,
        "onnx_sha256": "0" * 64,
        "parameter_spec_version": spec.PARAMETER_SPEC_VERSION,
        "alert_schema_version": "1.0",
        **values,
        **{p.sigma_name: 0.05 for p in spec.MASS_PARAMETERS},
        "out_of_range": None,
        "source_x": 0.1,
        "source_y": 0.2,
        "n_images": 2,
        "image_count_mismatch_fraction": 0.0,
        "z_lens": 0.5,
        "z_lens_err": None,
        "z_source": 2.0,
        "z_source_err": None,
        "cosmology": "FlatLambdaCDM(H0=70, Om0=0.3)",
        "cosmology_h0": 70.0,
        "cosmology_om0": 0.3,
        "has_transient": True,
        "transient_dia_source_id": 7,
        "transient_ra": 150.0,
        "transient_dec": 2.0,
        "transient_mjd": 60500.1,
        "transient_band": "i",
        "transient_flux": 1.0,
        "transient_x": 1.0,
        "transient_y": 0.5,
        "source_topic": "t",
        "source_partition": 0,
        "source_offset": 1,
        "message_timestamp": datetime.now(UTC),
        "processed_at": datetime.now(UTC),
        "latency_s": 0.1,
    }


def image_rows(alert_id: str, n: int, *, version: str = "1.0") -> list[dict]:
    """``n`` predicted-image rows of one result, the first one the observed image."""
    return [
        {
            "alert_id": alert_id,
            "model_version": version,
            "image_index": k,
            "x": 1.0 + k,
            "y": -1.0,
            "x_p16": None,
            "x_p50": None,
            "x_p84": None,
            "y_p16": None,
            "y_p50": None,
            "y_p84": None,
            "magnification": 2.0,
            "time_delay_days": 3.0 * k,
            "time_delay_p16": None,
            "time_delay_p50": None,
            "time_delay_p84": None,
            "is_observed": k == 0,
            "arrival_mjd": 60500.0 + 3 * k,
            "arrival_mjd_p16": None,
            "arrival_mjd_p84": None,
        }
        for k in range(n)
    ]
