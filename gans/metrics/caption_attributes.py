"""Does the picture say what the caption says: attribute classifiers of captioned_shapes and their metrics.

The classifier. One small CNN (stride-2 3x3 convs down to 4x4, a 256-d dense layer: the features) with one
softmax head per field of captioned_shapes' label (gans/data/captions.py, LABEL_FIELDS): count (1 or 2), and for
each of the two shape slots kind (5), colour (5), size (3) and position (9 cells). One network, not one per
attribute: the attributes are read from the same few strokes of colour (a shape's colour, kind and size are all
properties of one blob), so a shared trunk learns them together for the price of one training run, and its one
feature layer is the space the classifier FID is measured in. The slots are the label's: two-shape pictures list
their shapes by grid cell in reading order (top-left-most first), as the captions mention them, so the head of
slot 0 answers "the first shape in reading order", which a dense layer over the 4x4 map can learn. Slot 1's heads
are trained only on two-shape pictures (label -1 = no second shape is masked out of the loss).

It is trained once per (data resolution, data.max_shapes), deterministically, on captioned_shapes pictures of its
own seed (TRAIN_SYNTH_SEED), held out on another seed (HELDOUT_SYNTH_SEED), and cached like the digits classifier
(gans/metrics/classifier.py: same file format, numpy initialisation, Adam, one device). Its input is the data's
resolution; pictures of another size (a StackGAN Stage-I at a lower resolution) are resized to it.

Scoring a picture against a caption's label. The classifier's prediction is made into a label: count from the
count head; the slot-1 fields set to -1 when it predicts one shape. Then, over the shapes the CAPTION names:
  <attribute> accuracy  (kind, colour, size, position) the fraction of the captions' shapes whose predicted
                        attribute in the same slot equals the caption's; a shape the prediction lacks (two named,
                        one predicted) counts as wrong in every attribute
  count accuracy        predicted count == the caption's
  all                   the whole predicted label equals the caption's (count and every attribute of every shape)
A picture with the right shapes in the wrong order cannot happen in the label's terms: the order is the cells'.

The metrics (gans/evaluation.py, names in config.eval.metrics):
  caption_accuracy        draws config.eval.num_samples held-out captions (captioned_shapes pictures of seed
                          data.synth_seed + EVAL_SEED_OFFSET, picture p with its caption p % captions_per_picture),
                          asks the variant for one picture per caption (sample(..., caption=int32[n, L] char ids),
                          the GanVariant.conditioning name "caption") and reports
                            caption_accuracy/<count|kind|colour|size|position|all>   generated pictures
                            caption_accuracy_real/<...>       the classifier on the captions' real pictures: the
                                                              ceiling the generator is measured against
                            caption_classifier_accuracy/<...> the classifier's own held-out accuracy (cached)
                            caption_count                     captions scored
  caption_classifier_fid  the Frechet distance between the classifier's features of the generated pictures and of
                          the real pictures of the same held-out captions.

Measured (the default recipe: 20000 training pictures, 3000 steps of 64; held-out accuracy on 2000 real pictures
of HELDOUT_SYNTH_SEED; a 2-core CPU shared with two training runs and other jobs, load ~10, so the times are
pessimistic):
    nice -n 10 python -m gans.metrics.caption_attributes --resolution=64     # 14 min
      count 1.000, kind 0.976, colour 0.995, size 0.992, position 1.000 (0.9997), all at once 0.948
    nice -n 10 python -m gans.metrics.caption_attributes --resolution=32     # 21 min (load ~12)
      count 1.000, kind 0.942, colour 0.990, size 0.988, position 0.998, all at once 0.890
  and through the metric, 1000 held-out evaluation captions (data.synth_seed 0) at 64x64: their real pictures
  score kind 0.972, colour 0.996, size 0.989, count and position 1.000, all 0.940 (caption_classifier_fid 0);
  each caption given another caption's real picture: count 0.504, kind 0.172, colour 0.163, size 0.271,
  position 0.114, all 0.001 (chance, lowered where a named second shape is missing).

Numbers compare runs evaluated with the same classifier (same resolution, max_shapes, RECIPE).
"""
import functools
import hashlib
import json
import logging
import os
import sys

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
from absl import app, flags

from gans.data import captions
from gans.data.config import field
from gans.metrics import classifier

