"""NVlabs StyleGAN2 state dicts <-> the Flax modules of networks.py.

The state dict is a flat dict of numpy arrays under the official names, prefixed "G/"
and "D/" (e.g. "G/synthesis.b8.conv0.weight", "D/b4.fc.weight"): what
`{f"G/{k}": v.numpy() for k, v in G.state_dict().items()}` gives for
training/networks_stylegan2.py. Every size (resolution, channels per resolution, mapping
depth and widths, z/w/c dims, cmap_dim, minibatch-std channels, architectures, resampling
filter) is read from the names and shapes. What shapes cannot tell comes as keyword
arguments with the official defaults: mbstd_group_size, conv_clamp and the mapping lr
multipliers.

Layouts: conv weights [out, in, kh, kw] <-> HWIO; dense weights [out, in] <-> [in, out];
const [C, H, W] <-> [H, W, C]; the discriminator's fc weight additionally reorders its
inputs from the official CHW flattening to HWC. Parameters stay raw (equalised lr), so a
converted model trains exactly like the official one.
"""
import re
from typing import Optional

import flax
import jax
import jax.numpy as jnp
import numpy as np

from gans.variants.stylegan2.layers import DEFAULT_RESAMPLE_TAPS, fir_filter_2d, taps_from_filter_2d
from gans.variants.stylegan2.networks import Discriminator, Generator, block_resolutions, num_ws_for

G_PREFIX = "G/"
D_PREFIX = "D/"
# Official Conv2dLayer / SynthesisLayer instances each register a resample_filter buffer,
# but only the resampling ones are handed the network's filter; the others keep the
# constructor default [1, 3, 3, 1], which they never use.
_RESAMPLING_LAYERS = {G_PREFIX: ("conv0", "skip"), D_PREFIX: ("conv1", "skip")}
_NON_RESAMPLING_LAYERS = {G_PREFIX: ("conv1",), D_PREFIX: ("conv0", "fromrgb", "conv")}
_BLOCK_NAME = re.compile(r"^b(\d+)$")


def _shape(state_dict, key):
  if key not in state_dict:
    raise KeyError(f"official state dict is missing {key!r}, needed to infer the architecture")
  return tuple(np.shape(state_dict[key]))


def _count_layers(state_dict, prefix):
  count = 0
  while f"{prefix}fc{count}.weight" in state_dict:
    count += 1
  if count == 0:
    raise KeyError(f"official state dict is missing {prefix + 'fc0.weight'!r}, needed to infer the mapping depth")
  return count


def _resample_taps(state_dict, prefix):
  """The 1-D taps behind the resample_filter buffers that resample; they must all agree."""
  filters = {}
  for key, value in state_dict.items():
    if key.startswith(prefix) and key.endswith(".resample_filter"):
      module = key[len(prefix):-len(".resample_filter")].split(".")
      if module[-1] in _RESAMPLING_LAYERS[prefix] or _is_block(prefix, module[-1]):
        filters[key] = np.asarray(value)
  if not filters:
    return DEFAULT_RESAMPLE_TAPS
  first_key = sorted(filters)[0]
  taps = taps_from_filter_2d(filters[first_key])
  if taps is None:
    raise ValueError(f"{first_key!r} is not a normalised separable FIR filter: {filters[first_key]}")
  reference = fir_filter_2d(taps)
  for key, value in filters.items():
    if value.shape != reference.shape or not np.allclose(value, reference, rtol=0, atol=1e-7):
      raise ValueError(f"{key!r} differs from {first_key!r}; one filter per network is supported")
  return taps


def _is_block(group_prefix, name):
  block = _BLOCK_NAME.match(name)
  # The discriminator's b4 is the epilogue, which registers no filter of its own.
  return block is not None and not (group_prefix == D_PREFIX and block.group(1) == "4")


