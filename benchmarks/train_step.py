"""Throughput of an experiment's training step, and the same architecture in PyTorch when it is installed.

  python benchmarks/train_step.py --experiment=dcgan_celeba64 --batch_size=64

Prints one JSON line: images_per_sec and compile_sec of the project's jitted step (the experiment's own
architecture and batch size on synthetic data, the main phases of the final stage), plus torch_images_per_sec
and ratio (ours / PyTorch's) when PyTorch is importable. The two are timed in alternating blocks in one
process and the medians compared, because this kind of machine is shared and noisy: only the ratio of
interleaved measurements means anything. Images per second counts the batch of one step (one D update and
one G update on batch_size real and batch_size generated images; clips for audio, with --n_critic=1 by
default for the experiments that have config.train.n_critic).

  python benchmarks/train_step.py --experiment=wavegan_sc09 --blocks=3

GAN-INT-CLS (gan_int_cls_shapes, gan_int_cls_cub) is timed on precomputed sentence embeddings (a random batch
of model.embedding_dim), the project's own text encoder left out as in the PyTorch reference: it is frozen after
pretraining, so the GAN step only adds its forward pass (gan_int_cls_shapes trains it first, in the same run).

  python benchmarks/train_step.py --experiment=dcgan_celeba64 --batch_size=64 --dtypes=float32,bfloat16

times the step once per computation dtype (config.model.dtype) in the same alternating blocks: the first
dtype's figures are images_per_sec and compile_sec (and the PyTorch ratio), each further one's
<dtype>_images_per_sec, <dtype>_compile_sec and <dtype>_ratio (its throughput over the first dtype's).

  python benchmarks/train_step.py --experiment=dcgan_digits --augment=color,translation,cutout
  python benchmarks/train_step.py --experiment=dcgan_digits --augment=ada --ada_p=0.5

With --augment, the same step with that config.augment.policy (ADA at the fixed strength --ada_p) is timed
in the same alternating blocks, adding augmented_images_per_sec and augment_ratio (augmented / plain).
With --torch_augment_code=DIR as well (a checkout of NVlabs/stylegan2-ada-pytorch for ada, of
mit-han-lab/data-efficient-gans for DiffAugment; benchmarks/torch_augment.py), the PyTorch step is also timed
with the official augmentation code on every batch its D sees: torch_augmented_images_per_sec,
torch_augment_ratio and augmented_ratio (ours augmented / PyTorch augmented). DCGAN and StyleGAN2 only.

  python benchmarks/train_step.py --experiment=gan3d_modelnet10 --side=separate --process_rounds=2

runs each framework in its own process, for steps too big for both in one (the 3D-GAN's 64^3 step at batch
100): --side=jax or --side=torch times one side alone (blocks as above) and prints its block times and
peak_rss_gib (the process's peak resident memory); --side=separate is the driver that runs a jax process
and then a torch process, --process_rounds times alternating, and prints both sides' median block
(images_per_sec, torch_images_per_sec), the ratio and each side's peak_rss_gib. The processes inherit the
environment (set glibc's allocator variables for PyTorch there as for one process).
"""
import json
import os
import resource
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax
from absl import app, flags

import experiments
from benchmarks.timing import calls_for, seconds_per_step
from gans import run, steps
from gans.variants import common

flags.DEFINE_string("experiment", "dcgan_celeba64", "Experiment whose step is timed.")
flags.DEFINE_integer("batch_size", 0, "Global batch; 0 = the experiment's.")
flags.DEFINE_integer("resolution", 0, "Image resolution; 0 = the experiment's (e.g. 64 for StyleGAN2's 64x64 step).")
flags.DEFINE_integer("blocks", 7, "Alternating timing blocks per framework; the median block counts.")
flags.DEFINE_float("block_seconds", 3.0, "Approximate length of one timing block.")
flags.DEFINE_string("augment", "", "Also time the step with this config.augment.policy (DiffAugment list or ada).")
flags.DEFINE_float("ada_p", 0.5, "The fixed ADA strength p for --augment=ada (at p = 0 ADA skips all work).")
flags.DEFINE_string("torch_augment_code", "", "With --augment: a checkout of the official augmentation code "
                    "(stylegan2-ada-pytorch / data-efficient-gans) for the PyTorch step's augmentation.")
