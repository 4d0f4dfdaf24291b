"""The 3D-GAN's evaluation in miniature: the paper's Table 1 (a linear classifier on D's features), class
coverage of samples under a classifier of the training shapes, and nearest-neighbour IoU of samples.

  python -m gans.voxel_eval --experiment=gan3d_shapes --workdir=/tmp/gan3d_shapes [--num_train=700 ...]

Table 1 (Wu et al. 2016, sec. 4.2): D's activations after its strided convs, each max-pooled to 2^3 cells
(the paper pools its 2nd-4th layers with kernels 8, 4, 2) and concatenated, are the features of a linear
classifier trained on labelled training shapes and tested on held-out ones. The same classifier on a randomly
initialised D's features and on the raw voxels are the baselines. On the procedural solids the held-out shapes
are those of another `shapes_seed`; on a ModelNet folder, its `test` split. The classifier is scikit-learn's
logistic regression (the paper: a linear SVM), features standardised on the training set.

Samples: `shape_classifier` (logistic regression on the training shapes' raw voxels, its held-out accuracy
reported) predicts each sample's class; coverage is the fraction of classes predicted at least once, the
histogram the predicted classes' frequencies. Nearest-neighbour IoU: for each sample the best intersection
over union with any of the training shapes read; means near 1 would be copies.
"""
import argparse
import json
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from gans import data, run


def load_shapes(data_config, count: int, **overrides) -> tuple[np.ndarray, np.ndarray]:
  """The first `count` elements of the data source (with config overrides) as (bool voxels [N, R, R, R], labels)."""
  config = ml_collections.ConfigDict(data_config.to_dict())  # unlocked: overrides may add defaulted fields
  config.update(overrides)
  source = data.make_source(config)
  elements = [source[i] for i in range(min(count, len(source)))]
  elements = [e for e in elements if e is not None]
  if not elements or "label" not in elements[0]:
    raise ValueError(f"The voxel evaluation needs labelled shapes; {source!r} gave none.")
  return (np.stack([e["voxels"][..., 0] > 0.5 for e in elements]),
          np.array([int(e["label"]) for e in elements]))


def pooled_features(hidden: list) -> jax.Array:
  """Each activation [N, S, S, S, C] max-pooled to 2^3 cells and flattened, concatenated: [N, sum 8 C]."""
  pooled = []
  for h in hidden:
    n, s, _, _, c = h.shape
    cell = s // 2
    pooled.append(h.reshape(n, 2, cell, 2, cell, 2, cell, c).max(axis=(2, 4, 6)).reshape(n, -1))
  return jnp.concatenate(pooled, axis=-1)


def discriminator_features(variant, params, model_state, voxels_NDHW: np.ndarray, batch_size: int = 50) -> np.ndarray:
  """D's pooled intermediate features (BatchNorm with its running statistics) of the given shapes."""
  discriminator = variant.modules["d"]

  @jax.jit
  def features(batch):
    _, hidden = discriminator.apply({"params": params["d"], **model_state["d"]}, batch, train=False, features=True)
    return pooled_features(hidden)

  chunks = [np.asarray(features(jnp.asarray(voxels_NDHW[i:i + batch_size, ..., None], jnp.float32)))
            for i in range(0, len(voxels_NDHW), batch_size)]
  return np.concatenate(chunks)


def linear_probe(train_x, train_y, test_x, test_y, seed: int = 0):
  """(held-out accuracy, fitted model) of a standardised logistic regression fitted on (train_x, train_y)."""
  from sklearn.linear_model import LogisticRegression  # pylint: disable=import-outside-toplevel
  from sklearn.pipeline import make_pipeline  # pylint: disable=import-outside-toplevel
  from sklearn.preprocessing import StandardScaler  # pylint: disable=import-outside-toplevel
  model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, C=1.0, random_state=seed))
  model.fit(train_x.reshape(len(train_x), -1), train_y)
  return float(model.score(test_x.reshape(len(test_x), -1), test_y)), model


def nearest_neighbour_iou(samples_NDHW: np.ndarray, shapes_NDHW: np.ndarray) -> np.ndarray:
  """For each sample, the largest IoU with any of `shapes`."""
  a = samples_NDHW.reshape(len(samples_NDHW), -1).astype(np.float32)
  b = shapes_NDHW.reshape(len(shapes_NDHW), -1).astype(np.float32)
  intersection = a @ b.T
  union = a.sum(1)[:, None] + b.sum(1)[None, :] - intersection
  return np.max(intersection / np.maximum(union, 1.0), axis=1)


def evaluate(config, workdir: str, num_train: int = 700, num_test: int = 700, num_samples: int = 200) -> dict:
  setup = run.Setup(config, num_devices=1)
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  held_out = ({"shapes_seed": config.data.get("shapes_seed", 0) + 1000} if config.data.source == "shapes3d"
              else {"split": "test"})
  train_x, train_y = load_shapes(config.data, num_train)
  test_x, test_y = load_shapes(config.data, num_test, **held_out)
  results = {"step": step, "num_train": len(train_x), "num_test": len(test_x)}
  for name, params, model_state in (("trained_d", state.params, state.model_state),
                                    ("random_d", setup.initial_state.params, setup.initial_state.model_state)):
    features = [discriminator_features(setup.variant, params, model_state, x) for x in (train_x, test_x)]
    results[f"table1/{name}"] = linear_probe(features[0], train_y, features[1], test_y)[0]
  results["table1/raw_voxels"], classifier = linear_probe(train_x, train_y, test_x, test_y)
  samples = setup.generate(state, num_samples)[..., 0] > 0.5
  predicted = classifier.predict(samples.reshape(len(samples), -1))
  num_classes = len(np.unique(train_y))
  histogram = np.bincount(predicted, minlength=num_classes) / len(predicted)
  results.update({"samples/classifier_accuracy_held_out": results["table1/raw_voxels"],
                  "samples/class_coverage": float(np.mean(histogram > 0)),
                  "samples/class_histogram": [round(float(h), 4) for h in histogram],
                  "samples/empty_fraction": float(np.mean(samples.reshape(len(samples), -1).sum(1) == 0)),
                  "samples/nn_iou_mean": float(np.mean(nearest_neighbour_iou(samples, train_x)))})
  return results


def main() -> None:
  import experiments  # pylint: disable=import-outside-toplevel
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--experiment", default="gan3d_shapes")
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--num_train", type=int, default=700)
  parser.add_argument("--num_test", type=int, default=700)
  parser.add_argument("--num_samples", type=int, default=200)
  parser.add_argument("--data_path", default="", help="config.data.path (a ModelNet10 folder)")
  args = parser.parse_args()
  config = experiments.get_config(args.experiment)
  if args.data_path:
    with config.unlocked():
      config.data.path = args.data_path
  results = evaluate(config, args.workdir, args.num_train, args.num_test, args.num_samples)
  print(json.dumps(results))
  with open(os.path.join(args.workdir, "voxel_eval.jsonl"), "a") as file:
    file.write(json.dumps(results) + "\n")


if __name__ == "__main__":
  main()
