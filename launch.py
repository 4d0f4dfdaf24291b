"""The one entry point: flags -> config -> trainer, sampler or evaluator.

  python launch.py --experiment=dcgan_digits --workdir=/tmp/run --config.train.steps=2000
  python launch.py --experiment=dcgan_digits --workdir=/tmp/run --mode=sample --num_samples=64
  python launch.py --list
"""
import json
import os
import sys

from absl import app, flags, logging
from ml_collections import config_flags

import experiments

flags.DEFINE_string("experiment", "dcgan_digits", "Experiment name; --list shows them all.")
flags.DEFINE_string("workdir", None, "Run directory (default: runs/<experiment>).")
flags.DEFINE_enum("mode", "train", ["train", "sample", "eval"], "train (resumes automatically), sample or eval.")
flags.DEFINE_integer("num_samples", 64, "Samples to generate in --mode=sample.")
flags.DEFINE_integer("label", None, "--mode=sample: the class to generate (conditional variants, e.g. cgan).")
flags.DEFINE_integer("code", None, "--mode=sample: the categorical code to fix (InfoGAN).")
flags.DEFINE_float("truncation_psi", None, "--mode=sample: truncation toward the mean w (StyleGAN; 1 = none).")
flags.DEFINE_list("pictures", [], "--mode=sample: the variant's extra pictures to draw, e.g. "
                  "style_mixing,interpolation (StyleGAN); each is written as <name>.png.")
flags.DEFINE_enum("export", None, ["obj", "ply"], "--mode=sample, voxel samples: also a mesh per sample "
                  "(marching cubes) in <workdir>/meshes/.")
flags.DEFINE_string("input", None, "--mode=sample: a folder of images to translate (pix2pix, CycleGAN), read at "
                    "data.crop_size; CycleGAN's direction: --config.model.sample_direction=AtoB|BtoA. srgan: "
                    "images of any size to upscale 4x, written to <workdir>/upscaled/.")
flags.DEFINE_multi_string("caption", None, "--mode=sample, text-to-image variants (gan_int_cls): a caption to draw "
                          "a row of pictures for; repeatable.")
flags.DEFINE_string("captions", None, "--mode=sample, text-to-image variants: a file of captions, one a line.")
flags.DEFINE_string("embeddings", None, "--mode=sample, text-to-image variants: a .npy file of sentence embeddings "
                    "[N, model.embedding_dim], a row of pictures each (e.g. from the released encoder).")
flags.DEFINE_bool("list", False, "Print every experiment with its description and exit.")
flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize() (several processes, one per host).")
# SLURM and Cloud TPU set these in the environment, where jax.distributed.initialize() finds them; elsewhere
# (several processes on one machine, a cluster JAX does not detect) give all three.
flags.DEFINE_string("coordinator_address", None, "--distributed: host:port of process 0 (default: detected).")
flags.DEFINE_integer("num_processes", None, "--distributed: how many processes the run has (default: detected).")
flags.DEFINE_integer("process_id", None, "--distributed: this process's index, 0 to num_processes - 1 (default: detected).")
flags.DEFINE_string("compilation_cache", None, "Folder of JAX's persistent compilation cache, so a resumed, "
                    "sampled or evaluated run skips compiling its steps again (default: $JAX_COMPILATION_CACHE_DIR, else "
                    "$XDG_CACHE_HOME/gans/jax or ~/.cache/gans/jax); --compilation_cache= turns it off.")
flags.DEFINE_bool("library_logs", False, "Show the INFO logs of libraries (orbax, grain, ...), not just this project's.")
FLAGS = flags.FLAGS


def _fail(message: str) -> None:
  print(f"error: {message}", file=sys.stderr)
  sys.exit(2)


def _register_config_flag(argv) -> None:
  """Defines --config from the experiment's config, so --config.<field> overrides are type-checked."""
  FLAGS(argv, known_only=True)  # parses --experiment (and friends) without touching --config.*
  if FLAGS.list:
    for name in experiments.NAMES:
      print(f"{name:24s} {experiments.description(name)}")
    sys.exit(0)
  try:
    config = experiments.get_config(FLAGS.experiment)
  except experiments.UnknownExperimentError as error:
    _fail(str(error))
  try:  # defining the flag already applies the --config.* overrides in argv
    config_flags.DEFINE_config_dict("config", config, "The experiment's config; override any field.")
  except (AttributeError, KeyError) as error:
    _fail(f"unknown config field: {_one_line(error)} (given: "
          f"{' '.join(arg for arg in argv[1:] if arg.startswith('--config.'))})")
  FLAGS.unparse_flags()  # the full parse in app.run sees every flag, --config.* included