flags.DEFINE_bool("torch", True, "Also time the PyTorch reference when torch is importable.")
flags.DEFINE_list("dtypes", ["float32"], "Computation dtypes (config.model.dtype) timed side by side, e.g. "
                  "float32,bfloat16; the first is compared with PyTorch and the others with the first.")
flags.DEFINE_integer("step", -1, "Generator step whose main phases are timed; -1 = the last step of training "
                     "(StackGAN's Stage-II; its Stage-I: a step before pretrain_steps + stage1_steps, e.g. 1000).")
flags.DEFINE_integer("n_critic", 1, "D updates per step (config.train.n_critic) for experiments that have it "
                     "(WaveGAN, SpecGAN: 5); 1 = one D and one G update, the PyTorch references' step.")
flags.DEFINE_enum("side", "both", ["both", "jax", "torch", "separate"],
                  "both: the two frameworks interleaved in one process; jax / torch: one side alone in this "
                  "process; separate: each side in its own process (--process_rounds times, alternating).")
flags.DEFINE_integer("process_rounds", 1, "With --side=separate: jax then torch processes, this many times.")
FLAGS = flags.FLAGS
IMAGE_PAIR_VARIANTS = ("pix2pix", "cyclegan")


def jax_step(config):
  """(run one step, compile seconds) for the main phases of the experiment's final stage on a synthetic batch."""
  setup = run.Setup(config)
  # The phases of the last step of training (the final resolution when growing) that run on every step:
  # the main phases, without lazy regularisers.
  timed_step = config.train.steps - 1 if FLAGS.step < 0 else FLAGS.step
  last_step_phases = steps.due_phases(setup.variant, timed_step)
  main_phases = tuple(phase.name for phase in setup.variant.phases
                      if phase.name in last_step_phases and phase.every == 1)
  train_step = setup.train_step(main_phases)  # the trainer's own jitted step
  shape = (steps.batches_per_step(setup.variant, main_phases), config.train.batch_size) + common.data_shape(config.data)
  name = {3: "x", 4: "audio", 5: "image", 6: "voxels"}[len(shape)]
  batches = {name: jax.random.uniform(jax.random.key(0), shape, minval=0 if name == "voxels" else -1, maxval=1),
             # class labels, read by conditional variants and ignored by the others
             "label": jax.random.randint(jax.random.key(2), shape[:2], 0, config.model.get("num_classes", 10))}
  if "embedding_dim" in config.model:  # text-to-image: a caption's character ids and its sentence embedding
    batches["caption"] = jax.random.randint(jax.random.key(5), shape[:2] + (config.data.caption_length,), 1, 40)
    batches["embedding"] = jax.random.normal(jax.random.key(6), shape[:2] + (config.model.embedding_dim,))
  if config.variant in IMAGE_PAIR_VARIANTS:  # pix2pix / CycleGAN read input and output images at load size
    batches["a"], batches["b"] = (jax.random.uniform(jax.random.key(k), shape, minval=-1, maxval=1) for k in (3, 4))
  key = jax.random.key(1)
  start = time.perf_counter()
  compiled = train_step.lower(setup.initial_state, batches, key).compile()
  compile_sec = time.perf_counter() - start
  state = [setup.initial_state]

  def step():
    state[0], metrics = compiled(state[0], batches, key)
    jax.block_until_ready(metrics)

  step.compiled = compiled  # benchmarks/profile_step.py reads its HLO
  return step, compile_sec


def with_dtype(config, dtype: str):
  """The config computing in `dtype`; refused by name for an experiment without config.model.dtype."""
  if "dtype" not in config.model:
    if dtype == "float32":
      return config  # float32 is every experiment's computation dtype
    raise ValueError(f"Experiment {FLAGS.experiment} has no config.model.dtype, so it computes in float32 only; "
                     f"drop --dtypes={dtype}.")
  config = config.copy_and_resolve_references()
  config.model.dtype = dtype
  return config