FEATURE_DIM = 256  # penultimate width: the caption classifier-FID feature dimension
WIDTHS = (32, 64, 128, 128, 128, 128)  # conv channels; a picture of side R uses the first log2(R / 4)
HEADS = {"count": 2, "kind_0": 5, "colour_0": 5, "size_0": 3, "position_0": 9,
         "kind_1": 5, "colour_1": 5, "size_1": 3, "position_1": 9}  # label field -> classes (count: 1 or 2 shapes)
ATTRIBUTES = ("kind", "colour", "size", "position")
SCORES = ("count",) + ATTRIBUTES + ("all",)
NUM_TRAIN = 20_000  # training pictures
NUM_HELDOUT = 2_000  # held-out pictures (the reported accuracy)
STEPS = 3_000
BATCH_SIZE = 64
LEARNING_RATE = 1e-3
SEED = 0
TRAIN_SYNTH_SEED = 1_000_001  # the classifier's pictures: seeds no experiment trains on
HELDOUT_SYNTH_SEED = 1_000_002
EVAL_SEED_OFFSET = 1_000_003  # evaluation captions: data.synth_seed + this
# Part of the cache key: change it whenever anything above or the network changes.
RECIPE = (f"caption-attributes-v1/conv{WIDTHS}s2-dense{FEATURE_DIM}/heads{tuple(HEADS.values())}/adam{LEARNING_RATE}/"
          f"b{BATCH_SIZE}/{STEPS}steps/{NUM_TRAIN}+{NUM_HELDOUT}pictures/seeds{TRAIN_SYNTH_SEED},{HELDOUT_SYNTH_SEED},"
          f"{SEED}")


class AttributeClassifier(nn.Module):
  """[N, R, R, 3] pictures in [-1, 1] -> {"features": f32[N, FEATURE_DIM], <label field>: logits f32[N, classes]}."""
  num_convs: int

  @nn.compact
  def __call__(self, images_NHWC):
    x = images_NHWC
    for width in WIDTHS[:self.num_convs]:
      x = nn.relu(nn.Conv(width, (3, 3), strides=(2, 2))(x))
    features = nn.relu(nn.Dense(FEATURE_DIM)(x.reshape(x.shape[0], -1)))
    return {"features": features, **{name: nn.Dense(classes, name=name)(features) for name, classes in HEADS.items()}}


def num_convs(resolution: int) -> int:
  """Stride-2 convs taking a side-`resolution` picture down to about 4x4 (at least one)."""
  return max(1, int(np.log2(max(resolution, 4) / 4)))


@functools.lru_cache(maxsize=None)
def forward_at(resolution: int):
  """outputs(variables, images) of the classifier of side-`resolution` pictures; one function object per side, so
  jitted forwards (extract.FeatureExtractor) compile once per evaluation run, not once per evaluation."""
  model = AttributeClassifier(num_convs(resolution))

  def outputs(variables, images_NHWC):
    images = jnp.asarray(images_NHWC, jnp.float32)
    if images.shape[1:3] != (resolution, resolution):
      images = jax.image.resize(images, (images.shape[0], resolution, resolution, images.shape[3]), "linear",
                                antialias=True)
    return model.apply(variables, images)
  return outputs


# ----------------------------------------------------------------------------- scoring

def predicted_labels(outputs: dict) -> np.ndarray:
  """Head logits -> int32[N, 9] labels in LABEL_FIELDS' layout; slot 1 is -1 where one shape is predicted."""
  fields = [np.argmax(np.asarray(outputs[name]), axis=-1) for name in captions.LABEL_FIELDS]
  labels = np.stack(fields, axis=1).astype(np.int32)
  labels[:, 0] += 1  # the count head's class 0 is one shape
  labels[labels[:, 0] == 1, 5:] = -1
  return labels


def attribute_accuracy(predicted_N9: np.ndarray, target_N9: np.ndarray) -> dict:
  """{count, kind, colour, size, position, all: accuracy} of predicted labels against the captions' labels.

  An attribute's accuracy is over the shapes the target names (slot 1 only where the target has two shapes); a
  shape the prediction lacks (-1) is wrong in every attribute. "all": the whole label equal.
  """
  predicted, target = np.asarray(predicted_N9), np.asarray(target_N9)
  if predicted.shape != target.shape or predicted.ndim != 2 or predicted.shape[1] != len(captions.LABEL_FIELDS):
    raise ValueError(f"Expected two int arrays [N, {len(captions.LABEL_FIELDS)}] of labels "
                     f"({', '.join(captions.LABEL_FIELDS)}); got {predicted.shape} and {target.shape}.")
  results = {"count": float(np.mean(predicted[:, 0] == target[:, 0]))}
  for offset, attribute in enumerate(ATTRIBUTES, start=1):
    columns = [offset, offset + len(ATTRIBUTES)]  # the attribute in slot 0 and slot 1
    named = target[:, columns] >= 0
    results[attribute] = float(np.sum((predicted[:, columns] == target[:, columns]) & named) / np.sum(named))
  results["all"] = float(np.mean(np.all(predicted == target, axis=1)))
  return results