class _ProjectInfoOnly(logging.logging.Filter):
  """Keeps warnings from everyone and INFO lines from this project: orbax alone logs ~30 lines per checkpoint."""

  def filter(self, record) -> bool:
    return record.levelno >= logging.logging.WARNING or "/gans/" in record.pathname or record.pathname.endswith(
        "launch.py")


def main(argv) -> None:
  if len(argv) > 1:
    _fail(f"unexpected arguments {argv[1:]}; flags look like --config.train.steps=100")
  # Imported after flag parsing so --list and --help stay fast.
  from gans import evaluation, run, sampling, sharding, trainer
  from gans.checkpoint import CheckpointError
  from gans.data import DatasetNotFoundError

  if not FLAGS.library_logs:
    logging.get_absl_handler().addFilter(_ProjectInfoOnly())
  config = FLAGS.config
  workdir = FLAGS.workdir or os.path.join("runs", FLAGS.experiment)
  sharding.maybe_initialize_distributed(FLAGS.distributed, coordinator_address=FLAGS.coordinator_address,
                                       num_processes=FLAGS.num_processes, process_id=FLAGS.process_id)
  run.use_compilation_cache(run.default_compilation_cache() if FLAGS.compilation_cache is None
                            else FLAGS.compilation_cache)
  try:
    if FLAGS.mode == "train":
      trainer.train_and_evaluate(config, workdir)
    elif FLAGS.mode == "sample" and FLAGS.input and config.variant == "srgan":  # images of any size, one by one
      sampling.upscale_folder(config, workdir, FLAGS.input)
    elif FLAGS.mode == "sample":
      sampling.write_samples(config, workdir, FLAGS.num_samples, pictures=FLAGS.pictures, export=FLAGS.export,
                             **_conditioning(config))
    else:
      results = evaluation.evaluate_checkpoint(config, workdir)
      print(json.dumps(results))
  except (CheckpointError, run.ConditioningError, DatasetNotFoundError, trainer.Preempted, trainer.Diverged) as error:
    _fail(str(error))


def _conditioning(config) -> dict:
  """The sampling flags that were given, as the variant's conditioning keywords (--input=DIR: source images)."""
  given = {"label": FLAGS.label, "code": FLAGS.code, "truncation_psi": FLAGS.truncation_psi}
  conditioning = {name: value for name, value in given.items() if value is not None}
  texts = list(FLAGS.caption or [])
  if FLAGS.captions:
    if not os.path.isfile(FLAGS.captions):
      _fail(f"--captions={FLAGS.captions} is not a file; give a text file with one caption a line.")
    with open(FLAGS.captions) as f:
      texts += [line.strip() for line in f if line.strip()]
  if FLAGS.caption is not None or FLAGS.captions:
    from gans import sampling  # pylint: disable=import-outside-toplevel
    try:
      conditioning["caption"] = sampling.caption_ids(texts, config.data.caption_length)
    except ValueError as error:
      _fail(str(error))
  if FLAGS.embeddings:
    from gans import sampling  # pylint: disable=import-outside-toplevel
    if "caption" in conditioning:
      _fail("Give captions (--caption, --captions) or --embeddings, not both.")
    if "embedding_dim" not in config.model:
      _fail(f"--embeddings is for text-to-image variants (gan_int_cls); {FLAGS.experiment} takes none.")
    try:
      conditioning["embedding"] = sampling.embedding_rows(FLAGS.embeddings, config.model.embedding_dim)
    except ValueError as error:
      _fail(str(error))
  if FLAGS.input:
    from gans.data import image2image  # pylint: disable=import-outside-toplevel  (keeps --help fast)
    conditioning["source"] = image2image.input_images(FLAGS.input, config.data)
  return conditioning


def _one_line(error: Exception) -> str:
  """ml_collections nests its did-you-mean message in a repr; unwrap it into one readable line."""
  text = str(error)
  while text[:1] in "'\"" and text[-1:] == text[:1]:
    text = text[1:-1]
  return " ".join(text.replace("\\n", "\n").replace("\\'", "'").split())


def _parse_flags(argv):
  try:
    return FLAGS(argv)
  except flags.Error as error:
    _fail(str(error))


if __name__ == "__main__":
  _register_config_flag(sys.argv)
  app.run(main, flags_parser=_parse_flags)
