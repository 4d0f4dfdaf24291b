"""gans.cpu_kernels: the C++ kernels equal XLA's forms (values, vmap, 4 devices, their own gradients), and are built."""
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import cpu_kernels, layers3d, winograd

needs_kernels = pytest.mark.skipif(not cpu_kernels.available(), reason="no C++ compiler to build gans.cpu_kernels")


def _operands(key, x_shape, y_grad_shape):
  x_key, g_key = jax.random.split(key)
  return jax.random.normal(x_key, x_shape), jax.random.normal(g_key, y_grad_shape)


def _assert_close(got, want):
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))))


def test_built_where_there_is_a_compiler():
  assert cpu_kernels.available() == (shutil.which(os.environ.get("CXX", "g++")) is not None)
  assert cpu_kernels.vector_lanes() in ((4, 8, 16) if cpu_kernels.available() else (0,))


# (x, y_grad) shapes: vectors from y_grad (16, 48 = 32 + a tail of 16 channels) or from x (32 > 16; 64 with 3 on
# the other side), scalar channels not a multiple of the register block (3, 20), taps 2x2x2, 3x1x2 and 1x1x1.
@needs_kernels
@pytest.mark.parametrize("x_shape, y_grad_shape", [((3, 3, 5, 4, 20), (3, 2, 4, 3, 16)),
                                                   ((2, 4, 3, 5, 3), (2, 2, 3, 4, 48)),
                                                   ((4, 3, 3, 3, 32), (4, 2, 2, 2, 16)),
                                                   ((1, 2, 6, 2, 64), (1, 2, 6, 2, 3))])
def test_kernel_grad_equals_xlas(x_shape, y_grad_shape):
  x, y_grad = _operands(jax.random.key(0), x_shape, y_grad_shape)
  assert cpu_kernels.conv_kernel_grad_applies(x, y_grad)
  got = jax.jit(cpu_kernels.conv_kernel_grad)(x, y_grad)
  want = cpu_kernels.conv_kernel_grad_lax(x, y_grad)
  assert got.shape == want.shape
  _assert_close(got, want)


@needs_kernels
def test_kernel_grad_is_the_convs_kernel_gradient():
  # The reference itself: the kernel's VJP of the stride-1 VALID conv.
  x, y_grad = _operands(jax.random.key(1), (2, 3, 4, 5, 16), (2, 2, 3, 4, 16))
  conv = lambda kernel: jax.lax.conv_general_dilated(x, kernel, (1, 1, 1), "VALID",
                                                     dimension_numbers=("NDHWC", "DHWIO", "NDHWC"))
  want = jax.vjp(conv, jnp.zeros((2, 2, 2, 16, 16)))[1](y_grad)[0]
  _assert_close(cpu_kernels.conv_kernel_grad(x, y_grad), want)


@needs_kernels
def test_kernel_grad_under_vmap_is_per_example():
  x, y_grad = _operands(jax.random.key(2), (3, 2, 3, 3, 4, 16), (3, 2, 2, 2, 3, 32))
  got = jax.jit(jax.vmap(cpu_kernels.conv_kernel_grad))(x, y_grad)
  for i in range(3):
    _assert_close(got[i], cpu_kernels.conv_kernel_grad_lax(x[i], y_grad[i]))


@needs_kernels
def test_kernel_grads_own_gradients_are_xlas():
  x, y_grad = _operands(jax.random.key(3), (2, 3, 3, 3, 16), (2, 2, 2, 2, 16))
  weights = jax.random.normal(jax.random.key(4), (2, 2, 2, 16, 16))
  loss = lambda kernel_grad: lambda x, g: jnp.sum(jnp.tanh(kernel_grad(x, g)) * weights)
  got = jax.grad(loss(cpu_kernels.conv_kernel_grad), argnums=(0, 1))(x, y_grad)
  want = jax.grad(loss(cpu_kernels.conv_kernel_grad_lax), argnums=(0, 1))(x, y_grad)
  for g, w in zip(got, want):
    _assert_close(g, w)


@needs_kernels
@pytest.mark.parametrize("shape, c_out", [((2, 3, 2, 9, 5), 16),  # 9 input columns: blocks of 8 and 1
                                          ((1, 2, 3, 6, 20), 48)])  # 32 + 16 output channels; 4 + 2 columns