# ----------------------------------------------------------------------------- data

def shapes_config(data_config, synth_seed: int, size: int, captions_per_picture: int = 1) -> ml_collections.ConfigDict:
  """A captioned_shapes data config like the experiment's (resolution, max_shapes) with another seed and size."""
  if field(data_config, "source") != "captioned_shapes":
    raise ValueError(f"The caption attribute metrics (caption_accuracy, caption_classifier_fid) score pictures of "
                     f"captioned_shapes, whose captions name each shape's kind, colour, size and position; data "
                     f"source {field(data_config, 'source')!r} has no such labels. Use data.source=captioned_shapes.")
  return ml_collections.ConfigDict({
      "source": "captioned_shapes", "resolution": field(data_config, "resolution"), "channels": 3,
      "max_shapes": field(data_config, "max_shapes"), "caption_length": field(data_config, "caption_length"),
      "captions_per_picture": captions_per_picture, "size": size, "synth_seed": synth_seed})


def _source(config):
  return captions.CaptionedShapesSource(
      resolution=config.resolution, channels=3, size=config.size, captions_per_picture=config.captions_per_picture,
      caption_length=config.caption_length, max_shapes=config.max_shapes, seed=config.synth_seed)


def read_pictures(config) -> tuple[np.ndarray, np.ndarray]:
  """(pictures f32[N, R, R, 3], labels int32[N, 9]) of every picture of a captioned_shapes config."""
  source = _source(config)
  pictures = [source[p * config.captions_per_picture] for p in range(config.size)]
  return (np.stack([e["image"] for e in pictures]).astype(np.float32),
          np.stack([e["label"] for e in pictures]).astype(np.int32))


def heldout_captions(data_config, n: int) -> dict:
  """n held-out evaluation examples: {"caption": int32[n, L], "label": int32[n, 9], "image": f32[n, R, R, 3]},
  picture p of seed data.synth_seed + EVAL_SEED_OFFSET with its caption p % captions_per_picture."""
  per_picture = field(data_config, "captions_per_picture")
  config = shapes_config(data_config, field(data_config, "synth_seed") + EVAL_SEED_OFFSET, n, per_picture)
  source = _source(config)
  elements = [source[p * per_picture + p % per_picture] for p in range(n)]
  return {name: np.stack([e[name] for e in elements]) for name in ("caption", "label", "image")}


# ----------------------------------------------------------------------------- training

def _loss(model, params, images, labels):
  outputs = model.apply({"params": params}, images)
  total = 0.0
  for index, name in enumerate(captions.LABEL_FIELDS):
    target = labels[:, index] - 1 if name == "count" else labels[:, index]
    present = target >= 0  # slot 1 of one-shape pictures says nothing
    per_example = optax.softmax_cross_entropy_with_integer_labels(outputs[name], jnp.maximum(target, 0))
    total += jnp.sum(per_example * present) / jnp.maximum(jnp.sum(present), 1)
  return total


def train(images_NHWC: np.ndarray, labels_N9: np.ndarray, steps: int = STEPS, batch_size: int = BATCH_SIZE,
          seed: int = SEED) -> dict:
  """Variables of an AttributeClassifier fitted by Adam on the heads' summed (masked) cross-entropies; a pure
  function of its inputs, on one device."""
  model = AttributeClassifier(num_convs(images_NHWC.shape[1]))
  params = classifier.fit(functools.partial(_loss, model), classifier.numpy_init(model, images_NHWC.shape[1:], seed),
                          images_NHWC, labels_N9, steps, batch_size, seed, "Caption attribute classifier",
                          learning_rate=LEARNING_RATE, reports=10)
  return {"params": params}


@functools.lru_cache(maxsize=None)
def _jitted_forward(resolution: int):
  return jax.jit(forward_at(resolution))


def predict(variables, images_NHWC: np.ndarray, resolution: int, batch_size: int = 250) -> dict:
  """The outputs of the classifier of side-`resolution` pictures over many pictures, in batches on one device,
  as host arrays."""
  return classifier.batched_outputs(_jitted_forward(resolution), variables, images_NHWC, batch_size)


