"""StyleGAN3 networks (our own code, state-dict compatible with NVIDIA's), training and .pkl import."""
