"""Official StackGAN-Pytorch state dicts and cfg values -> the Flax networks of networks.py.

    cfg = {"TEXT.DIMENSION": 1024, "GAN.CONDITION_DIM": 128, "Z_DIM": 100, "GAN.GF_DIM": 128, "GAN.R_NUM": 4}
    module, variables = load_official("STAGE2_G", state_dict, cfg)
    stage1_img, fake_NHWC, mu, logvar = module.apply(variables, embedding, z, train=False,
                                                     rngs={"noise": key})

`state_dict` maps the official names (e.g. "residual.0.block.1.running_mean", as in netG_epoch_600.pth) to
arrays; read a .pth without torch with gans.metrics.torch_pickle.load. `cfg` holds the official cfg values,
dotted ("GAN.GF_DIM") or nested as the official EasyDict ({"GAN": {"GF_DIM": 128}}, so the official `cfg`
object itself works); what it leaves out keeps config.py's default. The networks read TEXT.DIMENSION,
GAN.CONDITION_DIM, Z_DIM, GAN.GF_DIM, GAN.DF_DIM and GAN.R_NUM; config.py's other keys are accepted and
unused, and any other key is refused (a typo would otherwise silently keep a default).

Layouts: Linear.weight (out, in) -> kernel (in, out); Conv2d.weight (out, in, kh, kw) -> kernel
(kh, kw, in, out); BatchNorm weight/bias -> scale/bias, running_mean/running_var -> batch_stats mean/var;
num_batches_tracked is not needed. STAGE2_G's state dict holds its STAGE1_G's under "STAGE1_G."; the
official stage-II trainer starts from a stage-I state dict instead (cfg.STAGE1_G): `with_stage1` puts a
converted STAGE1_G into STAGE2_G variables.
"""
from collections.abc import Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gans.variants.image2image.convert import variables_from_state_dict
from gans.variants.text2image import networks

CLASSES = ("CA_NET", "STAGE1_G", "STAGE1_D", "STAGE2_G", "STAGE2_D")
# The cfg values model.py reads, with config.py's defaults.
NETWORK_CFG = {"TEXT.DIMENSION": 1024, "GAN.CONDITION_DIM": 128, "Z_DIM": 100, "GAN.GF_DIM": 128,
               "GAN.DF_DIM": 64, "GAN.R_NUM": 4}
# config.py's other keys: accepted, not read by the networks.
OTHER_CFG = ("DATASET_NAME", "EMBEDDING_TYPE", "CONFIG_NAME", "GPU_ID", "CUDA", "WORKERS", "NET_G", "NET_D",
             "STAGE1_G", "DATA_DIR", "VIS_COUNT", "IMSIZE", "STAGE", "TRAIN.FLAG", "TRAIN.BATCH_SIZE",
             "TRAIN.MAX_EPOCH", "TRAIN.SNAPSHOT_INTERVAL", "TRAIN.PRETRAINED_MODEL", "TRAIN.PRETRAINED_EPOCH",
             "TRAIN.LR_DECAY_EPOCH", "TRAIN.DISCRIMINATOR_LR", "TRAIN.GENERATOR_LR", "TRAIN.COEFF.KL")


def _flat(cfg: Mapping, prefix: str = "") -> dict:
  flat = {}
  for key, value in cfg.items():
    if isinstance(value, Mapping):
      flat.update(_flat(value, f"{prefix}{key}."))
    else:
      flat[prefix + key] = value
  return flat


def network_cfg(cfg: Mapping | None = None) -> dict:
  """The six cfg values the networks read, from official cfg values (dotted or nested), with defaults."""
  flat = _flat(cfg or {})
  unknown = sorted(k for k in flat if k not in NETWORK_CFG and k not in OTHER_CFG)
  if unknown:
    raise ValueError(f"Not an official StackGAN cfg key: {', '.join(map(repr, unknown))}; the networks read "
                     f"{', '.join(NETWORK_CFG)} (dotted, or nested as config.py's EasyDict).")
  values = {**NETWORK_CFG, **{k: v for k, v in flat.items() if k in NETWORK_CFG}}
  for key, value in values.items():
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
      raise ValueError(f"cfg {key} must be a positive integer, got {value!r}.")
  if values["GAN.GF_DIM"] % 4:
    raise ValueError(f"GAN.GF_DIM must be divisible by 4 (STAGE2_G's last upBlock has GF_DIM // 4 channels); "
                     f"got {values['GAN.GF_DIM']}.")
  return {k: int(v) for k, v in values.items()}


