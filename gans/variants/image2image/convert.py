"""Official pix2pix/CycleGAN state dicts -> the Flax networks of networks.py.

    module, variables = load_official("UnetGenerator", state_dict, input_nc=3, output_nc=3, num_downs=8,
                                      ngf=64, norm="batch", use_dropout=True)
    fake_NHWC = module.apply(variables, real_NHWC, train=False)

`state_dict` maps the official names (e.g. "model.model.1.model.2.running_mean", as saved in
latest_net_G_A.pth) to arrays; read a .pth without torch with gans.metrics.torch_pickle.load. The keyword
arguments are the official constructors' (norm_layer given as get_norm_layer's name, "batch" or
"instance"); what the state dict cannot tell (use_dropout, padding_type) keeps the official default.

Layouts: Conv2d.weight (out, in, kh, kw) -> kernel (kh, kw, in, out); ConvTranspose2d.weight (in, out, kh, kw)
-> gans.layers' scatter-form kernel (kh, kw, in, out) (no flip: layers.ConvTranspose has PyTorch's
semantics, padding crops the full output, output_padding extends it), stored (in, kh, kw, out) in the U-Net's
layers (layers.ConvTransposeIHWO, the layout of its fast form); BatchNorm weight/bias -> scale/bias,
running_mean/running_var -> batch_stats mean/var; num_batches_tracked is not needed.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from gans import layers
from gans.variants.image2image import networks

CLASSES = ("UnetGenerator", "ResnetGenerator", "NLayerDiscriminator", "PixelDiscriminator")
_FLAX_TO_TORCH_LEAF = {"kernel": "weight", "scale": "weight", "bias": "bias", "mean": "running_mean",
                       "var": "running_var"}


def build_official(class_name: str, *, input_nc: int = 3, output_nc: int = 3, ngf: int = 64, ndf: int = 64,
                   num_downs: int = 8, n_layers: int = 3, n_blocks: int = 6, use_dropout: bool = False,
                   padding_type: str = "reflect", norm: str | None = None, norm_layer: str | None = None,
                   fast_layers: bool = True) -> tuple[nn.Module, tuple[int, ...]]:
  """The module the official constructor call builds, and an input shape (1, H, W, input_nc) it accepts.

  Defaults are the official constructors' (norm: BatchNorm2d, as their default norm_layer).
  """
  if norm is not None and norm_layer is not None and norm != norm_layer:
    raise ValueError(f"Give the norm once: norm={norm!r} and norm_layer={norm_layer!r} differ.")
  norm = norm or norm_layer or "batch"
  networks.check_norm(norm)
  if class_name == "UnetGenerator":
    module, side = networks.UnetGenerator(output_nc, num_downs, ngf, norm, use_dropout, fast_layers), 2 ** num_downs
  elif class_name == "ResnetGenerator":
    module = networks.ResnetGenerator(output_nc, ngf, norm, use_dropout, n_blocks, padding_type, fast_layers)
    side = 8
  elif class_name == "NLayerDiscriminator":
    module, side = networks.NLayerDiscriminator(ndf, n_layers, norm, fast_layers), 2 ** (n_layers + 3)
  elif class_name == "PixelDiscriminator":
    module, side = networks.PixelDiscriminator(ndf, norm, fast_layers), 4
  else:
    raise ValueError(f"Unknown official class {class_name!r}; valid: {', '.join(CLASSES)}.")
  return module, (1, side, side, input_nc)


def _transposed_conv_paths(module: nn.Module, input_shape) -> tuple[dict, dict]:
  """({path of each transposed conv: its kernel stored (in, kh, kw, out)?}, variable shapes) of `module`, found
  by tracing its init."""
  paths = {}

  def record(next_fn, args, kwargs, context):
    if isinstance(context.module, layers.ConvTransposeIHWO):
      paths[tuple(context.module.path)] = True
    elif type(context.module).__name__.endswith("ConvTranspose"):
      paths[tuple(context.module.path)] = getattr(context.module, "ihwo", False)
    return next_fn(*args, **kwargs)

  with nn.intercept_methods(record):
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(input_shape), train=False))
  return paths, shapes


def torch_name(path: tuple[str, ...]) -> str:
  """A Flax variable path (without the collection) -> its official state-dict name."""
  parts = [".".join(part.rsplit("_", 1)) if part.rsplit("_", 1)[-1].isdigit() else part for part in path[:-1]]
  return ".".join(parts + [_FLAX_TO_TORCH_LEAF[path[-1]]])


def _converted(path, value: np.ndarray, transposed: bool, ihwo: bool = False) -> np.ndarray:
  if path[-1] != "kernel":
    return value
  if transposed:
    return value.transpose(0, 2, 3, 1) if ihwo else value.transpose(2, 3, 0, 1)
  return value.transpose(2, 3, 1, 0)


def variables_from_state_dict(shapes: dict, state_dict, prefix: str, network: str, convert,
                              arguments: str) -> dict:
  """Flax variables of the shapes `shapes` (init's tree, "intermediates" skipped) from an official state dict
  (keys under `prefix`), each named by `torch_name` and laid out by convert(path, array); strict both ways.

  Shared by the official pix2pix/CycleGAN and StackGAN converters; `network` and `arguments` (what the user
  gave to build it) word the errors.
  """
  state_dict = {k[len(prefix):]: np.asarray(v) for k, v in state_dict.items() if k.startswith(prefix)}
  flat, used = {}, set()
  for (collection, *path), shape in traverse_util.flatten_dict(shapes).items():
    if collection == "intermediates":
      continue
    path = tuple(path)
    name = torch_name(path)
    if name not in state_dict:
      raise KeyError(f"The state dict has no {prefix + name!r}, which this {network} needs: check the class, the "
                     f"prefix and {arguments} (they must be the ones the weights were trained with).")
    value = convert(path, state_dict[name])
    if value.shape != shape.shape:
      raise ValueError(f"{prefix + name}: shape {state_dict[name].shape} does not fit this network (needs "
                       f"{shape.shape} after conversion); check {arguments}.")
    flat[(collection,) + path] = jnp.asarray(value, jnp.float32)
    used.add(name)
  unused = sorted(k for k in state_dict if k not in used and not k.endswith("num_batches_tracked"))
  if unused:
    raise ValueError(f"The state dict has entries this network does not use, e.g. {prefix + unused[0]!r} "
                     f"({len(unused)} in all): check the class, the prefix and {arguments}.")
  return traverse_util.unflatten_dict(flat)


def convert_state_dict(module: nn.Module, input_shape, state_dict, prefix: str = "") -> dict:
  """Flax variables of `module` from the official `state_dict` (keys under `prefix`); strict both ways."""
  transposed_paths, shapes = _transposed_conv_paths(module, input_shape)
  return variables_from_state_dict(
      shapes, state_dict, prefix, type(module).__name__,
      lambda path, value: _converted(path, value, path[:-1] in transposed_paths,
                                     transposed_paths.get(path[:-1], False)), "the constructor arguments")


def load_official(class_name: str, state_dict, prefix: str = "", **official_kwargs) -> tuple[nn.Module, dict]:
  """(module, variables) of the official `class_name` built with `official_kwargs`, holding `state_dict`.

  `prefix` is stripped from the keys ("module." for weights saved from DataParallel). `fast_layers=False`
  builds the same network on XLA's own convolution operators.
  """
  module, input_shape = build_official(class_name, **official_kwargs)
  return module, convert_state_dict(module, input_shape, state_dict, prefix)


def official_state_dict(variables: dict) -> dict:
  """The inverse mapping's names only: Flax variable path -> official name (for inspection and export)."""
  return {"/".join(path): torch_name(path[1:]) for path in traverse_util.flatten_dict(variables)}
