"""Defaults of the physics that every entry point shares (``consume``, ``process``, ``solve``).

One place for them, so the service, the batch command, the solver and their documentation
cannot drift apart; :mod:`lenscast.consumer.settings` builds its defaults from these. Plain
numbers only: importing this module imports nothing else.
"""

from __future__ import annotations

#: Hubble constant of the default flat LCDM cosmology (no radiation), km/s/Mpc.
DEFAULT_H0 = 70.0
#: Matter density today of the default flat LCDM cosmology (Omega_Lambda = 1 - Om0).
DEFAULT_OM0 = 0.3
#: Monte Carlo draws per system for the image and delay percentiles: 64 stratified draws give
#: percentiles as precise as 100 independent ones (:mod:`lenscast.model.uncertainty`).
DEFAULT_MC_SAMPLES = 64
