"""Schema of the pipeline's own keys (``conf/pipeline.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List

from hydra.core.config_store import ConfigStore

from reid_gan.config import check

STAGES = ("make_dataset", "train_gan", "generate", "filter", "train", "train_encoder", "invert", "report")


@dataclass
class SweepSchema:
    persons: List[int] = field(default_factory=lambda: [0, 40, 80])  # 0 = the baseline (aug=none)
    seeds: List[int] = field(default_factory=lambda: [0])
    # the second arm (thesis Table 8): K generated variants of each real identity (empty: not run)
    images_per_person: List[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        check(all(k >= 1 for k in self.images_per_person), "sweep.images_per_person", "values must be >= 1",
              list(self.images_per_person))
        check(len(self.persons) > 0, "sweep.persons", "must list at least one value (0 = baseline)")
        check(all(n >= 0 for n in self.persons), "sweep.persons", "values must be >= 0", list(self.persons))
        check(len(self.seeds) > 0, "sweep.seeds", "must list at least one seed")


@dataclass
class PipelineSchema:
    stages: List[str] = field(default_factory=lambda: list(STAGES))
    sweep: SweepSchema = field(default_factory=SweepSchema)
    force: List[str] = field(default_factory=list)
    # stage → the config fields that key its artifact (stated in conf/pipeline.yaml)
    keys: Dict[str, List[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        bad = [s for s in self.stages if s not in STAGES]
        check(not bad, "stages", f"unknown stage(s) {bad}; known: {', '.join(STAGES)}")
        bad = [s for s in self.force if s not in STAGES]
        check(not bad, "force", f"unknown stage(s) {bad}; known: {', '.join(STAGES)}")
        bad = [s for s in self.keys if s not in STAGES]
        check(not bad, "keys", f"unknown stage(s) {bad}; known: {', '.join(STAGES)}")
        missing = [s for s in self.stages if s != "report" and not self.keys.get(s)]
        check(not missing, "keys", f"no fields listed for stage(s) {missing}: its artifact key would hash nothing")


def register(cs: ConfigStore) -> None:
    cs.store(name="pipeline_schema", node=PipelineSchema)
