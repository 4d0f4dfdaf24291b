"""`config.eval` of image experiments: every field the evaluators read, so each can be overridden.

Imports only ml_collections, so experiments stay quick to load (launch.py --list).
The metric names are the keys of gans.evaluation.EVALUATORS.
"""
import ml_collections

CLASSIFIER_METRICS = ("classifier_fid", "class_coverage")  # no download: the project's own classifier
INCEPTION_METRICS = ("fid", "kid")
# Text to image on captioned_shapes: the variant samples from caption char ids (gans/metrics/caption_attributes.py)
CAPTION_METRICS = ("caption_accuracy", "caption_classifier_fid")  # plus "caption_fid" with inception_weights  # need pytorch-fid's Inception weights (inception_weights)


def eval_config(metrics: tuple = (), num_samples: int = 2500, **overrides) -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict({
      "metrics": tuple(metrics),  # names in gans.evaluation.EVALUATORS
      "num_samples": num_samples,  # generated samples per evaluation
      "num_reference": 0,  # real images for the reference statistics; 0 = the whole data source
      "batch_size": 200,  # images per jitted feature call, split over the devices
      "cache_dir": "",  # reference statistics and classifiers; "" = $XDG_CACHE_HOME/gans or ~/.cache/gans
      "inception_weights": "",  # pytorch-fid's pt_inception-2015-12-05-6726825d.pth (fid, kid, is, precision_recall)
      "kid_subsets": 100,  # KID: subsets averaged, as StyleGAN2-ADA's kid50k
      "kid_subset_size": 1000,  # KID: samples per subset (fewer when a set is smaller)
  })
  config.update(overrides)
  return config