def build_official(class_name: str, cfg: Mapping | None = None, fast_layers: bool = True):
  """(module, init_fn) of the official class under `cfg`; init_fn(module) gives variables of fixture-free
  example inputs (batch 1, fixed zero eps)."""
  values = network_cfg(cfg)
  text_dim, c_dim, z_dim = values["TEXT.DIMENSION"], values["GAN.CONDITION_DIM"], values["Z_DIM"]
  text, z, eps = jnp.zeros((1, text_dim)), jnp.zeros((1, z_dim)), jnp.zeros((1, c_dim))
  key = jax.random.key(0)
  if class_name == "CA_NET":
    return networks.CANet(c_dim), lambda m: m.init(key, text, eps)
  if class_name == "STAGE1_G":
    module = networks.Stage1G(values["GAN.GF_DIM"], c_dim, fast_layers)
    return module, lambda m: m.init(key, text, z, train=False, eps=eps)
  if class_name == "STAGE2_G":
    module = networks.Stage2G(values["GAN.GF_DIM"], c_dim, values["GAN.R_NUM"], fast_layers)
    return module, lambda m: m.init(key, text, z, train=False, eps=eps, stage1_eps=eps)
  if class_name in networks.DISCRIMINATOR_SIDE:
    side = networks.DISCRIMINATOR_SIDE[class_name]
    module = (networks.Stage1D if class_name == "STAGE1_D" else networks.Stage2D)(values["GAN.DF_DIM"], c_dim,
                                                                                   fast_layers)
    return module, lambda m: m.init(key, jnp.zeros((1, side, side, 3)), eps, train=False)
  raise ValueError(f"Unknown official class {class_name!r}; valid: {', '.join(CLASSES)}.")


def _converted(path, value: np.ndarray) -> np.ndarray:
  if path[-1] != "kernel":
    return value
  return value.T if value.ndim == 2 else value.transpose(2, 3, 1, 0)


def convert_state_dict(module: nn.Module, init_fn, state_dict, prefix: str = "") -> dict:
  """Flax variables of `module` from the official `state_dict` (keys under `prefix`); strict both ways."""
  return variables_from_state_dict(jax.eval_shape(lambda: init_fn(module)), state_dict, prefix,
                                   type(module).__name__, _converted, "the cfg values")


def load_official(class_name: str, state_dict, cfg: Mapping | None = None, prefix: str = "",
                  fast_layers: bool = True) -> tuple[nn.Module, dict]:
  """(module, variables) of the official `class_name` ("CA_NET", "STAGE1_G", "STAGE1_D", "STAGE2_G",
  "STAGE2_D") under the official `cfg` values, holding `state_dict`.

  `prefix` is stripped from the keys ("module." for weights saved from DataParallel). `fast_layers=False`
  builds the same network on XLA's own convolution operator.
  """
  module, init_fn = build_official(class_name, cfg, fast_layers)
  return module, convert_state_dict(module, init_fn, state_dict, prefix)


def with_stage1(stage2_variables: dict, stage1_variables: dict) -> dict:
  """STAGE2_G variables whose inner STAGE1_G is `stage1_variables` (netG.STAGE1_G.load_state_dict)."""
  replaced = {}
  for collection, tree in stage2_variables.items():
    if "STAGE1_G" not in tree or collection not in stage1_variables:
      raise ValueError(f"Expected STAGE2_G and STAGE1_G variables, each with a {collection!r} collection "
                       f"(the first holding 'STAGE1_G').")
    replaced[collection] = {**tree, "STAGE1_G": stage1_variables[collection]}
  return replaced
