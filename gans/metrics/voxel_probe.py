"""The 3D-GAN's evaluation in miniature (`config.eval.metrics=("voxel_probe",)`): the paper's Table 1 (a
linear classifier on D's features), class coverage of samples under a classifier of the training shapes, and
nearest-neighbour IoU of samples.

  python launch.py --experiment=gan3d_shapes --workdir=DIR --mode=eval    # appends to DIR/eval.jsonl

Table 1 (Wu et al. 2016, sec. 4.2): D's activations after its strided convs, each max-pooled to 2^3 cells
(the paper pools its 2nd-4th layers with kernels 8, 4, 2) and concatenated, are the features of a linear
classifier trained on `eval.probe_train` labelled training shapes and tested on `eval.probe_test` held-out
ones. The same classifier on a randomly initialised D's features (the run's own initialisation) and on the
raw voxels are the baselines. On the procedural solids the held-out shapes are those of another
`shapes_seed`; on a ModelNet folder, its `test` split. The classifier is scikit-learn's logistic regression
(the paper: a linear SVM), features standardised on the training set.

Samples (`eval.num_samples`): `shape_classifier` (logistic regression on the training shapes' raw voxels, its
held-out accuracy reported) predicts each sample's class; coverage is the fraction of classes predicted at
least once, the histogram the predicted classes' frequencies. Nearest-neighbour IoU: for each sample the best
intersection over union with any of the training shapes read; means near 1 would be copies.
"""
import ml_collections
import numpy as np

from gans import data


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


def encoded_features(encode, voxels_NDHW: np.ndarray, batch_size: int = 50) -> np.ndarray:
  """D's pooled features (the variant's `encode`, BatchNorm with running statistics) of the given shapes."""
  chunks = [np.asarray(encode(voxels_NDHW[i:i + batch_size, ..., None].astype(np.float32))["d_features"])
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


def probe(config, generate, encode, encode_at_init) -> dict:
  """Table 1 in miniature and the samples' class coverage and nearest-neighbour IoU (module docstring).

  generate(n) -> samples [n, D, H, W, 1]; encode / encode_at_init(batch) -> {"d_features": ...} with the
  trained and the initial parameters."""
  held_out = ({"shapes_seed": config.data.get("shapes_seed", 0) + 1000} if config.data.source == "shapes3d"
              else {"split": "test"})
  train_x, train_y = load_shapes(config.data, config.eval.probe_train)
  test_x, test_y = load_shapes(config.data, config.eval.probe_test, **held_out)
  results = {"table1/num_train": len(train_x), "table1/num_test": len(test_x)}
  for name, features_of in (("trained_d", encode), ("random_d", encode_at_init)):
    features = [encoded_features(features_of, x) for x in (train_x, test_x)]
    results[f"table1/{name}"] = linear_probe(features[0], train_y, features[1], test_y)[0]
  results["table1/raw_voxels"], classifier = linear_probe(train_x, train_y, test_x, test_y)
  samples = np.asarray(generate(config.eval.num_samples))[..., 0] > 0.5
  predicted = classifier.predict(samples.reshape(len(samples), -1))
  num_classes = len(np.unique(train_y))
  histogram = np.bincount(predicted, minlength=num_classes) / len(predicted)
  results.update({"samples/classifier_accuracy_held_out": results["table1/raw_voxels"],
                  "samples/class_coverage": float(np.mean(histogram > 0)),
                  "samples/class_histogram": [round(float(h), 4) for h in histogram],
                  "samples/empty_fraction": float(np.mean(samples.reshape(len(samples), -1).sum(1) == 0)),
                  "samples/nn_iou_mean": float(np.mean(nearest_neighbour_iou(samples, train_x)))})
  return results