def _mapping_config(state_dict, prefix):
  """Mapping-network sizes from '<prefix>embed.weight' and '<prefix>fc<i>.weight'."""
  num_layers = _count_layers(state_dict, prefix)
  embed_key = f"{prefix}embed.weight"
  c_dim, embed_features = (_shape(state_dict, embed_key)[::-1] if embed_key in state_dict else (0, 0))
  first_out, first_in = _shape(state_dict, f"{prefix}fc0.weight")
  w_dim = _shape(state_dict, f"{prefix}fc{num_layers - 1}.weight")[0]
  return dict(
    z_dim=first_in - embed_features, c_dim=c_dim, w_dim=w_dim, num_layers=num_layers,
    embed_features=embed_features if c_dim else None,
    layer_features=first_out if num_layers > 1 else None)


def infer_generator_config(state_dict) -> dict:
  """Generator constructor arguments (except conv_clamp and the lr multiplier) from names and shapes."""
  prefix = G_PREFIX
  pattern = re.compile(re.escape(prefix) + r"synthesis\.b(\d+)\.")
  found = sorted({int(m.group(1)) for k in state_dict for m in [pattern.match(k)] if m})
  if not found:
    raise KeyError(f"official state dict has no {prefix + 'synthesis.b<resolution>.*'!r} entries")
  img_resolution = found[-1]
  resolutions = block_resolutions(img_resolution)
  synthesis = f"{prefix}synthesis."
  channels = [_shape(state_dict, f"{synthesis}b4.const")[0]]
  channels += [_shape(state_dict, f"{synthesis}b{res}.conv1.weight")[0] for res in resolutions[1:]]
  if any(f"{synthesis}b{res}.skip.weight" in state_dict for res in resolutions[1:]):
    architecture = "resnet"
  elif len(resolutions) > 1 and f"{synthesis}b{resolutions[0]}.torgb.weight" in state_dict:
    architecture = "skip"
  else:
    architecture = "orig"
  mapping = _mapping_config(state_dict, f"{prefix}mapping.")
  return dict(
    z_dim=mapping["z_dim"], c_dim=mapping["c_dim"],
    w_dim=_shape(state_dict, f"{synthesis}b4.conv1.affine.weight")[1],
    img_resolution=img_resolution,
    img_channels=_shape(state_dict, f"{synthesis}b{img_resolution}.torgb.weight")[0],
    channels=tuple(int(c) for c in channels), architecture=architecture,
    mapping_layers=mapping["num_layers"], mapping_embed_features=mapping["embed_features"],
    mapping_layer_features=mapping["layer_features"], resample_taps=_resample_taps(state_dict, prefix))


def infer_discriminator_config(state_dict) -> dict:
  """Discriminator constructor arguments (except mbstd_group_size, conv_clamp, lr multiplier)."""
  prefix = D_PREFIX
  pattern = re.compile(re.escape(prefix) + r"b(\d+)\.")
  found = sorted({int(m.group(1)) for k in state_dict for m in [pattern.match(k)] if m})
  if not found:
    raise KeyError(f"official state dict has no {prefix + 'b<resolution>.*'!r} entries")
  img_resolution = found[-1]
  resolutions = block_resolutions(img_resolution)
  channels = [_shape(state_dict, f"{prefix}b4.conv.weight")[0]]
  channels += [_shape(state_dict, f"{prefix}b{res}.conv0.weight")[0] for res in resolutions[1:]]
  if f"{prefix}b{img_resolution}.skip.weight" in state_dict:
    architecture = "resnet"
  elif f"{prefix}b4.fromrgb.weight" in state_dict:
    architecture = "skip"
  else:
    architecture = "orig"
  config = dict(
    c_dim=0, img_resolution=img_resolution,
    img_channels=_shape(state_dict, f"{prefix}b{img_resolution}.fromrgb.weight")[1],
    channels=tuple(int(c) for c in channels), architecture=architecture,
    mbstd_num_channels=_shape(state_dict, f"{prefix}b4.conv.weight")[1] - channels[0],
    resample_taps=_resample_taps(state_dict, prefix))
  if f"{prefix}mapping.embed.weight" in state_dict:
    mapping = _mapping_config(state_dict, f"{prefix}mapping.")
    config.update(
      c_dim=mapping["c_dim"], cmap_dim=_shape(state_dict, f"{prefix}b4.out.weight")[0],
      mapping_layers=mapping["num_layers"], mapping_embed_features=mapping["embed_features"],
      mapping_layer_features=mapping["layer_features"])
  return config


