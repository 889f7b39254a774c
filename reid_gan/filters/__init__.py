"""Filters for generated images: pedestrian detectors (HOG: :mod:`reid_gan.filters.hog`), SSIM, the chain."""
