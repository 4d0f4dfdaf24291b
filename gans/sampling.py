"""Sampling from a checkpoint: `--mode=sample` writes samples.npz and a picture of them."""
import logging
import os

import jax
import numpy as np

from gans import checkpoint, data, report, run, voxel_views


def grid_picture(grid: np.ndarray) -> np.ndarray:
  """A variant's grid (images[rows, columns, H, W, C]) as one picture with the same rows and columns."""
  return report.image_grid(grid.reshape((-1,) + grid.shape[2:]), columns=grid.shape[1])


def _translation_inputs(variant, conditioning: dict, num_samples: int):
  """(conditioning, {"targets", "labels"} where known, count) for a variant that translates data: the given
  source images (--input), or the first num_samples held-out inputs with their targets and classes."""
  if "source" in conditioning:
    source = np.asarray(conditioning["source"])
    return conditioning, {}, len(source)
  examples = variant.held_out(num_samples)
  known = {plural: examples[name] for name, plural in (("target", "targets"), ("label", "labels")) if name in examples}
  return {**conditioning, "source": examples["source"]}, known, len(examples["source"])


def caption_ids(texts, length: int) -> np.ndarray:
  """Typed captions (--caption, --captions=FILE) -> int32[len(texts), length] character ids; a caption the
  encoder cannot read (empty, characters outside the alphabet, too long) raises captions.encode_caption's
  ValueError, which says what to do."""
  from gans.data import captions  # pylint: disable=import-outside-toplevel
  if not texts:
    raise ValueError("No captions given: --caption=\"a small red circle\" (repeatable) or --captions=FILE.")
  return np.stack([captions.encode_caption(text, length) for text in texts])


def embedding_rows(path: str, dimension: int) -> np.ndarray:
  """--embeddings=FILE.npy: f32[N, E] sentence embeddings, one row of pictures each (E = model.embedding_dim)."""
  if not path.endswith(".npy") or not os.path.isfile(path):
    raise ValueError(f"--embeddings={path} is not a .npy file; save an array [N, {dimension}] with numpy.save.")
  rows = np.load(path, allow_pickle=False)
  if rows.ndim != 2 or rows.shape[1] != dimension or not len(rows):
    raise ValueError(f"--embeddings={path} holds an array of shape {rows.shape}; expected [N, {dimension}] "
                     f"(N >= 1 sentence embeddings of model.embedding_dim = {dimension}).")
  return rows.astype(np.float32)


def released_embeddings(config, ids: np.ndarray) -> np.ndarray:
  """f32[C, E]: for typed captions (int32[C, L]) with model.text_encoder='precomputed', each caption's released
  embedding, found by matching it (case and whitespace ignored: captions.caption_key) with the captions of the
  dataset's caption files (data.split of data.path; a caption of several images takes its first image's row).

  The released embeddings come from Reed et al.'s char-CNN-RNN, a Torch7 model this project cannot run, so any
  other caption has no embedding: one ConditioningError says so and what to do instead."""
  from gans.data import captions  # pylint: disable=import-outside-toplevel
  texts = [captions.decode_caption(row) for row in np.asarray(ids)]
  source = data.make_source(config.data)
  table = source.caption_embeddings() if hasattr(source, "caption_embeddings") else {}
  unknown = [text for text in texts if captions.caption_key(text) not in table]
  if not unknown:
    return np.stack([table[captions.caption_key(text)] for text in texts])
  where = (f"the captions of data.split={config.data.split!r} in the dataset's caption files" if table else
           f"a dataset with released embeddings (data.source={config.data.source!r} gives none: set "
           f"data.embedding_file)")
  raise run.ConditioningError(
      f"model.text_encoder='precomputed' reads released sentence embeddings, and their encoder (Reed et al.'s "
      f"Torch7 char-CNN-RNN) cannot run here, so a typed caption is drawn only when it is one of {where} (case "
      f"and whitespace ignored). Not found: {', '.join(repr(t) for t in unknown[:3])}"
      f"{' ...' if len(unknown) > 3 else ''}. Type a caption from those files (text_c10/), pass embeddings with "
      f"--embeddings=FILE.npy ([N, {config.model.embedding_dim}]), or train with "
      f"--config.model.text_encoder=char_cnn_rnn, which encodes any caption.")


def _per_row(conditioning: dict) -> dict:
  """The conditioning given one row of pictures per entry: typed captions [C, L] and embeddings [C, E]."""
  rows = {name: np.asarray(conditioning[name]) for name in ("caption", "embedding")
          if name in conditioning and np.ndim(conditioning[name]) == 2}
  if len({len(value) for value in rows.values()}) > 1:
    counts = ", ".join(f"{name}: {len(value)}" for name, value in rows.items())
    raise run.ConditioningError(f"Captions and embeddings must give one row each for the same rows ({counts}).")
  return rows


