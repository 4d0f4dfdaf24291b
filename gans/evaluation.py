"""Evaluation of a generator: the experiment's `config.eval.metrics`, by name.

Each evaluator is fn(config, generate) -> dict of results, where generate(n)
returns n samples in data space. New metrics register in EVALUATORS.

Within one `evaluate` call the samples are generated once and shared by every
metric, and so are their features under each network (Samples below). The
config.eval fields are documented in gans/metrics/eval_config.py; experiments
that predate a field get its default there.

Inception metrics (fid, kid, is, precision_recall) follow pytorch-fid /
StyleGAN2-ADA; classifier metrics (classifier_fid, class_coverage,
stacked_modes) use the project's own classifier (gans/metrics/classifier.py),
which needs no download. Text-to-image metrics (caption_accuracy,
caption_classifier_fid) ask the variant's sampler for pictures of held-out
captions (sample(..., caption=int32[n, L])) and judge them with the attribute
classifier of gans/metrics/caption_attributes.py.
"""
import functools
import os
from typing import Any, Callable

import jax
import ml_collections
import numpy as np

from gans import checkpoint, data, report, run, steps
from gans.metrics import classifier, eval_config, extract, fid, frechet, modes, reference, translation
from gans.metrics.progress import Progress
from gans.variants import cgan, infogan

