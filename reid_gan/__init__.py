"""reid-gan: does GAN-made people improve person re-identification, and by how much?

Stages are Hydra apps (``python -m reid_gan.<stage>``) that talk only through artifacts on disk.
See DESIGN in the README for the stage graph.
"""

__version__ = "0.1.0"
