"""Generation: a generated set of new persons (or variants of real persons) from a generator.

The library behind ``python -m reid_gan.generate`` (:mod:`.plan`, :mod:`.synthesis`, :mod:`.generator`,
:mod:`.writer`, :mod:`.figures`); the set's on-disk format is owned by :mod:`reid_gan.data.generated`.

::

    python -m reid_gan.generate generate.ckpt=PATH generate.out=DIR generate.persons=401 generate.images_per_person=51

**Persons.** Seed mode (default): person ``i`` has seed ``seed_start + i`` and pid ``pid_start + i`` (10000
upward, so real Market-1501/Duke ids, all < 10000, never collide); ``seed → z → w`` with truncation
``psi``. Real mode (``generate.latents=FILE``): the persons are real people whose ``w+`` codes the
``invert`` stage wrote; they keep their real pid. The latents file format::

    torch.save({'pids': LongTensor[N], 'ws': FloatTensor[N, num_ws, w_dim]}, FILE)   # read with weights_only=True

**Images of a person** (``images_per_person = K``): frame 0 is the base image (the person's own ``w``); the
other ``K - 1`` are split between the methods in proportion to their ``weight`` (largest remainder):
``style_mix`` (the person's ``w`` with a layer range taken from a donor seed's ``w``; ranges cycled),
``interpolate`` (``lerp`` in W, or ``slerp`` in Z for seed persons, toward a partner seed by an ``alpha`` in
``[min_alpha, max_alpha]`` — the maximum step keeps the identity) and ``transform`` (translation/rotation
of the input Fourier features through ``synthesis.input.transform``). Each person's donors, partners,
alphas and transforms come from its own RNG ``numpy.random.default_rng([plan_seed, mode, key])`` (key =
seed, or the real pid), so a person's images do not depend on how many persons there are.

**Output** (``generate.out``) — the generated-set format of the brief:

* ``bounding_box_train/PPPPP_c7s1_FFFFFF_00.jpg`` — camera 7 is reserved for generated images, frame =
  image index within the person (JPEG quality ``generate.quality``, or PNG with ``generate.format=png``);
  ``generate.height``/``width`` resize every image (``cv2.INTER_AREA`` when shrinking, bicubic when
  enlarging); by default images have the generator's size (128×64 for a 128×64 generator).
* ``manifest.jsonl`` — one line per image: ``file``, ``pid``, ``source`` (``"seed"`` or the real pid),
  ``seed`` (null for real persons), ``method``, ``params`` (``donor_seed`` + ``layers`` ``[start, end)`` +
  ``range``; ``partner_seed`` + ``alpha`` + ``space``; ``translate`` + ``angle``), ``psi``,
  ``generator_sha256``, plus ``frame`` and ``latent`` (the person's latents file).
* ``latents/<pid>.pt`` — per person: the exact ``ws [K, num_ws, w_dim]`` each image was synthesised from,
  the image transforms ``[K, 3, 3]``, and the synthesis call each image belonged to; :func:`remake`
  re-makes any image byte for byte from its manifest line.
* ``generate.json`` — the settings and their hash (the resume guard); ``style_mixing.png`` and
  ``interpolation.png`` — the figures (thesis figs. 4.7 and 4.8).

**Determinism.** The same generator and settings give byte-identical files on the same device type.
Every person is computed on its own, in synthesis calls that depend only on the person's plan (the
non-transformed images in chunks of ``synthesis_batch``; each transformed image alone, since the input
transform is one buffer shared by a batch), never on ``batch_persons`` (persons per write step).

**Streaming and resume.** Persons are written as they are made (memory does not grow with N). Every
file is written to a temporary name and renamed; a person's manifest lines are appended only after its
image files are in place. A restart with the same settings reconciles the folder (deletes temporary
files and images without a manifest line, drops lines without a file and a half-written last line) and
makes only what is missing; a folder made with other settings is refused with the differing keys named.
At the end the manifest is rewritten in canonical order (person, frame), so an interrupted-and-resumed
run ends byte-identical to an uninterrupted one.

Testing aid: the environment variable ``REID_GAN_GENERATE_THROTTLE_S`` makes the stage sleep that many
seconds after each person (used by the kill-and-resume test; it changes no output).
"""

from reid_gan.generation.generator import load_G, random_generator, resolve_ckpt
from reid_gan.generation.plan import METHODS, ImagePlan, Person, build_persons, method_counts, plan_person
from reid_gan.generation.synthesis import encode, person_latents, remake, remake_bytes, render, synthesis_calls
from reid_gan.generation.writer import THROTTLE_ENV, settings_of, write_set

__all__ = ["METHODS", "THROTTLE_ENV", "ImagePlan", "Person", "build_persons", "encode", "load_G", "method_counts",
           "person_latents", "plan_person", "random_generator", "remake", "remake_bytes", "render", "resolve_ckpt",
           "settings_of", "synthesis_calls", "write_set"]