def write_samples(config, workdir: str, num_samples: int, pictures=(), export: str | None = None,
                  **conditioning) -> str:
  """Writes <workdir>/samples.npz (array `samples`, (N, ...) in data space) and samples.png; returns the npz path.

  Audio samples ([N, T, C]) are also written as <workdir>/sample_wavs/sample_XXX.wav, and samples.png shows their
  spectrograms.

  `conditioning` (e.g. label=3 from --label=3) goes to the variant's sampler. A variant with its own grid
  (one row per class, ...) also gets grid.png. The same checkpoint, config.seed and conditioning give the
  same samples (the run's sample stream). Each of `pictures` (names in the variant's `pictures`, e.g.
  StyleGAN's style_mixing) is written as <name>.png with the same conditioning. `export` ("obj" or "ply",
  voxel samples only) also writes one marching-cubes mesh per sample in <workdir>/meshes/.

  Text-to-image variants (caption=int32[C, L], from --caption / --captions=FILE through `caption_ids`, or
  embedding=f32[C, E] from --embeddings=FILE.npy through `embedding_rows`): each of the C captions gets
  num_samples // C samples (at least one), drawn as one row of captions.png; samples.npz then also holds
  `caption` (the ids, one row per sample) and `caption_text`, or `embedding`. With model.text_encoder=
  'precomputed', typed captions take their released embeddings (`released_embeddings`: only the dataset's own
  captions have one; any other caption is refused, saying why).

  Variants that translate data (pix2pix, CycleGAN: GanVariant.held_out) translate `source` (--input=DIR) or,
  without it, the first num_samples held-out inputs; samples.npz then holds `samples`, `inputs` and, where
  known, `targets` and `labels`, and translations.png one row per input: input | output | target.
  """
  if export is not None and export not in voxel_views.FORMATS:
    raise ValueError(f"Unknown --export format {export!r}; valid: {', '.join(voxel_views.FORMATS)}.")
  setup = run.Setup(config)
  run.check_conditioning(setup.variant, conditioning)  # before reading a checkpoint, so a wrong flag fails fast
  unknown = sorted(set(pictures) - set(setup.variant.pictures))
  if unknown:
    raise run.ConditioningError(f"This variant draws no picture {', '.join(unknown)}; its pictures: "
                                f"{', '.join(sorted(setup.variant.pictures)) or 'none'}.")
  if ("caption" in conditioning and "embedding" not in conditioning
      and config.model.get("text_encoder") == "precomputed"):  # before the checkpoint: an unknown caption fails fast
    conditioning = {**conditioning, "embedding": released_embeddings(config, conditioning["caption"])}
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  known, caption_rows = {}, None
  rows = _per_row(conditioning)
  if rows:  # typed captions or given embeddings: a row of pictures each
    count = len(next(iter(rows.values())))
    per_caption = max(1, num_samples // count)
    conditioning = {**conditioning, **{name: np.repeat(value, per_caption, axis=0) for name, value in rows.items()}}
    num_samples, caption_rows = count * per_caption, count
  if setup.variant.held_out is not None:  # conditioning from data: translate the held-out inputs or --input
    conditioning, known, num_samples = _translation_inputs(setup.variant, conditioning, num_samples)
  samples = setup.generate(state, num_samples, **conditioning)
  if export is not None and samples.ndim != 5:
    raise ValueError(f"--export={export} writes meshes of voxel samples [N, D, H, W, 1]; these samples have "
                     f"shape {samples.shape}.")
  reference = np.asarray(data.mixture_modes(config.data.source)[0]) if samples.ndim == 2 else None
  sample_rate = config.data.get("sample_rate", 16_000)
  drawn = {"samples": report.to_picture(samples, reference, sample_rate)}
  grid = setup.grid(state)
  if grid is not None:
    drawn["grid"] = grid_picture(grid)
  if caption_rows is not None:
    drawn["captions"] = grid_picture(samples.reshape((caption_rows, -1) + samples.shape[1:]))
  for name in pictures:
    drawn[name] = grid_picture(setup.picture(state, setup.variant.pictures[name], **conditioning))
  if "source" in conditioning and conditioning["source"].shape[1:3] == samples.shape[1:3]:
    # translations: input | output | target, one row per input (super-resolution's grid.png shows its own)
    columns = [conditioning["source"], samples] + ([known["targets"]] if "targets" in known else [])
    drawn["translations"] = grid_picture(np.stack(columns, axis=1))
    arrays = {"inputs": conditioning["source"], **known}
  else:
    arrays = conditioning
  if caption_rows is not None and "caption" in rows:
    from gans.data import captions  # pylint: disable=import-outside-toplevel
    arrays = {**arrays, "caption_text": np.array([captions.decode_caption(ids) for ids in conditioning["caption"]])}
  path = os.path.join(workdir, "samples.npz")
  if jax.process_index() == 0:  # in a multi-process run every process draws (on the global mesh), one writes
    np.savez(path, samples=samples, step=step, **arrays)
    for name, picture in drawn.items():
      report.save_png(os.path.join(workdir, f"{name}.png"), picture)
    if samples.ndim == 3:  # audio [N, T, C]: every sample as a WAV file too
      report.write_wavs(os.path.join(workdir, "sample_wavs"), samples, sample_rate)
    logging.info("Wrote %d samples of step %d to %s", num_samples, step, path)
    if export is not None:
      paths = voxel_views.export_meshes(samples, os.path.join(workdir, "meshes"), export)
      logging.info("Wrote %d %s meshes to %s", len(paths), export, os.path.dirname(paths[0]))
  return path


def upscale_folder(config, workdir: str, directory: str) -> list[str]:
  """Super-resolution (`--mode=sample --input=DIR` of variant srgan): upscales every image of `directory`, each at
  its own size (G is fully convolutional), with the latest checkpoint; writes <workdir>/upscaled/<name>.png and
  returns their paths."""
  from gans.data import super_resolution  # pylint: disable=import-outside-toplevel
  setup = run.Setup(config)
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  out_dir = os.path.join(workdir, "upscaled")
  paths = []
  for name, lr in super_resolution.input_images(directory):
    sr = setup.generate(state, 1, source=lr[None])
    paths.append(os.path.join(out_dir, os.path.splitext(name)[0] + ".png"))
    if jax.process_index() == 0:
      os.makedirs(out_dir, exist_ok=True)
      report.save_png(paths[-1], np.round((np.clip(sr[0], -1.0, 1.0) + 1.0) * 127.5).astype(np.uint8))
  logging.info("Upscaled %d images of %s with the checkpoint of step %d into %s", len(paths), directory, step, out_dir)
  return paths