def heldout_accuracy(variables, images_NHWC: np.ndarray, labels_N9: np.ndarray) -> dict:
  """attribute_accuracy of the classifier's predictions on real pictures (of the side it was trained at)."""
  return attribute_accuracy(predicted_labels(predict(variables, images_NHWC, images_NHWC.shape[1])), labels_N9)


# ----------------------------------------------------------------------------- files and cache

def classifier_file(data_config, cache_dir: str) -> str:
  key = f"{RECIPE}\nresolution={field(data_config, 'resolution')}\nmax_shapes={field(data_config, 'max_shapes')}"
  return os.path.join(cache_dir, f"caption_attributes_{hashlib.sha256(key.encode()).hexdigest()[:32]}.npz")


def train_for(data_config, num_train: int = NUM_TRAIN, num_heldout: int = NUM_HELDOUT, steps: int = STEPS) -> dict:
  """{"variables", "heldout_accuracy": {score: accuracy}} of a classifier freshly trained for the data config."""
  train_images, train_labels = read_pictures(shapes_config(data_config, TRAIN_SYNTH_SEED, num_train))
  heldout_images, heldout_labels = read_pictures(shapes_config(data_config, HELDOUT_SYNTH_SEED, num_heldout))
  logging.info("Training the caption attribute classifier on %d pictures at %d^2; held out: %d", num_train,
               train_images.shape[1], num_heldout)
  variables = train(train_images, train_labels, steps)
  accuracy = heldout_accuracy(variables, heldout_images, heldout_labels)
  logging.info("Caption attribute classifier held-out accuracy: %s", accuracy)
  return {"variables": variables, "heldout_accuracy": accuracy}


def save(path: str, variables: dict, accuracy: dict) -> None:
  """A classifier and its held-out accuracy per score, as cached() reads them."""
  classifier.write_archive(path, variables, **{f"heldout_accuracy/{k}": np.float64(v) for k, v in accuracy.items()},
                           recipe=np.str_(RECIPE))


def cached(data_config, cache_dir: str) -> dict:
  """{"variables", "heldout_accuracy": {score: accuracy}, "file"} of the data's classifier: trained (train_for)
  and stored on first use."""
  path = classifier_file(data_config, cache_dir)
  if not os.path.exists(path):
    trained = train_for(data_config)
    save(path, trained["variables"], trained["heldout_accuracy"])
  variables, values = classifier.read_archive(path)
  accuracy = {k[len("heldout_accuracy/"):]: float(v) for k, v in values.items() if k.startswith("heldout_accuracy/")}
  return {"variables": variables, "heldout_accuracy": accuracy, "file": path}


# ----------------------------------------------------------------------------- the metrics

def caption_metrics(generated_outputs: dict, real_outputs: dict, labels_N9: np.ndarray,
                    classifier_accuracy: dict) -> dict:
  """caption_accuracy/*, caption_accuracy_real/*, caption_classifier_accuracy/* and caption_count (module
  docstring) from the classifier's outputs on generated and real pictures of the same captions."""
  results = {"caption_count": len(labels_N9)}
  for prefix, outputs in (("caption_accuracy", generated_outputs), ("caption_accuracy_real", real_outputs)):
    accuracy = attribute_accuracy(predicted_labels(outputs), labels_N9)
    results.update({f"{prefix}/{name}": value for name, value in accuracy.items()})
  results.update({f"caption_classifier_accuracy/{name}": value for name, value in classifier_accuracy.items()})
  return results


# ----------------------------------------------------------------------------- command line

FLAGS = flags.FLAGS


def _define_flags() -> None:
  flags.DEFINE_integer("resolution", 64, "data.resolution of the captioned_shapes experiment.")
  flags.DEFINE_integer("max_shapes", 2, "data.max_shapes of the experiment (1 or 2).")
  flags.DEFINE_string("cache_dir", None, "Where classifiers are kept (default: $XDG_CACHE_HOME/gans or ~/.cache/gans).")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments {argv[1:]}")
  from gans.metrics import reference  # pylint: disable=import-outside-toplevel
  logging.getLogger().setLevel(logging.INFO)
  data_config = ml_collections.ConfigDict({"source": "captioned_shapes", "resolution": FLAGS.resolution,
                                           "max_shapes": FLAGS.max_shapes})
  trained = cached(data_config, FLAGS.cache_dir or reference.default_cache_dir())
  print(json.dumps({"heldout_accuracy": trained["heldout_accuracy"], "file": trained["file"]}), file=sys.stdout,
        flush=True)


if __name__ == "__main__":
  _define_flags()
  app.run(main)
