"""A small domain classifier trained by the project: image metrics that need no downloaded weights.

For a labelled grayscale dataset (scikit-learn digits, Fashion-MNIST, MNIST) a
three-layer CNN is trained once, deterministically, and cached. It gives:

  classifier FID   the Fréchet distance (frechet.py) between Gaussians fitted to
                   its 128-d penultimate features of real and generated images
  class coverage   the fraction of the classes that at least one generated
                   sample is predicted as, and class_kl = KL(predicted-class
                   histogram || uniform): 0 when balanced, log(K) when collapsed
  stacked modes    on images whose 3 channels are 3 independent grayscale
                   images (Stacked MNIST, Metz et al. 2017, as in VEEGAN and
                   PacGAN), each channel is classified; a mode is the triple of
                   classes, so there are K^3 (1000 for digits)

Classifier numbers compare runs evaluated with the same classifier (same
dataset, same RECIPE); they are not Inception FIDs and not comparable to
published ones.

    python -m gans.metrics.classifier --source=digits
    python -m gans.metrics.classifier --source=idx --path=/usr/share/datasets/fashion-mnist

trains (or finds in --cache_dir) the classifier of that data and prints its
held-out accuracy and file as one JSON line; evaluation does the same on first use.
"""
import hashlib
import json
import logging
import os
import sys
import time

import flax.linen as nn
import flax.traverse_util
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags

from gans import data
from gans.data.config import field
from gans.metrics import reference

RESOLUTION = 32  # input side; other sizes are resized to it inside the jitted forward
FEATURE_DIM = 128  # penultimate width: the classifier-FID feature dimension
WIDTHS = (16, 32, 64)  # conv channels, each conv halving the side: 32 -> 16 -> 8 -> 4
# Training length: at least MIN_STEPS batches (small sets such as the 1437 digits need ~25 passes; their
# training loss is ~0.002 by then) and at least EPOCHS passes (Fashion-MNIST: 938 steps).
MIN_STEPS = 300
EPOCHS = 2
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
SEED = 0
# Part of the cache key: change it whenever anything above or the network changes.
RECIPE = (f"classifier-v1/numpy-lecun-init/conv{WIDTHS}s2-dense{FEATURE_DIM}/adam{LEARNING_RATE}/b{BATCH_SIZE}/"
          f"max({MIN_STEPS}steps,{EPOCHS}epochs)/seed{SEED}")
# Sources with a held-out "test" split; the others hold out every HOLDOUT_EVERY-th element.
SPLIT_SOURCES = ("idx", "tfds")
HOLDOUT_EVERY = 5
# ITU-R 601 luma, what PIL's convert("L") uses: RGB samples are judged as the grayscale images a source makes.
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)


class Classifier(nn.Module):
  """32x32x1 images in [-1, 1] -> {"features": f32[N, 128], "logits": f32[N, num_classes]}."""
  num_classes: int = 10  # output width; taken from the training labels

  @nn.compact
  def __call__(self, images_NHWC):
    x = images_NHWC
    for width in WIDTHS:
      x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(x))
    features = nn.relu(nn.Dense(FEATURE_DIM)(x.reshape(x.shape[0], -1)))
    return {"features": features, "logits": nn.Dense(self.num_classes)(features)}


def to_input(images_NHWC):
  """Data-space images of any size, 1 or 3 channels -> the classifier's RESOLUTION^2 grayscale input."""
  images = jnp.asarray(images_NHWC, jnp.float32)
  if images.shape[-1] == 3:
    images = jnp.tensordot(images, jnp.asarray(_LUMA), axes=([-1], [0]))[..., None]
  if images.shape[1:3] != (RESOLUTION, RESOLUTION):
    images = jax.image.resize(images, (images.shape[0], RESOLUTION, RESOLUTION, 1), "linear", antialias=True)
  return images


def num_classes_of(variables) -> int:
  return variables["params"]["Dense_1"]["bias"].shape[0]


def outputs(variables, images_NHWC) -> dict:
  """Pure and jittable: {"features", "logits"} of data-space images (see to_input)."""
  return Classifier(num_classes_of(variables)).apply(variables, to_input(images_NHWC))