def torch_step(config, augment=None):
  """The same architecture's PyTorch step, or None when there is no reference for this variant or no torch.

  `augment` (DCGAN and StyleGAN2): a torch function applied to every batch D sees.
  """
  try:
    import torch  # noqa: F401
  except ImportError:
    return None
  if augment is not None and config.variant not in ("dcgan", "stylegan2"):
    raise ValueError(f"--torch_augment_code: the PyTorch step of {config.variant} takes no augmentation "
                     "(DCGAN and StyleGAN2 do).")
  if config.variant == "dcgan":
    from benchmarks import torch_dcgan
    return torch_dcgan.make_torch_dcgan_step(
        resolution=config.data.resolution, batch_size=config.train.batch_size, latent_dim=config.model.z_dim,
        base_channels=config.model.g_channels, image_channels=config.data.channels, augment=augment)
  if config.variant == "gan":
    from benchmarks import torch_mlp_gan
    return torch_mlp_gan.make_torch_mlp_gan_step(config)
  if config.variant == "gan3d":
    from benchmarks import torch_gan3d
    return torch_gan3d.make_torch_gan3d_step(config)
  if config.variant == "stylegan2":
    from benchmarks import torch_stylegan2
    return torch_stylegan2.make_torch_stylegan2_step(config, augment)
  if config.variant == "wavegan":
    from benchmarks import torch_wavegan
    return torch_wavegan.make_torch_wavegan_step(config)
  if config.variant == "specgan":
    from benchmarks import torch_specgan
    return torch_specgan.make_torch_specgan_step(config)
  if config.variant == "pix2pix":
    from benchmarks import torch_pix2pix
    return torch_pix2pix.make_torch_pix2pix_step(config)
  if config.variant == "cyclegan":
    from benchmarks import torch_cyclegan
    return torch_cyclegan.make_torch_cyclegan_step(config)
  if config.variant == "gan_int_cls":
    from benchmarks import torch_gan_int_cls
    return torch_gan_int_cls.make_torch_gan_int_cls_step(config)
  if config.variant == "stackgan":
    from benchmarks import torch_stackgan
    timed_step = config.train.steps - 1 if FLAGS.step < 0 else FLAGS.step
    stage = 1 if timed_step < config.model.pretrain_steps + config.model.stage1_steps else 2
    return torch_stackgan.make_torch_stackgan_step(config, stage)
  if config.variant == "srgan" and config.model.objective == "srgan":
    from benchmarks import torch_srgan
    return torch_srgan.make_torch_srgan_step(config)
  return None


def augmented_config(config, policy: str, ada_p: float):
  config = config.copy_and_resolve_references()
  config.augment.policy = policy
  config.augment.ada_p = ada_p
  config.augment.ada_target = 0.0  # a fixed p, so every block does the same work
  return config


def benchmark(config, blocks: int, block_seconds: float, with_torch: bool, dtypes=("float32",),
              augment: str = "", ada_p: float = 0.5, torch_augment_code: str = "") -> dict:
  steppers, compile_secs = {}, {}
  for dtype in dtypes:  # "jax" is the first dtype's step, as without --dtypes
    name = "jax" if dtype == dtypes[0] else dtype
    steppers[name], compile_secs[name] = jax_step(with_dtype(config, dtype))
  if augment:
    steppers["augmented"] = jax_step(augmented_config(with_dtype(config, dtypes[0]), augment, ada_p))[0]
  reference = torch_step(config) if with_torch else None
  if reference is not None:
    steppers["torch"] = reference
  if reference is not None and augment and torch_augment_code:
    from benchmarks import torch_augment
    steppers["torch_augmented"] = torch_step(config, torch_augment.official_augment(
        augment, ada_p, config.augment.ada_pipe, torch_augment_code))
  calls = {name: calls_for(step, block_seconds) for name, step in steppers.items()}
  times = {name: [] for name in steppers}
  for _ in range(blocks):
    for name, step in steppers.items():
      times[name].append(seconds_per_step(step, block_seconds, calls[name]))
  batch = config.train.batch_size
  result = {"experiment": FLAGS.experiment, "batch_size": batch, "devices": jax.device_count(),
            "images_per_sec": batch / statistics.median(times["jax"]), "compile_sec": compile_secs["jax"]}
  if len(dtypes) > 1:
    result["dtype"] = dtypes[0]
  for dtype in dtypes[1:]:
    result[f"{dtype}_images_per_sec"] = batch / statistics.median(times[dtype])
    result[f"{dtype}_compile_sec"] = compile_secs[dtype]
    result[f"{dtype}_ratio"] = result[f"{dtype}_images_per_sec"] / result["images_per_sec"]
  if "augmented" in times:
    result["augment"] = augment
    result["augmented_images_per_sec"] = batch / statistics.median(times["augmented"])
    result["augment_ratio"] = result["augmented_images_per_sec"] / result["images_per_sec"]
  if "torch" in times:
    import torch
    result["torch_images_per_sec"] = batch / statistics.median(times["torch"])
    result["ratio"] = result["images_per_sec"] / result["torch_images_per_sec"]
    result["torch_threads"] = torch.get_num_threads()
  if "torch_augmented" in times:
    result["torch_augmented_images_per_sec"] = batch / statistics.median(times["torch_augmented"])
    result["torch_augment_ratio"] = result["torch_augmented_images_per_sec"] / result["torch_images_per_sec"]
    result["augmented_ratio"] = result["augmented_images_per_sec"] / result["torch_augmented_images_per_sec"]
  return result


