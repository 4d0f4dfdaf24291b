"""Evaluation metrics.

FID-family metrics follow pytorch-fid / StyleGAN2-ADA exactly:
  inception.py         the FID InceptionV3 in Flax (pool3 features, IS logits) and its input pipeline
  weights.py           pytorch-fid's .pth (read without torch, torch_pickle.py) -> Flax variables
  extract.py           batched, jitted, mesh-sharded feature extraction
  frechet.py           activation statistics and the Fréchet distance (FID)
  kid.py               Kernel Inception Distance
  inception_score.py   Inception Score
  precision_recall.py  improved precision and recall (k-NN manifolds)
  fid.py               command line: FID and KID between two folders / .npz files, cached statistics
  testing.py           the deterministic stand-in Inception weights of the test fixtures
  modes.py             mode coverage of 2D mixtures
  classifier.py        the project's own domain classifier: classifier FID, class coverage, stacked modes
  caption_attributes.py  captioned_shapes' attribute classifier: caption accuracy, caption classifier FID
  reference.py         statistics of an experiment's real data, computed once and cached
  eval_config.py       the config.eval fields and their defaults
  progress.py          progress over the samples of an evaluation

gans/evaluation.py runs the metrics an experiment configures, by name.

Submodules are imported where used, so importing one metric does not pull in the rest.
"""