def stacked_outputs(variables, images_NHWC) -> dict:
  """{"logits": f32[N, C, K]}: every channel of C-channel images classified as its own grayscale image."""
  n, h, w, c = images_NHWC.shape
  channels = jnp.moveaxis(jnp.asarray(images_NHWC), -1, 1).reshape(n * c, h, w, 1)
  return {"logits": outputs(variables, channels)["logits"].reshape(n, c, -1)}


# ----------------------------------------------------------------------------- metrics

def kl_to_uniform(counts: np.ndarray) -> float:
  """KL(counts / total || uniform over len(counts) bins), in nats."""
  p = counts[counts > 0] / counts.sum()
  return float(np.sum(p * np.log(p * len(counts))))


def class_coverage(logits_NK: np.ndarray) -> dict:
  """{"class_coverage": fraction of classes predicted at least once, "class_kl": KL(histogram || uniform)}."""
  num_classes = logits_NK.shape[1]
  counts = np.bincount(np.argmax(logits_NK, axis=1), minlength=num_classes)
  return {"class_coverage": float(np.count_nonzero(counts) / num_classes), "class_kl": kl_to_uniform(counts)}


def stacked_modes(logits_NCK: np.ndarray) -> dict:
  """{"stacked_modes": distinct class tuples predicted, "stacked_kl": KL(tuple histogram || uniform over K^C)}."""
  _, channels, num_classes = logits_NCK.shape
  classes = np.argmax(logits_NCK, axis=2)
  modes = np.ravel_multi_index(tuple(classes.T), (num_classes,) * channels)
  counts = np.bincount(modes, minlength=num_classes**channels)
  return {"stacked_modes": int(np.count_nonzero(counts)), "stacked_kl": kl_to_uniform(counts)}


# ----------------------------------------------------------------------------- data

def labelled_config(data_config, split: str) -> ml_collections.ConfigDict:
  """The experiment's data at the classifier's resolution, grayscale, in `split`."""
  config = ml_collections.ConfigDict(data_config.to_dict())
  config.resolution, config.channels, config.split = RESOLUTION, 1, split
  return config


def read_labelled(data_config) -> tuple[np.ndarray, np.ndarray]:
  """(images f32[N, R, R, 1], labels int32[N]) of a whole source; unreadable elements are skipped."""
  source = data.make_source(data_config)
  elements = [element for element in (source[i] for i in range(len(source))) if element is not None]
  if not elements or "label" not in elements[0]:
    raise ValueError(f"Classifier metrics need class labels; data source {field(data_config, 'source')!r} "
                     f"({field(data_config, 'path') or field(data_config, 'name')}) has none. Use the Inception "
                     "metrics (fid, kid, ...) for it.")
  images = np.stack([element["image"] for element in elements]).astype(np.float32)
  return images, np.array([element["label"] for element in elements], np.int32)


def train_and_heldout(data_config):
  """((train images, labels), (held-out images, labels)): the "test" split where the source has one."""
  if field(data_config, "source") in SPLIT_SOURCES:
    return (read_labelled(labelled_config(data_config, "train")),
            read_labelled(labelled_config(data_config, "test")))
  images, labels = read_labelled(labelled_config(data_config, field(data_config, "split")))
  heldout = np.arange(len(images)) % HOLDOUT_EVERY == 0
  return (images[~heldout], labels[~heldout]), (images[heldout], labels[heldout])


# ----------------------------------------------------------------------------- training

