"""Mass-model means of three lens systems, for the uncertainty and redshift tests."""

from __future__ import annotations

import numpy as np

#: SIE + external shear means of three systems, one per entry: ``theta_e`` and the centre in
#: arcsec, ellipticity and shear dimensionless (lenstronomy's conventions). The second system
#: is round and unsheared; the others are moderately elliptical with shear.
THREE_SYSTEMS = {
    "theta_e": np.array([1.2, 1.5, 0.9]),
    "e1": np.array([0.1, 0.0, -0.15]),
    "e2": np.array([-0.05, 0.05, 0.08]),
    "center_x": np.array([0.0, 0.1, 0.0]),
    "center_y": np.array([0.0, -0.1, 0.05]),
    "gamma1": np.array([0.03, 0.0, -0.04]),
    "gamma2": np.array([0.02, 0.0, 0.05]),
}