# ----------------------------------------------------------------------------------------
# Per-array layouts. Both directions are defined together so they stay each other's inverse.


def _is_epilogue_fc(group_prefix, path):
  return group_prefix == D_PREFIX and tuple(path) == ("b4", "fc", "weight")


def _to_official_array(group_prefix, path, value):
  value = np.asarray(value)
  leaf = path[-1]
  if _is_epilogue_fc(group_prefix, path):
    in_features, out_features = value.shape
    channels = in_features // 16  # the epilogue always works at 4x4
    return value.reshape(4, 4, channels, out_features).transpose(3, 2, 0, 1).reshape(out_features, in_features)
  if leaf == "weight" and value.ndim == 4:
    return value.transpose(3, 2, 0, 1)
  if leaf == "weight" and value.ndim == 2:
    return value.T
  if leaf == "const":
    return value.transpose(2, 0, 1)
  return value


def _from_official_array(group_prefix, path, value):
  value = np.asarray(value, dtype=np.float32)
  leaf = path[-1]
  if _is_epilogue_fc(group_prefix, path):
    out_features, in_features = value.shape
    channels = in_features // 16
    return value.reshape(out_features, channels, 4, 4).transpose(2, 3, 1, 0).reshape(in_features, out_features)
  if leaf == "weight" and value.ndim == 4:
    return value.transpose(2, 3, 1, 0)
  if leaf == "weight" and value.ndim == 2:
    return value.T
  if leaf == "const":
    return value.transpose(1, 2, 0)
  return value


def _official_filters(group_prefix, variable_paths, resample_taps):
  """The resample_filter buffers the official modules register (no numeric effect here)."""
  modules = {path[:i] for path in variable_paths for i in range(1, len(path))}
  filters = {}
  for module in modules:
    name = group_prefix + ".".join(module) + ".resample_filter"
    if _is_block(group_prefix, module[-1]) or module[-1] in _RESAMPLING_LAYERS[group_prefix]:
      filters[name] = fir_filter_2d(resample_taps)
    elif module[-1] in _NON_RESAMPLING_LAYERS[group_prefix]:
      filters[name] = fir_filter_2d(DEFAULT_RESAMPLE_TAPS)
  return filters


def _group_to_official(group_prefix, variables, resample_taps):
  state_dict = {}
  paths = []
  for collection in ("params", "buffers"):
    for path, value in flax.traverse_util.flatten_dict(dict(variables.get(collection, {}))).items():
      paths.append(path)
      state_dict[group_prefix + ".".join(path)] = _to_official_array(group_prefix, path, value)
  state_dict.update(_official_filters(group_prefix, paths, resample_taps))
  return state_dict


def official_state_dict(generator=None, g_variables=None, w_avg=None, discriminator=None, d_variables=None):
  """The inverse of load_official: Flax variables -> official names, layouts and buffers."""
  state_dict = {}
  if generator is not None:
    state_dict.update(_group_to_official(G_PREFIX, g_variables, generator.resample_taps))
    state_dict[G_PREFIX + "mapping.w_avg"] = np.asarray(
      np.zeros((generator.w_dim,), np.float32) if w_avg is None else w_avg, np.float32)
  if discriminator is not None:
    state_dict.update(_group_to_official(D_PREFIX, d_variables, discriminator.resample_taps))
  return state_dict