def _batch_indices(num_examples: int, steps: int, batch_size: int, seed: int) -> np.ndarray:
  """int[steps, batch_size]: consecutive shuffled epochs, cut into batches."""
  rng = np.random.default_rng(seed)
  epochs = -(-steps * batch_size // num_examples)
  order = np.concatenate([rng.permutation(num_examples) for _ in range(epochs)])
  return order[:steps * batch_size].reshape(steps, batch_size)


def training_steps(num_examples: int) -> int:
  return max(MIN_STEPS, -(-EPOCHS * num_examples // BATCH_SIZE))


def numpy_init(model: Classifier, image_shape: tuple, seed: int) -> dict:
  """Parameters drawn with numpy: LeCun-normal kernels (Flax's default scale), zero biases.

  model.init would compile a whole XLA program for a one-off draw (9 s on a loaded 2-core CPU); numpy is
  instant and just as deterministic.
  """
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1,) + tuple(image_shape)))["params"]
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    if path[-1].key == "bias":
      return np.zeros(leaf.shape, np.float32)
    fan_in = int(np.prod(leaf.shape[:-1]))
    return (rng.standard_normal(leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def fit(loss_fn, params: dict, inputs: np.ndarray, labels: np.ndarray, steps: int, batch_size: int, seed: int,
        description: str, learning_rate: float = LEARNING_RATE, reports: int = 4) -> dict:
  """Params after `steps` Adam steps on loss_fn(params, inputs, labels) over shuffled batches: the training loop
  of the project's classifiers (this one, the spoken-digit and the caption-attribute classifiers).

  A pure function of its arguments. It runs on one device, so the result (and the cache entry made of it) does
  not depend on how many devices the machine has. `reports` progress lines are logged, named by `description`.
  """
  device = jax.local_devices()[0]  # in a multi-process run, a device this process can use
  optimizer = optax.adam(learning_rate)
  # Committed to the device like the step's outputs, so the step compiles once, not again at step 2.
  params = jax.device_put(params, device)
  opt_state = jax.device_put(optimizer.init(params), device)

  @jax.jit
  def step(params, opt_state, inputs, labels):
    loss, grads = jax.value_and_grad(loss_fn)(params, inputs, labels)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(params, updates), opt_state, loss

  start = time.monotonic()
  for index, batch in enumerate(_batch_indices(len(inputs), steps, batch_size, seed)):
    params, opt_state, loss = step(params, opt_state, jax.device_put(inputs[batch], device),
                                   jax.device_put(labels[batch], device))
    if (index + 1) % max(1, steps // reports) == 0:
      logging.info("%s: step %d/%d, loss %.4f, %.1f s", description, index + 1, steps, float(loss),
                   time.monotonic() - start)
  return jax.device_get(params)


def train(images_NHWC: np.ndarray, labels_N: np.ndarray, num_classes: int, steps: int | None = None,
          batch_size: int = BATCH_SIZE, seed: int = SEED) -> dict:
  """Variables of a Classifier fitted by Adam on softmax cross-entropy; a pure function of its inputs."""
  model = Classifier(num_classes)

  def loss_fn(params, images, labels):
    logits = model.apply({"params": params}, to_input(images))["logits"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

  params = fit(loss_fn, numpy_init(model, images_NHWC.shape[1:], seed), images_NHWC, labels_N,
               steps or training_steps(len(images_NHWC)), batch_size, seed, "Classifier training")
  return {"params": params}


_jitted_outputs = jax.jit(outputs)
_jitted_stacked_outputs = jax.jit(stacked_outputs)


def batched_outputs(forward, variables, images_NHWC: np.ndarray, batch_size: int) -> dict:
  """forward(variables, images) over many images in batches on one device, as host arrays."""
  # Every call sees a full batch (the last one zero-padded), so each forward compiles once.
  batch_size = min(batch_size, len(images_NHWC))
  parts = []
  for start in range(0, len(images_NHWC), batch_size):
    batch = images_NHWC[start:start + batch_size]
    padded = np.concatenate([batch, np.zeros((batch_size - len(batch),) + batch.shape[1:], batch.dtype)])
    parts.append({name: value[:len(batch)] for name, value in jax.device_get(forward(variables, padded)).items()})
  return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def predict(variables, images_NHWC: np.ndarray, batch_size: int = 500) -> dict:
  """outputs() over many images in batches on one device, as host arrays (checks; evaluation shards)."""
  return batched_outputs(_jitted_outputs, variables, images_NHWC, batch_size)


def predict_stacked(variables, images_NHWC: np.ndarray, batch_size: int = 500) -> dict:
  """stacked_outputs() over many images in batches on one device, as host arrays."""
  return batched_outputs(_jitted_stacked_outputs, variables, images_NHWC, batch_size)


def accuracy(variables, images_NHWC: np.ndarray, labels_N: np.ndarray) -> float:
  return float(np.mean(np.argmax(predict(variables, images_NHWC)["logits"], axis=1) == labels_N))


# ----------------------------------------------------------------------------- files and cache

def dataset_key(data_config) -> str:
  """What identifies a labelled dataset, whatever resolution or channel count the experiment trains at."""
  names = ("source", "path", "name", "center_crop", "image_key", "label_key")
  parts = [f"{name}={field(data_config, name)!r}" for name in names]
  return "\n".join(parts + [f"stamp={reference.path_stamp(field(data_config, 'path'))}"])


def classifier_file(data_config, cache_dir: str) -> str:
  key = hashlib.sha256(f"{RECIPE}\n{dataset_key(data_config)}".encode()).hexdigest()
  return os.path.join(cache_dir, f"classifier_{key[:32]}.npz")


def write_archive(path: str, variables: dict, **values) -> None:
  """A trained classifier's variables (under "variables/...") and named values, as one .npz written atomically.

  Shared by this module's, the spoken-digit and the caption-attribute classifiers' caches."""
  flat = flax.traverse_util.flatten_dict(jax.device_get(variables), sep="/")
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  temporary = f"{path}.{os.getpid()}.tmp"
  with open(temporary, "wb") as f:
    np.savez(f, **{f"variables/{k}": np.asarray(v) for k, v in flat.items()}, **values)
  os.replace(temporary, path)  # a concurrent reader never sees half a file


def read_archive(path: str) -> tuple[dict, dict]:
  """(variables, {name: array}) of a file written by `write_archive`."""
  with np.load(path) as archive:
    flat = {k[len("variables/"):]: archive[k] for k in archive.files if k.startswith("variables/")}
    values = {k: archive[k] for k in archive.files if not k.startswith("variables/")}
  return flax.traverse_util.unflatten_dict(flat, sep="/"), values


def save(path: str, variables: dict, heldout_accuracy: float) -> None:
  write_archive(path, variables, heldout_accuracy=np.float64(heldout_accuracy), recipe=np.str_(RECIPE))


def load(path: str) -> tuple[dict, float]:
  """(variables, held-out accuracy) of a saved classifier."""
  variables, values = read_archive(path)
  return variables, float(values["heldout_accuracy"])


def train_for(data_config) -> tuple[dict, float]:
  """(variables, held-out accuracy) of a classifier freshly trained on the data config's dataset."""
  (train_images, train_labels), (heldout_images, heldout_labels) = train_and_heldout(data_config)
  num_classes = int(max(train_labels.max(), heldout_labels.max())) + 1
  logging.info("Training the %s classifier on %d images (%d classes); held out: %d",
               field(data_config, "source"), len(train_images), num_classes, len(heldout_images))
  variables = train(train_images, train_labels, num_classes)
  heldout_accuracy = accuracy(variables, heldout_images, heldout_labels)
  logging.info("Classifier held-out accuracy: %.4f", heldout_accuracy)
  return variables, heldout_accuracy


def cached_classifier(data_config, cache_dir: str | None = None) -> tuple[dict, float, str]:
  """(variables, held-out accuracy, file) of the data's classifier: trained and stored on first use."""
  path = classifier_file(data_config, cache_dir or reference.default_cache_dir())
  if not os.path.exists(path):
    variables, heldout_accuracy = train_for(data_config)
    save(path, variables, heldout_accuracy)
  variables, heldout_accuracy = load(path)
  return variables, heldout_accuracy, path


# ----------------------------------------------------------------------------- command line

FLAGS = flags.FLAGS


def _define_flags() -> None:
  # Only when run as a command: evaluation imports this module inside launch.py, whose flags must not clash.
  flags.DEFINE_string("source", "digits", "Labelled data source: digits, idx or tfds (gans/data/config.py).")
  flags.DEFINE_string("path", "", "Data path of an idx / tfds source.")
  flags.DEFINE_string("name", "", "TFDS dataset name, e.g. mnist.")
  flags.DEFINE_string("cache_dir", None, "Where classifiers are kept (default: $XDG_CACHE_HOME/gans or ~/.cache/gans).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}")
  logging.getLogger().setLevel(logging.INFO)
  data_config = ml_collections.ConfigDict({"source": FLAGS.source, "path": FLAGS.path, "name": FLAGS.name})
  _, heldout_accuracy, path = cached_classifier(data_config, FLAGS.cache_dir)
  print(json.dumps({"heldout_accuracy": heldout_accuracy, "file": path}), file=sys.stdout, flush=True)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