@pytest.mark.parametrize("pack", [False, True])  # the kernel read in place / packed, its loops blocked
def test_conv_transpose3d_stride2_equals_xlas_and_has_its_gradients(  # pylint: disable=protected-access
    shape, c_out, pack, monkeypatch):
  # (Packed, 20 input channels: a pass over 16, then one adding the last 4 to its partial sums.)
  monkeypatch.setattr(cpu_kernels, "TRANSPOSED_PACK_MIN_FLOATS", 0 if pack else 1 << 30)
  x_key, k_key, w_key = jax.random.split(jax.random.key(9), 3)
  x = jax.random.normal(x_key, shape)
  kernel = jax.random.normal(k_key, (4, 4, 4, shape[-1], c_out))
  to_adjoint = lambda k: layers3d._flipped_adjoint(layers3d._space_to_depth_kernel(k.transpose(0, 1, 2, 4, 3)))
  adjoint_kernel = to_adjoint(kernel)
  x_padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))
  assert cpu_kernels.conv_transpose3d_stride2_applies(x_padded, adjoint_kernel)
  conv = lambda x_padded, k: cpu_kernels.conv_transpose3d_stride2(x_padded, k, lax_form)
  lax_form = lambda x_padded, k: layers3d.conv_transpose3d_lax(x_padded[:, 1:-1, 1:-1, 1:-1], scatter_kernel(k))
  scatter_kernel = lambda k: jax.vjp(to_adjoint, kernel)[1](k)[0]  # the inverse of a permutation
  want = layers3d.conv_transpose3d_lax(x, kernel)
  _assert_close(jax.jit(conv)(x_padded, adjoint_kernel), want)
  _assert_close(jax.jit(jax.vmap(conv))(x_padded[None], adjoint_kernel[None])[0], want)
  weights = jax.random.normal(w_key, want.shape)
  gradient = lambda f: jax.grad(lambda a, k: jnp.sum(jnp.tanh(f(a, k)) * weights), argnums=(0, 1))(
      x_padded, adjoint_kernel)
  for g, w in zip(gradient(conv), gradient(lax_form)):
    _assert_close(g, w)


def test_applies_only_where_the_kernels_can_run():
  x, y_grad = jnp.zeros((1, 3, 3, 3, 8)), jnp.zeros((1, 2, 2, 2, 24))
  assert not cpu_kernels.conv_kernel_grad_applies(x, y_grad)  # no multiple of 16 channels
  assert not cpu_kernels.conv_kernel_grad_applies(x.astype(jnp.bfloat16), jnp.zeros((1, 2, 2, 2, 16), jnp.bfloat16))
  assert not cpu_kernels.space_to_depth_padded_applies(jnp.zeros((1, 2, 3, 2, 16)))  # odd H
  assert not cpu_kernels.space_to_depth_padded_applies(jnp.zeros((1, 2, 2, 2, 8)))  # fewer than 16 channels
  assert not cpu_kernels.space_to_depth_padded_applies(jnp.zeros((1, 2, 2, 2, 16), jnp.bfloat16))
  assert not cpu_kernels.conv_transpose3d_stride2_applies(x, jnp.zeros((2, 2, 2, 8, 8 * 24)))  # 24 outputs


@needs_kernels
def test_kernel_grad_of_a_batch_split_over_four_devices():
  # The SPMD partitioner cannot split a custom call: it gathers the operands (so each device sums the whole
  # batch) and the result is the same.
  mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:4]), ("data",))
  split = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))
  x, y_grad = _operands(jax.random.key(5), (8, 3, 3, 3, 16), (8, 2, 2, 2, 16))
  got = jax.jit(cpu_kernels.conv_kernel_grad)(jax.device_put(x, split), jax.device_put(y_grad, split))
  _assert_close(got, cpu_kernels.conv_kernel_grad_lax(x, y_grad))


@needs_kernels
@pytest.mark.parametrize("shape", [(2, 4, 2, 6, 16), (1, 2, 2, 2, 32)])
def test_space_to_depth_padded_equals_xlas_and_has_its_gradient(shape):  # pylint: disable=protected-access
  x = jax.random.normal(jax.random.key(6), shape)
  assert cpu_kernels.space_to_depth_padded_applies(x)
  space_to_depth = lambda x: cpu_kernels.space_to_depth_padded(x, layers3d._pad_space_to_depth_lax)
  np.testing.assert_array_equal(jax.jit(space_to_depth)(x), layers3d._pad_space_to_depth_lax(x))
  np.testing.assert_array_equal(jax.jit(jax.vmap(space_to_depth))(x[None]), layers3d._pad_space_to_depth_lax(x)[None])
  weights = jax.random.normal(jax.random.key(7), layers3d._pad_space_to_depth_lax(x).shape)
  gradient = lambda f: jax.grad(lambda x: jnp.sum(jnp.sin(f(x)) * weights))(x)
  np.testing.assert_allclose(gradient(space_to_depth), gradient(layers3d._pad_space_to_depth_lax), rtol=1e-6)


