"""Inception Score (Salimans et al. 2016): exp E_x KL(p(y|x) || p(y)), over splits."""
import numpy as np
import scipy.special


def inception_score(logits_NK: np.ndarray, num_splits: int = 10) -> tuple[float, float]:
  """(mean, std) of the score over `num_splits` contiguous splits of the samples.

  logits_NK: the classifier's logits; for the standard score these are the FID
  Inception's "logits_unbiased" (pool3 @ fc weights, no bias), over all 1008
  classes. Split i holds samples [i N / S, (i + 1) N / S), as in StyleGAN2-ADA.
  """
  log_p = scipy.special.log_softmax(np.asarray(logits_NK, np.float64), axis=1)
  n = len(log_p)
  if n < num_splits:
    raise ValueError(f"Need at least {num_splits} samples for {num_splits} splits, got {n}")
  scores = []
  for i in range(num_splits):
    split = log_p[i * n // num_splits:(i + 1) * n // num_splits]
    log_marginal = scipy.special.logsumexp(split, axis=0) - np.log(len(split))  # log mean_x p(y|x)
    kl = np.sum(np.exp(split) * (split - log_marginal), axis=1)
    scores.append(np.exp(np.mean(kl)))
  return float(np.mean(scores)), float(np.std(scores))