GENERATION_CHUNK = 500  # samples per generator call (run.generate's batch) and progress update
INCEPTION_WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_WEIGHTS_URL = ("https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                         + INCEPTION_WEIGHTS_FILE)


class MissingInceptionWeightsError(data.DatasetNotFoundError):
  """The Inception metrics' weights file is not where config.eval.inception_weights says.

  A DatasetNotFoundError (a file the run needs that the user must fetch) so the
  launcher reports it as one line, like a missing dataset.
  """


def eval_field(config, name: str):
  """config.eval.<name>, or its eval_config default for experiments that do not set it."""
  return config.eval.get(name, eval_config.eval_config()[name])


def cache_dir(config) -> str:
  return eval_field(config, "cache_dir") or reference.default_cache_dir()


# ----------------------------------------------------------------------------- samples shared by the metrics

class Samples:
  """generate(n), memoised for one evaluation; features of the samples are memoised per network too."""

  def __init__(self, generate: Callable[[int], np.ndarray], encode: Callable | None = None,
               encode_at_init: Callable | None = None):
    self._generate = generate
    self.encode = encode  # encode(batch) -> what the variant infers from data; None without an encoder
    self.encode_at_init = encode_at_init  # the same with the run's initial parameters (a probe's baseline)
    self._samples = None
    self._derived = {}
    self._once = {}

  def __call__(self, n: int) -> np.ndarray:
    if self._samples is None or len(self._samples) < n:
      self._samples = np.asarray(self._generate(n))
      self._derived.clear()
    return self._samples[:n]

  def derived(self, name: str, n: int, compute: Callable[[np.ndarray], dict]) -> dict:
    """compute(first n samples), computed once per (name, n)."""
    if (name, n) not in self._derived:
      self._derived[(name, n)] = compute(self(n))
    return self._derived[(name, n)]

  def conditioned(self, n: int, **conditioning) -> np.ndarray:
    """n fresh samples with the variant's conditioning (e.g. label=3); not memoised."""
    return np.asarray(self._generate(n, **conditioning))

  def once(self, name: str, compute: Callable[[], Any]) -> Any:
    """compute(), once per evaluation: e.g. reference statistics or a network several metrics use."""
    if name not in self._once:
      self._once[name] = compute()
    return self._once[name]


def _as_samples(generate) -> Samples:
  return generate if isinstance(generate, Samples) else Samples(generate)


def _in_batches(images_NHWC: np.ndarray, batch_size: int, description: str):
  with Progress(len(images_NHWC), description) as progress:
    for start in range(0, len(images_NHWC), batch_size):
      progress.update(min(batch_size, len(images_NHWC) - start))
      yield images_NHWC[start:start + batch_size]


def _sharded_batch_size(config, mesh) -> int:
  shards = 1 if mesh is None else mesh.shape[extract.DATA_AXIS]
  return -(-eval_field(config, "batch_size") // shards) * shards


# ----------------------------------------------------------------------------- 2D mixtures

def _mode_coverage(config, generate) -> dict:
  means, std = data.mixture_modes(config.data.source)
  return modes.mode_metrics(generate(config.eval.num_samples), np.asarray(means), std)


# ----------------------------------------------------------------------------- the project's classifier

def _classifier_extractor(config, samples: Samples, forward=classifier.outputs):
  """(extractor, network id) of the experiment's data classifier (trained on first use), once per evaluation."""
  def build():
    variables, _, file = classifier.cached_classifier(config.data, cache_dir(config))
    mesh = fid.data_mesh()
    extractor = extract.FeatureExtractor(variables, _sharded_batch_size(config, mesh), mesh, forward=forward)
    return extractor, f"{classifier.RECIPE}/{fid.file_sha256(file)}"
  return samples.once(f"classifier_extractor/{forward.__name__}", build)


def _classifier_outputs(config, samples: Samples) -> dict:
  def compute(images):
    extractor, _ = _classifier_extractor(config, samples)
    return extractor(_in_batches(images, extractor.batch_size, "Evaluation: classifier features of the samples"))
  return samples.derived("classifier", config.eval.num_samples, compute)


def _classifier_fid(config, generate) -> dict:
  samples = _as_samples(generate)
  fake = _classifier_outputs(config, samples)["features"]
  extractor, network_id = _classifier_extractor(config, samples)
  real = reference.reference_statistics(config.data, extractor, "features", network_id, cache_dir(config),
                                        eval_field(config, "num_reference"))
  mu, sigma = frechet.activation_statistics(fake)
  return {"classifier_fid": frechet.frechet_distance(real["mu"], real["sigma"], mu, sigma)}


def _class_coverage(config, generate) -> dict:
  return classifier.class_coverage(_classifier_outputs(config, _as_samples(generate))["logits"])


def _stacked_modes(config, generate) -> dict:
  samples = _as_samples(generate)
  n = config.eval.num_samples
  images = samples(n)
  if images.ndim != 4 or images.shape[-1] < 2:
    raise ValueError(f"stacked_modes needs images with one stacked grayscale image per channel; samples are "
                     f"{images.shape[1:]}")
  extractor, _ = _classifier_extractor(config, samples, forward=classifier.stacked_outputs)
  outputs = samples.derived("stacked_classifier", n, lambda images: extractor(
      _in_batches(images, extractor.batch_size, "Evaluation: classifying the channels of the samples")))
  return classifier.stacked_modes(outputs["logits"])


# ----------------------------------------------------------------------------- FID Inception

INCEPTION_METRICS = ("fid", "kid", "is", "precision_recall", "caption_fid")


def inception_weights_path(config) -> str:
  """config.eval.inception_weights, checked to exist: the one error a user without the weights sees."""
  path = eval_field(config, "inception_weights")
  if not path or not os.path.isfile(path):
    wanted = [name for name in config.eval.metrics if name in INCEPTION_METRICS]
    where = (f"config.eval.inception_weights={path!r} is not a file" if path
             else "config.eval.inception_weights is unset")
    raise MissingInceptionWeightsError(
        f"The metrics {', '.join(wanted) or ', '.join(INCEPTION_METRICS)} need the FID Inception weights and "
        f"{where}. Download {INCEPTION_WEIGHTS_FILE} (pytorch-fid's GitHub release: {INCEPTION_WEIGHTS_URL}) "
        f"and pass --config.eval.inception_weights=FILE.")
  return path


@functools.lru_cache(maxsize=2)
def _inception_variables_and_id(path: str, stamp: str) -> tuple[dict, str]:
  del stamp  # part of the memo key only: a rewritten file is read again
  from gans.metrics import weights  # pylint: disable=import-outside-toplevel  (torch-pickle reader, only here)
  return weights.load_fid_inception(path), f"{fid.FEATURE_VERSION}/{fid.file_sha256(path)}"


def _inception_extractor(config, with_logits: bool):
  path = inception_weights_path(config)
  variables, network_id = _inception_variables_and_id(os.path.abspath(path), reference.path_stamp(path))
  mesh = fid.data_mesh()
  extractor = extract.FeatureExtractor(variables, _sharded_batch_size(config, mesh), mesh, with_logits=with_logits)
  return extractor, network_id


def _as_rgb(batches):
  for batch in batches:  # grayscale reaches the network as PIL's convert("RGB") would make it: channel copies
    yield np.repeat(batch, 3, axis=-1) if batch.shape[-1] == 1 else batch


def _shared_inception_extractor(config, samples: Samples):
  """The Inception extractor, built (weights placed on every device) once per evaluation; with the IS logits
  when "is" is configured."""
  with_logits = "is" in config.eval.metrics or "caption_fid" in config.eval.metrics
  return samples.once("inception_extractor", lambda: _inception_extractor(config, with_logits))


def _inception_outputs(config, generate) -> dict:
  """pool3 features (and the IS logits when "is" is configured) of the samples."""
  samples = _as_samples(generate)

  def compute(images):
    extractor, _ = _shared_inception_extractor(config, samples)
    batches = _in_batches(images, extractor.batch_size, "Evaluation: Inception features of the samples")
    return extractor(_as_rgb(batches))
  return samples.derived("inception", config.eval.num_samples, compute)


def _inception_reference(config, generate) -> dict:
  samples = _as_samples(generate)

  def compute():
    extractor, network_id = _shared_inception_extractor(config, samples)
    return reference.reference_statistics(config.data, _RgbExtractor(extractor), "pool3", network_id,
                                          cache_dir(config), eval_field(config, "num_reference"))
  return samples.once("inception_reference", compute)


class _RgbExtractor:
  """An extractor fed grayscale batches as RGB, for the reference statistics of grayscale data."""

  def __init__(self, extractor):
    self._extractor = extractor
    self.batch_size = extractor.batch_size

  def __call__(self, batches):
    return self._extractor(_as_rgb(batches))


def _fid(config, generate) -> dict:
  fake = _inception_outputs(config, generate)["pool3"]
  real = _inception_reference(config, generate)
  mu, sigma = frechet.activation_statistics(fake)
  return {"fid": frechet.frechet_distance(real["mu"], real["sigma"], mu, sigma)}


def _kid(config, generate) -> dict:
  from gans.metrics import kid  # pylint: disable=import-outside-toplevel
  fake = _inception_outputs(config, generate)["pool3"]
  mean, std = kid.kernel_inception_distance(_inception_reference(config, generate)["features"], fake,
                                            eval_field(config, "kid_subsets"), eval_field(config, "kid_subset_size"))
  return {"kid": mean, "kid_std": std}


def _inception_score(config, generate) -> dict:
  from gans.metrics import inception_score  # pylint: disable=import-outside-toplevel
  mean, std = inception_score.inception_score(_inception_outputs(config, generate)["logits_unbiased"])
  return {"is": mean, "is_std": std}


def _precision_recall(config, generate) -> dict:
  from gans.metrics import precision_recall  # pylint: disable=import-outside-toplevel
  fake = _inception_outputs(config, generate)["pool3"]
  precision, recall = precision_recall.precision_recall(_inception_reference(config, generate)["features"], fake)
  return {"precision": precision, "recall": recall}


# ----------------------------------------------------------------------------- conditional variants

def _classify(config):
  """(classify(images) -> predicted labels, the classifier's held-out accuracy on real data)."""
  variables, heldout_accuracy, _ = classifier.cached_classifier(config.data, cache_dir(config))
  return lambda images: np.argmax(classifier.predict(variables, images)["logits"], axis=1), heldout_accuracy


def _label_accuracy(config, generate) -> dict:
  """cGAN: how often the classifier assigns a sample generated for label k to k (per class and overall)."""
  classify, heldout_accuracy = _classify(config)
  results = cgan.label_accuracy(_as_samples(generate).conditioned, classify, config.model.num_classes,
                                config.eval.num_samples)
  return {**results, "classifier_accuracy": heldout_accuracy}


def _code_accuracy(config, generate) -> dict:
  """InfoGAN: Q's categorical code on labelled real images (the test split where there is one) as a
  classifier under the best code -> class matching; and the classifier's agreement with the code of
  generated samples under the same kind of matching."""
  samples = _as_samples(generate)
  if samples.encode is None:
    raise ValueError("code_accuracy needs a variant with an encoder (GanVariant.encode), such as InfoGAN.")
  labelled = ml_collections.ConfigDict(config.data.to_dict())
  labelled.split = "test" if labelled.source in classifier.SPLIT_SOURCES else labelled.split
  images, labels = classifier.read_labelled(labelled)
  num_classes = int(labels.max()) + 1
  results = infogan.code_accuracy(samples.encode, images, labels, config.model.num_categories, num_classes)
  classify, _ = _classify(config)
  results.update(infogan.generated_code_accuracy(samples.conditioned, classify, config.model.num_categories,
                                                 num_classes, config.eval.num_samples))
  return results


def _audio_inception_score(config, generate) -> dict:
  """WaveGAN's paper: the inception score of generated clips from a spoken-digit classifier (10 splits), the
  real held-out clips' score (the ceiling), the classifier's held-out accuracy, label coverage."""
  from gans.metrics import audio_classifier  # pylint: disable=import-outside-toplevel
  clips = _as_samples(generate)(config.eval.num_samples)
  if clips.ndim != 3:
    raise ValueError(f"audio_inception_score needs audio samples [N, T, C]; samples are {clips.shape[1:]}")
  return audio_classifier.evaluate(clips, config.data, cache_dir(config))


def _voxel_probe(config, generate) -> dict:
  """The 3D-GAN's paper: a linear classifier on D's features (trained and at initialisation) and on raw
  voxels, held-out accuracy; the samples' class coverage and nearest-neighbour IoU."""
  from gans.metrics import voxel_probe  # pylint: disable=import-outside-toplevel
  samples = _as_samples(generate)
  if samples.encode is None or samples.encode_at_init is None:
    raise ValueError("voxel_probe needs a variant whose encoder gives D's features (gan3d).")
  return voxel_probe.probe(config, samples, samples.encode, samples.encode_at_init)


EVALUATORS = {
    "modes": _mode_coverage,
    "fid": _fid,
    "kid": _kid,
    "is": _inception_score,
    "precision_recall": _precision_recall,
    "classifier_fid": _classifier_fid,
    "class_coverage": _class_coverage,
    "stacked_modes": _stacked_modes,
    "label_accuracy": _label_accuracy,
    "code_accuracy": _code_accuracy,
    "audio_inception_score": _audio_inception_score,
    "voxel_probe": _voxel_probe,
}


def _translation(config, generate) -> dict:
  """Image-to-image translation on the variant's held-out pairs: L1, PSNR and SSIM of the outputs to the true
  targets; where the data has classes, the data classifier's accuracy on the outputs (against the input's
  true class) beside its accuracy on the real targets (the spirit of pix2pix's FCN-score) and the Frechet
  distance between its features of the outputs and of the targets (translation_classifier_fid); and, when
  config.eval.inception_weights names the FID Inception weights, FID and KID of the outputs against the
  targets (translation_fid, translation_kid), or against the output domain's real test images where no pairs
  are known (horse2zebra)."""
  from gans.variants import get_variant  # pylint: disable=import-outside-toplevel  (variants import evaluation's peers)
  samples = _as_samples(generate)
  held_out = get_variant(config.variant)(config).held_out
  if held_out is None:
    raise ValueError(f"The translation metrics need held-out input/target pairs; variant {config.variant!r} "
                     "has none (pix2pix and cyclegan do).")
  examples = held_out(config.eval.num_samples)
  outputs = samples.conditioned(len(examples["source"]), source=examples["source"])
  results = {"translation_count": len(outputs)}
  if "target" not in examples:  # unpaired test data: the translations judged as a set against the real domain
    if eval_field(config, "inception_weights") and "unpaired_target" in examples:
      results.update(_translation_inception(config, samples, outputs, examples["unpaired_target"]))
    return results
  targets = examples["target"]
  results.update({f"translation_{k}": v for k, v in translation.paired_metrics(outputs, targets).items()})
  if "label" in examples:
    labelled = ml_collections.ConfigDict({"source": "idx", "path": config.data.path})
    variables, _, _ = classifier.cached_classifier(labelled, cache_dir(config))
    fake, real = classifier.predict(variables, outputs), classifier.predict(variables, targets)
    results["translation_classifier_accuracy"] = translation.label_accuracy(fake["logits"], examples["label"])
    results["translation_classifier_accuracy_real"] = translation.label_accuracy(real["logits"], examples["label"])
    results["translation_classifier_fid"] = translation.feature_fid(fake["features"], real["features"])
  if eval_field(config, "inception_weights"):
    results.update(_translation_inception(config, samples, outputs, targets))
  return results


def _translation_inception(config, samples: Samples, outputs: np.ndarray, targets: np.ndarray) -> dict:
  """FID and KID (pytorch-fid's Inception pool3 features) of translations against real output-domain images."""
  from gans.metrics import kid  # pylint: disable=import-outside-toplevel
  extractor, _ = _shared_inception_extractor(config, samples)
  features = {name: extractor(_as_rgb(_in_batches(images, extractor.batch_size, f"Evaluation: Inception features "
                                                  f"of the {name}")))["pool3"]
              for name, images in (("translations", outputs), ("targets", targets))}
  mean, std = kid.kernel_inception_distance(features["targets"], features["translations"],
                                            eval_field(config, "kid_subsets"), eval_field(config, "kid_subset_size"))
  return {"translation_fid": translation.feature_fid(features["translations"], features["targets"]),
          "translation_kid": mean, "translation_kid_std": std}


EVALUATORS["translation"] = _translation


def _super_resolution(config, generate) -> dict:
  """4x super-resolution on the data's held-out pairs, each image at its own size (gans/data/super_resolution.py
  held_out_pairs; gans/metrics/super_resolution.py): Y-channel PSNR and SSIM with a 4-pixel border cropped, and
  the sharpness statistic, of the outputs and of bicubic upsampling of the same LR inputs, per image and
  averaged over the images."""
  from gans.data import super_resolution as sr_data  # pylint: disable=import-outside-toplevel
  from gans.metrics import super_resolution  # pylint: disable=import-outside-toplevel
  samples = _as_samples(generate)
  per_image = []
  for lr, hr in sr_data.held_out_pairs(config.data, config.eval.num_samples):  # each at its own size
    sr = samples.conditioned(1, source=lr[None])
    bicubic = np.asarray(sr_data.upsample_bicubic(lr[None], hr.shape[:2])) * 2.0 - 1.0
    per_image.append(super_resolution.metrics(sr, bicubic, hr[None]))
  results = {name: float(np.mean([r[name] for r in per_image])) for name in per_image[0]
             if not name.endswith("_per_image")}
  results.update({name: [r[name][0] for r in per_image] for name in per_image[0] if name.endswith("_per_image")})
  return {"super_resolution_count": len(per_image), **{f"super_resolution_{k}": v for k, v in results.items()}}


EVALUATORS["super_resolution"] = _super_resolution


# ----------------------------------------------------------------------------- text to image

CAPTION_CONDITIONING = "caption"  # the sampler keyword of text-conditional variants: int32[n, L] caption char ids


def _caption_evaluation(config, samples: Samples) -> dict:
  """Held-out captions, one generated picture per caption, and the attribute classifier's outputs on the
  generated and on the captions' real pictures: once per evaluation, shared by the caption metrics."""
  from gans.metrics import caption_attributes  # pylint: disable=import-outside-toplevel

  def compute():
    examples = caption_attributes.heldout_captions(config.data, config.eval.num_samples)
    try:
      generated = samples.conditioned(len(examples["caption"]), **{CAPTION_CONDITIONING: examples["caption"]})
    except run.ConditioningError as error:
      raise run.ConditioningError(
          f"The caption metrics need a text-conditional variant whose sampler takes {CAPTION_CONDITIONING}=int32[n, "
          f"L] character ids (GanVariant.conditioning including {CAPTION_CONDITIONING!r}). {error}") from error
    if generated.ndim != 4 or len(generated) != len(examples["caption"]):
      raise ValueError(f"caption_accuracy needs one picture [H, W, C] per caption; the sampler returned "
                       f"{generated.shape} for {len(examples['caption'])} captions.")
    trained = caption_attributes.cached(config.data, cache_dir(config))
    mesh = fid.data_mesh()
    forward = caption_attributes.forward_at(data.config.field(config.data, "resolution"))
    extractor = extract.FeatureExtractor(trained["variables"], _sharded_batch_size(config, mesh), mesh,
                                         forward=forward)
    outputs = {name: extractor(_in_batches(images, extractor.batch_size, f"Evaluation: caption attributes of the "
                                           f"{name} pictures"))
               for name, images in (("generated", generated), ("real", examples["image"]))}
    return {**outputs, "label": examples["label"], "classifier_accuracy": trained["heldout_accuracy"],
            "generated_images": generated, "real_images": examples["image"]}
  return samples.once("caption_evaluation", compute)


def _caption_accuracy(config, generate) -> dict:
  """Text to image on captioned_shapes: how often each attribute a caption names (count, kind, colour, size,
  position) is what the attribute classifier sees in the picture generated from it, and all at once; beside
  the same on the captions' real pictures and the classifier's held-out accuracy (gans/metrics/
  caption_attributes.py)."""
  from gans.metrics import caption_attributes  # pylint: disable=import-outside-toplevel
  scored = _caption_evaluation(config, _as_samples(generate))
  return caption_attributes.caption_metrics(scored["generated"], scored["real"], scored["label"],
                                            scored["classifier_accuracy"])


def _caption_classifier_fid(config, generate) -> dict:
  """The Frechet distance between the attribute classifier's features of the pictures generated from held-out
  captions and of those captions' real pictures."""
  scored = _caption_evaluation(config, _as_samples(generate))
  return {"caption_classifier_fid": translation.feature_fid(scored["generated"]["features"],
                                                            scored["real"]["features"])}


def _caption_inception(config, generate) -> dict:
  """With config.eval.inception_weights: FID and KID (pool3) of the pictures generated from held-out captions
  against those captions' real pictures, and their Inception Score."""
  from gans.metrics import inception_score, kid  # pylint: disable=import-outside-toplevel
  samples = _as_samples(generate)
  scored = _caption_evaluation(config, samples)
  extractor, _ = _shared_inception_extractor(config, samples)
  outputs = {name: extractor(_in_batches(scored[f"{name}_images"], extractor.batch_size, f"Evaluation: Inception "
                                         f"features of the {name} pictures"))
             for name in ("generated", "real")}
  generated, real = outputs["generated"]["pool3"], outputs["real"]["pool3"]
  kid_mean, kid_std = kid.kernel_inception_distance(real, generated, eval_field(config, "kid_subsets"),
                                                    eval_field(config, "kid_subset_size"))
  score, score_std = inception_score.inception_score(outputs["generated"]["logits_unbiased"])
  return {"caption_fid": translation.feature_fid(generated, real), "caption_kid": kid_mean,
          "caption_kid_std": kid_std, "caption_is": score, "caption_is_std": score_std}


EVALUATORS["caption_accuracy"] = _caption_accuracy
EVALUATORS["caption_fid"] = _caption_inception
EVALUATORS["caption_classifier_fid"] = _caption_classifier_fid


def check_config(config) -> None:
  """Fails on unknown metric names and missing Inception weights: worth calling before training starts."""
  unknown = [name for name in config.eval.metrics if name not in EVALUATORS]
  if unknown:
    raise ValueError(f"Unknown metric {unknown[0]!r} in config.eval.metrics; valid: {', '.join(sorted(EVALUATORS))}.")
  if any(name in INCEPTION_METRICS for name in config.eval.metrics):
    inception_weights_path(config)


def evaluate(config, generate, encode: Callable | None = None, encode_at_init: Callable | None = None) -> dict:
  check_config(config)
  samples = Samples(generate, encode, encode_at_init)
  results = {}
  for name in config.eval.metrics:
    results.update(EVALUATORS[name](config, samples))
  return results


def _chunked_generate(setup, state, key: jax.Array) -> Callable[[int], np.ndarray]:
  """generate(n, **conditioning) in GENERATION_CHUNK pieces (chunk c on fold_in(key, c)), with progress over
  the samples; conditioning (label=k, code=k) goes to the variant's sampler."""
  def generate(n: int, **conditioning) -> np.ndarray:
    chunks = []
    with Progress(n, "Evaluation: generating samples") as progress:
      for index, start in enumerate(range(0, n, GENERATION_CHUNK)):
        size = min(GENERATION_CHUNK, n - start)
        chunks.append(setup.generate(state, size, jax.random.fold_in(key, index),
                                     **run.chunk_conditioning(conditioning, n, start, size)))
        progress.update(size)
    return np.concatenate(chunks)
  return generate


def evaluate_state(setup, state) -> dict:
  """The configured metrics of `state`'s generator (EMA weights when kept), on the evaluation stream."""
  key = run.stream_key(setup.config.seed, run.EVAL_STREAM)
  return evaluate(setup.config, _chunked_generate(setup, state, key), _bound_encoder(setup, lambda: state),
                  _bound_encoder(setup, setup.reinitialised_state))


def _bound_encoder(setup, state_fn: Callable) -> Callable | None:
  """The variant's encoder applied with the parameters of the state `state_fn()` gives (called on first use),
  jitted; None when the variant has none."""
  if setup.variant.encode is None:
    return None
  encode, bound = jax.jit(setup.variant.encode), {}

  def apply(batch):
    if not bound:
      state = state_fn()
      bound.update(params=steps.sampling_params(state), model_state=state.model_state)
    return jax.device_get(encode(bound["params"], bound["model_state"], batch))
  return apply


def evaluate_checkpoint(config, workdir: str) -> dict:
  """`--mode=eval`: evaluates the latest checkpoint in workdir and appends the results to eval.jsonl."""
  check_config(config)  # before restoring anything: a missing weights file is the first thing to hear about
  setup = run.Setup(config)
  _, state, _, step = setup.restore_latest(workdir, with_data=False)
  if step == 0:
    raise checkpoint.CheckpointError(f"No checkpoint in {workdir}/checkpoints; train first (--mode=train).")
  results = evaluate_state(setup, state)
  report.Reporter(workdir, config.train.steps, step).evaluation(step, results)
  return {"step": step, **results}