@needs_kernels
@pytest.mark.parametrize("shape, c_out", [((2, 4, 6, 18, 3), 16),  # 9 positions along W: a block of 8 and 1
                                          ((1, 2, 2, 4, 16), 48)])  # 32 + 16 output channels
def test_conv3d_stride2_equals_xlas_and_has_its_gradients(shape, c_out):  # pylint: disable=protected-access
  x_key, k_key, w_key = jax.random.split(jax.random.key(8), 3)
  x = jax.random.normal(x_key, shape)
  kernel = jax.random.normal(k_key, (4, 4, 4, shape[-1], c_out))
  kernel_s2d = layers3d._space_to_depth_kernel(kernel)
  x_padded = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (1, 1), (0, 0)))
  assert cpu_kernels.conv3d_stride2_applies(x_padded, kernel_s2d)
  conv = lambda x_padded, k: cpu_kernels.conv3d_stride2(x_padded, k, lax_form)
  lax_form = lambda x_padded, k: layers3d.conv3d_lax(x_padded[:, 1:-1, 1:-1, 1:-1], layers3d_kernel(k))
  layers3d_kernel = lambda k: jax.vjp(layers3d._space_to_depth_kernel, kernel)[1](k)[0]  # its inverse: a permutation
  want = layers3d.conv3d_lax(x, kernel)
  _assert_close(jax.jit(conv)(x_padded, kernel_s2d), want)
  _assert_close(jax.jit(jax.vmap(conv))(x_padded[None], kernel_s2d[None])[0], want)
  weights = jax.random.normal(w_key, want.shape)
  gradient = lambda f: jax.grad(lambda a, k: jnp.sum(jnp.tanh(f(a, k)) * weights), argnums=(0, 1))(x_padded, kernel_s2d)
  for g, w in zip(gradient(conv), gradient(lax_form)):
    _assert_close(g, w)


# Every plan's two tile maps: the input transform (B^T, a x a) and the output transform's adjoint (A^T's
# transpose, a x m); H and W that leave ragged tiles (zeros beyond the edge), channels with a tail (3, 20).
@needs_kernels
@pytest.mark.parametrize("plan", [winograd.F4_2, winograd.F3_2, winograd.F2_2, winograd.F4_3],
                         ids=lambda p: f"F{p.m}_{p.r}")
@pytest.mark.parametrize("matrix_index", [2, 0], ids=["input", "output_adjoint"])
@pytest.mark.parametrize("shape", [(2, 9, 11, 16), (1, 7, 5, 3), (3, 5, 6, 20)])
def test_winograd_tiles_equal_xlas_and_have_their_gradients(plan, matrix_index, shape):  # pylint: disable=protected-access
  matrix = winograd.matrices(plan)[matrix_index]
  matrix = matrix if matrix_index == 2 else matrix.T
  reach = plan.r - 1 if matrix_index == 2 else 0  # the input transform's tiles overlap by r - 1
  t_h, t_w = (-(-(side - reach) // plan.m) for side in shape[1:3])
  x = jax.random.normal(jax.random.key(7), shape)
  assert cpu_kernels.winograd_tiles_applies(x, matrix)
  lax_form = lambda x: winograd._gather_2d_lax(x, t_h, t_w, matrix, plan)
  tiles = lambda x: cpu_kernels.winograd_tiles(x, matrix, plan.m, t_h, t_w, lax_form)
  got, want = jax.jit(tiles)(x), lax_form(x)
  assert got.shape == want.shape == (matrix.shape[0] ** 2, shape[0] * t_h * t_w, shape[3])
  _assert_close(got, want)
  pair = jnp.stack([x, -2 * x])
  _assert_close(jax.jit(jax.vmap(tiles))(pair), jax.vmap(lax_form)(pair))
  cotangent = jax.random.normal(jax.random.key(8), want.shape)
  _assert_close(jax.vjp(tiles, x)[1](cotangent)[0], jax.vjp(lax_form, x)[1](cotangent)[0])


def test_winograd_tiles_apply_only_to_the_plans_float32_maps():
  matrix = winograd.matrices(winograd.F4_2)[2]
  assert not cpu_kernels.winograd_tiles_applies(jnp.zeros((1, 5, 5, 16), jnp.bfloat16), matrix)
  assert not cpu_kernels.winograd_tiles_applies(jnp.zeros((1, 5, 5, 5, 16)), matrix)  # not NHWC
  assert not cpu_kernels.winograd_tiles_applies(jnp.zeros((1, 5, 5, 16)), matrix.T[:1])  # one row
  assert not cpu_kernels.winograd_tiles_applies(jnp.zeros((1, 8, 8, 16)), np.zeros((7, 7)))  # wider than F(4, 3)
