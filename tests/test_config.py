"""The config tree composes for every stage and the schemas reject bad values with the key's name."""

import pytest
from hydra.errors import ConfigCompositionException
from omegaconf.errors import ConfigKeyError, ValidationError

from reid_gan.config import ConfigError, validate_config
from tests.helpers import CONF_DIR, compose_stage

STAGES = sorted(p.stem for p in CONF_DIR.glob("*.yaml") if p.stem != "common")


@pytest.mark.parametrize("stage", STAGES)
@pytest.mark.parametrize("experiment", ["smoke", "quickstart"])
def test_every_stage_composes_and_validates(stage, experiment, tmp_path):
    cfg = compose_stage(stage, tmp_path, [f"experiment={experiment}"])
    validate_config(cfg)
    assert cfg.task_name == stage


def test_negative_size_is_rejected_naming_the_key(tmp_path):
    cfg = compose_stage("make_dataset", tmp_path, ["data.batch_size=-4"])
    with pytest.raises(ConfigError, match=r"data\.batch_size: must be > 0"):
        validate_config(cfg)


def test_wrong_type_is_rejected_at_composition(tmp_path):
    with pytest.raises((ConfigCompositionException, ValidationError), match="batch_size"):
        compose_stage("make_dataset", tmp_path, ["data.batch_size=lots"])


def test_unknown_key_is_rejected(tmp_path):
    with pytest.raises((ConfigCompositionException, ConfigKeyError), match="batchsize"):
        compose_stage("make_dataset", tmp_path, ["data.batchsize=4"])


def test_unknown_option_is_rejected(tmp_path):
    with pytest.raises(ConfigCompositionException, match="data"):
        compose_stage("make_dataset", tmp_path, ["data=imagenet"])


def test_trainer_accelerator_checked(tmp_path):
    cfg = compose_stage("make_dataset", tmp_path, ["trainer.accelerator=quantum"])
    with pytest.raises(ConfigError, match=r"trainer\.accelerator"):
        validate_config(cfg)


@pytest.mark.parametrize("experiment", ["thesis_persons", "thesis_variants", "thesis_gan"])
def test_thesis_presets_compose_with_the_thesis_settings(experiment, tmp_path):
    cfg = compose_stage("pipeline", tmp_path, [f"experiment={experiment}", "data.root=/datasets/market"])
    validate_config(cfg)
    if experiment != "thesis_gan":
        assert cfg.data.name == "market1501" and cfg.reid.net.arch == "resnet50"
        assert (cfg.data.height, cfg.data.width, cfg.data.batch_size, cfg.reid.max_epochs) == (256, 128, 16, 60)


@pytest.mark.parametrize("stage", ["train_gan", "pipeline"])
def test_thesis_gan_resolves_to_the_thesis_settings(stage, tmp_path):
    """experiment=thesis_gan, as the stage composes it: stylegan3-r (1×1 convs, radial filters, cbase 65536,
    cmax 1024), batch 16, R1 gamma 2, 5000 kimg, a snapshot every 20 ticks, FID on 50k generated images
    against the full training set."""
    cfg = compose_stage(stage, tmp_path, ["experiment=thesis_gan", "data.root=/datasets/market"])
    validate_config(cfg)
    g = cfg.gan
    assert g.name == "stylegan3-r"
    assert (g.G.conv_kernel, g.G.use_radial_filters, g.G.channel_base, g.G.channel_max) == (1, True, 65536, 1024)
    assert (g.D.channel_base, g.D.channel_max) == (65536, 1024)
    assert g.batch_size == 16 and g.module.loss.r1_gamma == 2.0
    assert g.kimg == 5000 and g.snap == 20
    assert cfg.metrics.num_images == 50000 and cfg.metrics.num_real is None


@pytest.mark.parametrize("experiment", ["thesis_gan", "quickstart"])
def test_train_gan_optimises_the_metric_it_produces(experiment, tmp_path):
    """optimized_metric follows metrics.inception: metric/fid with Inception weights (what a thesis run
    logs), metric/swd without. A fixed name would raise KeyError at the end of a 5000-kimg FID run."""
    with_weights = compose_stage("train_gan", tmp_path, [f"experiment={experiment}", "data.root=/datasets/market",
                                                         "metrics.inception=/weights/pt_inception.pth"])
    assert with_weights.optimized_metric == "metric/fid"
    without = compose_stage("train_gan", tmp_path, [f"experiment={experiment}", "data.root=/datasets/market"])
    assert without.optimized_metric == "metric/swd"
