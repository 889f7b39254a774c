"""pSp (ReStyle) encoder for a frozen StyleGAN3: networks (:mod:`.networks`), losses (:mod:`.lpips`,
:mod:`.losses`), the LightningModule (:mod:`.module`), data (:mod:`.data`) and building from config
(:mod:`.build`). Stages: ``python -m reid_gan.train_encoder`` and ``python -m reid_gan.invert``."""