# ----------------------------------------------------------------------------------------
# Loading.


def _abstract_variables(module, *example_inputs):
  return jax.eval_shape(lambda: module.init({"params": jax.random.key(0)}, *example_inputs))


def _check_against(state_dict, expected, group_prefix):
  """Strict like torch's load_state_dict: same names, same shapes; errors name the key."""
  present = {k for k in state_dict if k.startswith(group_prefix)}
  missing = sorted(set(expected) - present)
  if missing:
    raise KeyError(f"official state dict is missing {missing[0]!r} (expected shape {expected[missing[0]].shape})"
                   + (f" and {len(missing) - 1} more: {missing[1:6]}" if len(missing) > 1 else ""))
  unexpected = sorted(present - set(expected))
  if unexpected:
    raise KeyError(f"official state dict has unexpected key {unexpected[0]!r} for the inferred architecture"
                   + (f" (and {len(unexpected) - 1} more: {unexpected[1:6]})" if len(unexpected) > 1 else ""))
  for key in sorted(expected):
    got = tuple(np.shape(state_dict[key]))
    if got != expected[key].shape:
      raise ValueError(f"official state dict entry {key!r} has shape {got}, expected {expected[key].shape}")


def _load_group(state_dict, group_prefix, module, example_inputs):
  abstract = _abstract_variables(module, *example_inputs)
  zeros = jax.tree.map(lambda a: np.zeros(a.shape, np.float32), flax.core.unfreeze(abstract))
  expected = _group_to_official(group_prefix, zeros, module.resample_taps)
  if group_prefix == G_PREFIX:
    expected[G_PREFIX + "mapping.w_avg"] = np.zeros((module.w_dim,), np.float32)
  _check_against(state_dict, expected, group_prefix)
  variables = {}
  for collection, tree in zeros.items():
    flat = {path: jnp.asarray(_from_official_array(group_prefix, path, state_dict[group_prefix + ".".join(path)]))
            for path in flax.traverse_util.flatten_dict(tree)}
    variables[collection] = flax.traverse_util.unflatten_dict(flat)
  return variables


class OfficialStyleGAN2:
  """A converted official G/D pair; methods take and return NCHW like the official ones.

  Attributes: config (inferred constructor arguments), generator_module, g_variables
  ({"params", "buffers"}), w_avg, discriminator_module, d_variables ({"params"}); a
  trainer starts from g_variables["params"], d_variables["params"] and the buffers.
  """

  def __init__(self, config, generator_module, g_variables, w_avg, discriminator_module, d_variables):
    self.config = config
    self.generator_module = generator_module
    self.g_variables = g_variables
    self.w_avg = w_avg
    self.discriminator_module = discriminator_module
    self.d_variables = d_variables
    if generator_module is not None:
      self._map = jax.jit(
        lambda variables, z, c, w_avg, psi, cutoff: generator_module.apply(
          variables, z, c, w_avg, psi, cutoff, method=Generator.map),
        static_argnums=(4, 5))
      self._synthesize = jax.jit(
        lambda variables, ws, key, noise_mode, fused: generator_module.apply(
          variables, ws, noise_mode, fused, method=Generator.synthesize, rngs={"noise": key}),
        static_argnums=(3, 4))
    if discriminator_module is not None:
      self._discriminate = jax.jit(discriminator_module.apply)

  def _require(self, module, name):
    if module is None:
      raise ValueError(f"the state dict had no {name} entries")

  def mapping(self, z, c=None, truncation_psi=1.0, truncation_cutoff=None):
    """ws [N, num_ws, w_dim] from z [N, z_dim] (and labels c [N, c_dim])."""
    self._require(self.generator_module, "G/")
    return self._map(self.g_variables, jnp.asarray(z), None if c is None else jnp.asarray(c), self.w_avg,
                     float(truncation_psi), truncation_cutoff)

  def synthesis(self, ws, noise_mode="random", fused_modconv=None, key=None):
    """Images NCHW from ws; noise_mode 'random' draws its noise from `key` (no hidden global rng).

    fused_modconv=None: the faster form for the backend (layers.default_fused_modconv); both agree
    to float32 rounding.
    """
    self._require(self.generator_module, "G/")
    if noise_mode == "random" and key is None:
      raise ValueError("noise_mode='random' needs key=jax.random.key(...)")
    key = jax.random.key(0) if key is None else key  # unused unless noise_mode == 'random'
    img_NHWC = self._synthesize(self.g_variables, jnp.asarray(ws), key, noise_mode,
                                  None if fused_modconv is None else bool(fused_modconv))
    return jnp.transpose(img_NHWC, (0, 3, 1, 2))

  def discriminator(self, img, c=None):
    """Logits [N, 1] from images NCHW (and labels c)."""
    self._require(self.discriminator_module, "D/")
    img_NHWC = jnp.transpose(jnp.asarray(img), (0, 2, 3, 1))
    return self._discriminate(self.d_variables, img_NHWC, None if c is None else jnp.asarray(c))

  def state_dict(self):
    """Back to official names and layouts (round trip of load_official)."""
    return official_state_dict(self.generator_module, self.g_variables, self.w_avg,
                               self.discriminator_module, self.d_variables)


