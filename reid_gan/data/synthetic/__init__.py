"""The embedded dataset: procedurally rendered pedestrian crops in the exact Market-1501 layout.

Reference for the layout: Zheng et al., "Scalable Person Re-identification: A Benchmark", ICCV 2015
(Market-1501). Layout written here::

    <root>/bounding_box_train/   training identities (disjoint from the test identities)
    <root>/bounding_box_test/    gallery: test identities + distractors (pid 0000) + junk (pid -1)
    <root>/query/                one image per (test identity, camera) for all but one of its cameras
    <root>/DATASET.json          parameters, statistics, content hash (written last = completion marker)
    <root>/README.md             the same in words
    <root>/sample_grid.png       rows: identities, columns: their images across cameras

File names follow Market-1501: ``PPPP_cCsS_FFFFFF_NN.jpg`` — person id (4 digits; ``-1`` for junk),
camera ``C`` (1-based, 1..``num_cameras``, default 6), sequence ``S``, frame ``FFFFFF``, box index ``NN``. Images are 128×64
(H×W) JPEGs.

What is rendered (numpy + OpenCV drawing, at 2× resolution then area-downsampled):

* **identities** (one RNG per identity): build (height, girth, leg length, head size), skin tone, hair
  (short, long, bald, cap), upper garment (colour, sleeves, pattern: plain, horizontal or vertical
  stripes, chest logo, two-tone), lower garment (trousers, shorts, skirt), shoes, bag (none, backpack,
  shoulder bag, hand bag). A fraction ``shared_colour_prob`` of the identities copies the clothing
  colours of another identity of its split and must differ from it in pattern, build or bag, so a colour
  histogram alone cannot tell them apart;
* **cameras** (one RNG per camera): a background scene (brick wall, street, park, shopfront, corridor,
  plaza), a colour cast and brightness, a typical viewing direction and distance;
* **per image** (one RNG per file, seeded by the dataset seed and the file name, so every image is
  reproducible on its own): facing (front/back/left/right, biased by the camera), walking phase, scale
  and position jitter, the scene's offset, partial occlusion, blur, noise, JPEG quality.

Persons are framed like detector boxes (about 3/4 of the crop height, feet at 7/8, as in the INRIA
windows OpenCV's HOG detector was trained on), and — as Market-1501's boxes came from a pedestrian
detector (DPM) — a person image keeps the first of up to ``detector_tries`` nuisance draws on which
OpenCV's HOG people detector fires (:func:`render_image`). Distractors are badly aligned boxes (shifted,
too large, too small) of people who appear in no split; junk images are background or body fragments.

Same parameters → byte-identical files (OpenCV's JPEG encoder with fixed parameters, no optimisation,
no progressive mode). :func:`ensure_rendered` renders a missing dataset, resumes a partial one (each image
is written atomically, ``DATASET.json`` last) and re-renders one that was rendered with other parameters
(only if this module made it).

Quickstart size (``conf/data/synthetic.yaml``): 100 train + 100 test identities, 6–12 images each,
6 cameras, 60 distractors, 40 junk images; see ``docs/dataset.md`` for the statistics, the render
time and the HOG people-detector pass rate.

The package, one module per concern: :mod:`.params` (``RenderParams``, ``ImageSpec``, seeding),
:mod:`.plan` (the file list), :mod:`.appearance` (palettes, identities, cameras), :mod:`.drawing`
(scene, pedestrian, occluders), :mod:`.render` (one image, HOG-gated), :mod:`.marker` (``DATASET.json``,
README, completeness), :mod:`.writer` (the multiprocess writer, ``ensure_rendered``) and :mod:`.hog_check`
(``hog_check.json``, written by ``make_dataset``).
"""

from __future__ import annotations

# ruff: noqa: F401  (re-exports: `reid_gan.data.synthetic` keeps the names it had as one module)

from reid_gan.data.synthetic import appearance, drawing, marker, params, plan, render, writer
from reid_gan.data.synthetic.appearance import (BAGS, CLOTHES, HAIR, HAIRS, LOWERS, PATTERNS, SCENES, SKIN, Camera,
                                                Identity, make_camera, make_identity)
from reid_gan.data.synthetic.drawing import PROPS, _draw_scene  # _draw_scene: read by tests
from reid_gan.data.synthetic.marker import GENERATOR, IN_PROGRESS, MARKER, is_rendered
from reid_gan.data.synthetic.params import RENDERER_VERSION, SPLITS, ImageSpec, RenderParams
from reid_gan.data.synthetic.plan import plan_dataset
from reid_gan.data.synthetic.render import render_image
from reid_gan.data.synthetic.writer import GRID_NAME, ensure_rendered, render_dataset, sample_grid_images

__all__ = [
    "RenderParams",
    "ImageSpec",
    "plan_dataset",
    "render_image",
    "render_dataset",
    "ensure_rendered",
    "is_rendered",
    "RENDERER_VERSION",
]
