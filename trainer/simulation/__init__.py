"""HSC-like griz strong-lens simulator for training data (issue #3).

One concept per module:

* :mod:`~trainer.simulation.survey` — bands, pixel grid, HSC Wide depth and noise constants;
* :mod:`~trainer.simulation.observing` — per-cutout seeing, PSF kernels and noise;
* :mod:`~trainer.simulation.psf` — pixel-integrated Moffat kernels;
* :mod:`~trainer.simulation.mass` — SIE + shear deflection and potential (NumPy);
* :mod:`~trainer.simulation.profiles` — Sérsic and Gaussian-clump light;
* :mod:`~trainer.simulation.cosmology` — distances, velocity dispersion, delay units;
* :mod:`~trainer.simulation.lens_population` — deflector draws (θ_E priors, LRG light);
* :mod:`~trainer.simulation.hudf` — real HUDF source galaxies and their train/val/test split;
* :mod:`~trainer.simulation.source_population` — source and neighbour draws;
* :mod:`~trainer.simulation.render` — noiseless imaging (agrees with lenstronomy's ImageModel);
* :mod:`~trainer.simulation.truths` — image positions, magnifications, delays (physics core);
* :mod:`~trainer.simulation.simulator` — acceptance cuts and batches;
* :mod:`~trainer.simulation.gallery`, :mod:`~trainer.simulation.distributions` — figures.
"""
