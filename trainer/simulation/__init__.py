"""HSC-like griz strong-lens simulator for training data (docs/simulation/README.md).

One concept per module:

* :mod:`~lenscast.trainer.simulation.survey` — bands, pixel grid, HSC Wide depth and noise
constants;
* :mod:`~lenscast.trainer.simulation.observing` — per-cutout seeing, PSF kernels and noise;
* :mod:`~lenscast.trainer.simulation.psf` — pixel-integrated Moffat kernels;
* :mod:`~lenscast.trainer.simulation.mass` — SIE + shear deflection and potential (NumPy);
* :mod:`~lenscast.trainer.simulation.profiles` — Sérsic and Gaussian-clump light;
* :mod:`~lenscast.trainer.simulation.cosmology` — distances, velocity dispersion, delay units;
* :mod:`~lenscast.trainer.simulation.lens_population` — deflector draws (θ_E priors, LRG light);
* :mod:`~lenscast.trainer.simulation.hudf` — real HUDF source galaxies and their train/val/test
split;
* :mod:`~lenscast.trainer.simulation.source_population` — source and neighbour draws;
* :mod:`~lenscast.trainer.simulation.render` — noiseless imaging (agrees with lenstronomy's
ImageModel);
* :mod:`~lenscast.trainer.simulation.truths` — image positions, magnifications, delays (physics
core);
* :mod:`~lenscast.trainer.simulation.simulator` — acceptance cuts and batches;
* :mod:`~lenscast.trainer.simulation.gallery`, :mod:`~lenscast.trainer.simulation.distributions` —
figures.
"""