def peak_rss_gib() -> float:
  """This process's peak resident memory (Linux reports ru_maxrss in KiB)."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20


def one_side(config, side: str, blocks: int, block_seconds: float) -> dict:
  """Block times (seconds per step) of one framework's step alone in this process, and its peak memory."""
  if side == "jax":
    step, compile_sec = jax_step(config)
  else:
    step, compile_sec = torch_step(config), None
    if step is None:
      raise ValueError(f"--side=torch: no PyTorch reference for variant {config.variant!r}, or torch is not "
                       "installed.")
  calls = calls_for(step, block_seconds)
  times = [seconds_per_step(step, block_seconds, calls) for _ in range(blocks)]
  return {"side": side, "block_seconds_per_step": times, "compile_sec": compile_sec, "peak_rss_gib": peak_rss_gib()}


def separate_processes(argv, batch_size: int, process_rounds: int) -> dict:
  """Runs this script with --side=jax and then --side=torch, `process_rounds` times, and compares the medians
  of all their blocks."""
  passed = [arg for arg in argv[1:] if not arg.startswith(("--side=", "--process_rounds="))]
  times, peaks, compile_secs = {"jax": [], "torch": []}, {"jax": [], "torch": []}, []
  for _ in range(process_rounds):
    for side in ("jax", "torch"):
      output = subprocess.run([sys.executable, os.path.abspath(__file__), f"--side={side}"] + passed,
                              check=True, capture_output=True, text=True).stdout
      result = json.loads(output.strip().splitlines()[-1])
      times[side] += result["block_seconds_per_step"]
      peaks[side].append(result["peak_rss_gib"])
      if side == "jax":
        compile_secs.append(result["compile_sec"])
  images_per_sec = {side: batch_size / statistics.median(t) for side, t in times.items()}
  return {"experiment": FLAGS.experiment, "batch_size": batch_size, "side": "separate",
          "process_rounds": process_rounds, "images_per_sec": images_per_sec["jax"],
          "compile_sec": statistics.median(compile_secs), "torch_images_per_sec": images_per_sec["torch"],
          "ratio": images_per_sec["jax"] / images_per_sec["torch"], "peak_rss_gib": max(peaks["jax"]),
          "torch_peak_rss_gib": max(peaks["torch"])}


def main(argv) -> None:
  del argv
  config = experiments.get_config(FLAGS.experiment)
  if FLAGS.batch_size:
    config.train.batch_size = FLAGS.batch_size
  if FLAGS.resolution:
    config.data.resolution = FLAGS.resolution
  if "n_critic" in config.train:
    config.train.n_critic = FLAGS.n_critic
  if "moments_clips" in config.model:  # SpecGAN on synthetic clips: unit spectrogram moments, no data read
    config.model.moments_clips = 0
  if config.variant == "gan_int_cls":  # the GAN step on precomputed sentence embeddings, as the PyTorch reference
    config.model.text_encoder = "precomputed"
  if FLAGS.side == "separate":
    print(json.dumps(separate_processes(sys.argv, config.train.batch_size, FLAGS.process_rounds)))
    return
  if FLAGS.side in ("jax", "torch"):
    result = one_side(config, FLAGS.side, FLAGS.blocks, FLAGS.block_seconds)
    print(json.dumps({"experiment": FLAGS.experiment, "batch_size": config.train.batch_size, **result}))
    return
  print(json.dumps(benchmark(config, FLAGS.blocks, FLAGS.block_seconds, FLAGS.torch, tuple(FLAGS.dtypes),
                            FLAGS.augment, FLAGS.ada_p, FLAGS.torch_augment_code)))


if __name__ == "__main__":
  app.run(main)
