"""Captioned shapes' attribute classifier and the text-to-image metrics: scoring in closed form, a tiny
classifier that beats chance, fake samplers (the captions' real pictures, shuffled pictures), eval.jsonl."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from gans import evaluation, report, run
from gans.data import captions
from gans.metrics import caption_attributes, eval_config
from gans.state import GanVariant

RESOLUTION = 32
SHAPES = ml_collections.ConfigDict({"source": "captioned_shapes", "resolution": RESOLUTION, "channels": 3,
                                    "max_shapes": 2, "captions_per_picture": 3})
NUM_CAPTIONS = 200


def label(*shapes):
  """int32[9] of (kind, colour, size, position) tuples, as captioned_shapes writes it."""
  fields = [len(shapes)] + [value for shape in shapes for value in shape] + [-1] * 4 * (2 - len(shapes))
  return np.array(fields, np.int32)


# ----------------------------------------------------------------------------- scoring in closed form

def test_attribute_accuracy_counts_the_shapes_the_caption_names():
  target = np.stack([label((0, 1, 2, 3)),  # one shape
                     label((0, 1, 2, 0), (4, 4, 0, 8)),  # two shapes
                     label((1, 1, 1, 1), (2, 2, 2, 2))])
  predicted = np.stack([label((0, 1, 0, 3)),  # size wrong
                        label((0, 1, 2, 0), (4, 3, 0, 8)),  # second shape's colour wrong
                        label((1, 1, 1, 1))])  # the second shape missing: wrong in every attribute and count
  accuracy = caption_attributes.attribute_accuracy(predicted, target)
  # 5 named shapes; the third picture's second shape is missing.
  assert accuracy == pytest.approx({"count": 2 / 3, "kind": 4 / 5, "colour": 3 / 5, "size": 3 / 5,
                                    "position": 4 / 5, "all": 0.0})
  assert caption_attributes.attribute_accuracy(target, target) == {name: 1.0 for name in caption_attributes.SCORES}


def test_an_extra_predicted_shape_costs_count_and_all_but_not_the_named_shape():
  target = label((2, 3, 1, 4))[None]
  predicted = label((2, 3, 1, 4), (0, 0, 0, 8))[None]
  assert caption_attributes.attribute_accuracy(predicted, target) == {
      "count": 0.0, "kind": 1.0, "colour": 1.0, "size": 1.0, "position": 1.0, "all": 0.0}


def test_predicted_labels_read_the_heads_and_drop_slot_one_of_single_shapes():
  wanted = np.stack([label((4, 0, 2, 6)), label((1, 2, 0, 0), (3, 4, 1, 7))])
  outputs = {}
  for index, name in enumerate(captions.LABEL_FIELDS):
    classes = caption_attributes.HEADS[name]
    target = wanted[:, index] - 1 if name == "count" else wanted[:, index]
    outputs[name] = np.where(np.arange(classes) == np.maximum(target, 0)[:, None], 3.0, 0.0)
  outputs["kind_1"][0] = np.eye(5)[2]  # slot 1 of a one-shape prediction says something; it is dropped
  np.testing.assert_array_equal(caption_attributes.predicted_labels(outputs), wanted)


def test_bad_label_shapes_and_sources_are_refused():
  with pytest.raises(ValueError, match=r"\[N, 9\]"):
    caption_attributes.attribute_accuracy(np.zeros((3, 5)), np.zeros((3, 5)))
  with pytest.raises(ValueError, match="data.source=captioned_shapes"):
    caption_attributes.heldout_captions(ml_collections.ConfigDict({"source": "digits"}), 4)


# ----------------------------------------------------------------------------- a tiny classifier

@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
  """A classifier trained on 1200 pictures at 32x32 for 400 steps, stored where evaluation looks for it."""
  cache = str(tmp_path_factory.mktemp("cache"))
  trained = caption_attributes.train_for(SHAPES, num_train=1200, num_heldout=300, steps=400)
  caption_attributes.save(caption_attributes.classifier_file(SHAPES, cache), trained["variables"],
                          trained["heldout_accuracy"])
  return {**trained, "cache": cache}


# Chance for a classifier that knows nothing: the most frequent answer per attribute (uniform attributes; the
# count is 1 or 2 with equal probability).
CHANCE = {"count": 0.5, "kind": 0.2, "colour": 0.2, "size": 1 / 3, "position": 1 / 9}


def test_tiny_classifier_beats_chance_clearly_on_held_out_pictures(tiny):
  accuracy = tiny["heldout_accuracy"]
  assert set(accuracy) == set(caption_attributes.SCORES)
  for name, chance in CHANCE.items():
    assert accuracy[name] > chance + 0.2, (name, accuracy)
  # The held-out pictures are not the training pictures: different seeds.
  train_images, _ = caption_attributes.read_pictures(
      caption_attributes.shapes_config(SHAPES, caption_attributes.TRAIN_SYNTH_SEED, 50))
  heldout_images, _ = caption_attributes.read_pictures(
      caption_attributes.shapes_config(SHAPES, caption_attributes.HELDOUT_SYNTH_SEED, 50))
  assert not {image.tobytes() for image in train_images} & {image.tobytes() for image in heldout_images}


def caption_config(cache: str, metrics=eval_config.CAPTION_METRICS):
  config = ml_collections.ConfigDict({"data": SHAPES.to_dict(), "eval": eval_config.eval_config(
      metrics, num_samples=NUM_CAPTIONS, batch_size=40, cache_dir=cache).to_dict()})
  config.data.caption_length = 160
  return config


def real_picture_sampler(config):
  """A "generator" that returns the real picture of each caption it is given."""
  examples = caption_attributes.heldout_captions(config.data, config.eval.num_samples)
  calls = []

  def generate(n, **conditioning):
    calls.append(sorted(conditioning))
    pictures = {}  # caption -> its pictures in order (two pictures may share a caption)
    for caption, image in zip(examples["caption"], examples["image"]):
      pictures.setdefault(caption.tobytes(), []).append(image)
    return np.stack([pictures[caption.tobytes()].pop(0) for caption in conditioning["caption"][:n]])
  return generate, examples, calls


def test_pictures_of_the_captions_score_the_classifiers_real_accuracy_and_zero_fid(tiny, tmp_path):
  config = caption_config(tiny["cache"])
  generate, examples, calls = real_picture_sampler(config)
  results = evaluation.evaluate(config, generate)
  assert calls == [["caption"]]  # one generation, shared by both metrics, conditioned on the captions
  assert results["caption_count"] == NUM_CAPTIONS
  for name in caption_attributes.SCORES:
    assert results[f"caption_accuracy/{name}"] == results[f"caption_accuracy_real/{name}"]
    assert results[f"caption_classifier_accuracy/{name}"] == pytest.approx(tiny["heldout_accuracy"][name])
  direct = caption_attributes.heldout_accuracy(tiny["variables"], examples["image"], examples["label"])
  assert {name: results[f"caption_accuracy_real/{name}"] for name in direct} == pytest.approx(direct)
  assert abs(results["caption_classifier_fid"]) < 1e-3
  # What the trainer writes every eval_every steps.
  report.Reporter(str(tmp_path), total_steps=10).evaluation(5, results)
  with open(tmp_path / "eval.jsonl") as f:
    written = json.loads(f.readline())
  assert {"caption_accuracy/all", "caption_accuracy_real/kind", "caption_classifier_accuracy/position",
          "caption_classifier_fid", "caption_count"} <= set(written)


def test_shuffled_pictures_score_near_chance_and_a_large_fid(tiny):
  config = caption_config(tiny["cache"])
  generate, _, _ = real_picture_sampler(config)
  shuffled = lambda n, caption: generate(n, caption=np.roll(caption, 1, axis=0))  # each caption, another's picture
  results = evaluation.evaluate(config, shuffled)
  for name, chance in CHANCE.items():
    assert results[f"caption_accuracy/{name}"] < chance + 0.12, (name, results)
    assert results[f"caption_accuracy/{name}"] < results[f"caption_accuracy_real/{name}"] - 0.15
  assert results["caption_accuracy/all"] < 0.05
  # The shuffled set is the same set of pictures: its classifier FID is still ~0; FID does not see captions.
  assert abs(results["caption_classifier_fid"]) < 1e-3
  noise = evaluation.evaluate(config, lambda n, caption: np.random.default_rng(0).uniform(
      -1, 1, (n, RESOLUTION, RESOLUTION, 3)).astype(np.float32))
  assert noise["caption_classifier_fid"] > 1.0


# ----------------------------------------------------------------------------- the contract and registration

def test_metrics_are_registered_and_refuse_data_without_shape_captions(tiny):
  assert set(eval_config.CAPTION_METRICS) <= set(evaluation.EVALUATORS)
  config = caption_config(tiny["cache"], ("caption_accuracy",))
  evaluation.check_config(config)
  unconditional = _caption_variant(())
  with pytest.raises(run.ConditioningError, match="text-conditional variant .* takes no caption"):
    evaluation.evaluate(config, lambda n, **conditioning: run.check_conditioning(unconditional, conditioning))
  config.data.source = "digits"
  with pytest.raises(ValueError, match="captioned_shapes"):
    evaluation.evaluate(config, lambda n, **conditioning: np.zeros((n, RESOLUTION, RESOLUTION, 3), np.float32))


def _caption_variant(conditioning):
  """A variant whose sampler paints each picture the grey of its caption's first character: what a
  text-conditional variant declares (GanVariant.conditioning = ("caption",)) to be evaluated."""
  def sample(params, model_state, key, n, caption=None):
    del model_state, key
    grey = jnp.zeros((n,)) if caption is None else caption[:, 0].astype(jnp.float32) / len(captions.ALPHABET)
    return jnp.broadcast_to(grey[:, None, None, None] * params["g"], (n, 4, 4, 3))
  return GanVariant(init=lambda key: ({"g": jnp.ones(())}, {}), phases=(), sample=sample, conditioning=conditioning)


def test_per_caption_conditioning_goes_through_the_existing_sampler_contract_in_chunks():
  captions_NL = np.stack([captions.encode_caption(text, 40) for text in ("a red circle", "blue box", "zebra")] * 3)
  variant = _caption_variant(("caption",))
  pictures = run.generate(variant, {"g": jnp.ones(())}, {}, jax.random.key(0), 9, batch_size=4, caption=captions_NL)
  np.testing.assert_allclose(pictures[:, 0, 0, 0], captions_NL[:, 0] / len(captions.ALPHABET), rtol=1e-6)
  with pytest.raises(run.ConditioningError, match="takes no caption"):
    run.generate(_caption_variant(()), {"g": jnp.ones(())}, {}, jax.random.key(0), 2, caption=captions_NL[:2])


def toy_inception(variables, images_NHWC):
  """A cheap stand-in for the FID Inception: 4x4 average-pooled pixels as "pool3", their first 10 as logits."""
  pooled = jax.image.resize(images_NHWC, (images_NHWC.shape[0], 4, 4, 3), "linear").reshape(-1, 48)
  features = pooled * variables["scale"]
  return {"pool3": features, "logits_unbiased": features[:, :10]}


def test_caption_fid_compares_pictures_of_the_captions_with_their_real_pictures(tiny, tmp_path, monkeypatch):
  from gans.metrics import extract, fid, frechet, inception_score  # pylint: disable=import-outside-toplevel
  toy = extract.FeatureExtractor({"scale": np.float32(3.0)}, batch_size=40, mesh=fid.data_mesh(), forward=toy_inception)
  monkeypatch.setattr(evaluation, "_inception_extractor", lambda config, with_logits: (toy, "toy"))
  config = caption_config(tiny["cache"], ("caption_fid",))
  config.eval.update(inception_weights=str(tmp_path / "weights.pth"), kid_subsets=5)
  with pytest.raises(evaluation.MissingInceptionWeightsError, match="caption_fid"):
    evaluation.check_config(config)
  (tmp_path / "weights.pth").write_bytes(b"")  # exists, so the weights check passes; the toy network is used
  noise = np.random.default_rng(1).uniform(-1, 1, (NUM_CAPTIONS, RESOLUTION, RESOLUTION, 3)).astype(np.float32)
  results = evaluation.evaluate(config, lambda n, caption: noise[:n])
  assert set(results) == {"caption_fid", "caption_kid", "caption_kid_std", "caption_is", "caption_is_std"}
  real = caption_attributes.heldout_captions(config.data, NUM_CAPTIONS)["image"]
  features = lambda images: np.asarray(toy_inception({"scale": 3.0}, images)["pool3"])
  expected = frechet.frechet_distance(*frechet.activation_statistics(features(real)),
                                      *frechet.activation_statistics(features(noise)))
  assert results["caption_fid"] == pytest.approx(expected, rel=1e-5)
  assert results["caption_is"] == pytest.approx(inception_score.inception_score(features(noise)[:, :10])[0], rel=1e-5)


def test_the_trainers_chunked_generation_carries_one_caption_per_picture(tiny, monkeypatch):
  """evaluate_state's path: generation in chunks (here of 64), each chunk given its slice of the captions."""
  variant = _caption_variant(("caption",))
  seen = []

  class Setup:
    def generate(self, state, n, key, **conditioning):
      seen.append(conditioning["caption"])
      return run.generate(variant, state, {}, key, n, **conditioning)

  monkeypatch.setattr(evaluation, "GENERATION_CHUNK", 64)
  config = caption_config(tiny["cache"])
  # pylint: disable-next=protected-access
  generate = evaluation._chunked_generate(Setup(), {"g": jnp.ones(())}, jax.random.key(0))
  results = evaluation.evaluate(config, generate)
  assert [len(part) for part in seen] == [64, 64, 64, 8]
  wanted = caption_attributes.heldout_captions(config.data, NUM_CAPTIONS)["caption"]
  np.testing.assert_array_equal(np.concatenate(seen), wanted)
  assert results["caption_count"] == NUM_CAPTIONS