def load_official(state_dict, *, mbstd_group_size: Optional[int] = 4, conv_clamp: Optional[float] = 256,
                  mapping_lr_multiplier: float = 0.01, d_mapping_lr_multiplier: float = 0.01) -> OfficialStyleGAN2:
  """Builds the Flax G and D an official state dict describes and converts its weights.

  Either half may be absent (e.g. a G_ema-only dict). Keyword arguments are what the
  state dict cannot tell; their defaults are the official constructors'. conv_clamp
  (256 in the official defaults, None in configs built with conv_clamp=None) only acts
  where a conv output exceeds it. Raises KeyError/ValueError naming the offending key.
  """
  state_dict = {k: np.asarray(v) for k, v in state_dict.items()}
  config = {}
  generator = g_variables = w_avg = discriminator = d_variables = None
  if any(k.startswith(G_PREFIX) for k in state_dict):
    g_config = infer_generator_config(state_dict)
    g_config.update(mapping_lr_multiplier=mapping_lr_multiplier, conv_clamp=conv_clamp)
    generator = Generator(**g_config)
    z = jnp.zeros((1, g_config["z_dim"]), jnp.float32)
    c = jnp.zeros((1, g_config["c_dim"]), jnp.float32) if g_config["c_dim"] else None
    g_variables = _load_group(state_dict, G_PREFIX, generator, (z, c))
    w_avg = jnp.asarray(state_dict[G_PREFIX + "mapping.w_avg"], jnp.float32)
    config["generator"] = dict(g_config, num_ws=num_ws_for(g_config["img_resolution"]))
  if any(k.startswith(D_PREFIX) for k in state_dict):
    d_config = infer_discriminator_config(state_dict)
    d_config.update(mbstd_group_size=mbstd_group_size, conv_clamp=conv_clamp)
    if d_config["c_dim"]:
      d_config.update(mapping_lr_multiplier=d_mapping_lr_multiplier)
    discriminator = Discriminator(**d_config)
    resolution, channels = d_config["img_resolution"], d_config["img_channels"]
    img = jnp.zeros((1, resolution, resolution, channels), jnp.float32)
    c = jnp.zeros((1, d_config["c_dim"]), jnp.float32) if d_config["c_dim"] else None
    d_variables = _load_group(state_dict, D_PREFIX, discriminator, (img, c))
    config["discriminator"] = d_config
  if not config:
    raise KeyError(f"official state dict has no {G_PREFIX!r} or {D_PREFIX!r} entries")
  return OfficialStyleGAN2(config, generator, g_variables, w_avg, discriminator, d_variables)
