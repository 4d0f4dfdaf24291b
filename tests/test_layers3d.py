"""The 3D-GAN's fast 3D convolutions equal lax's (values and both gradients)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gans import cpu_kernels, layers3d


def _vjp_all(fn, x, kernel, cotangent_key):
  y, vjp = jax.vjp(fn, x, kernel)
  cotangent = jax.random.normal(cotangent_key, y.shape)
  return (y,) + vjp(cotangent)


# (C_in, C_out) chosen so the forward pass and both gradients unroll each side's depth taps (the side with fewer
# channels) in both layers: after the space-to-depth the conv has 8 C_in inputs and C_out outputs, the
# transposed conv C_in and 8 C_out.
# cpu_kernels: the kernel gradients, the space-to-depth, the strided and the transposed convs by gans.cpu_kernels
# (True) or XLA (False).
@pytest.mark.parametrize("cpu_kernels_on", [False, True])
@pytest.mark.parametrize("phases_max_side", [0, 64])  # the transposed sub-voxel conv: one conv / by phases
@pytest.mark.parametrize("channels", [(16, 1), (1, 16)])
@pytest.mark.parametrize("transposed", [False, True])
def test_fast_form_equals_lax_values_and_gradients(channels, transposed, phases_max_side, cpu_kernels_on,
                                                   monkeypatch):
  monkeypatch.setattr(layers3d, "PHASES_MAX_SIDE", phases_max_side)
  monkeypatch.setattr(layers3d, "CPU_KERNEL_GRAD_MAX_CHANNELS", 128 * 128 if cpu_kernels_on else 0)
  monkeypatch.setattr(layers3d, "CPU_SPACE_TO_DEPTH", cpu_kernels_on)
  monkeypatch.setattr(layers3d, "CPU_CONV_MAX_CHANNELS", 32 * 64 if cpu_kernels_on else 0)
  monkeypatch.setattr(layers3d, "CPU_TRANSPOSED_MAX_CHANNELS", 32 * 64 if cpu_kernels_on else 0)
  c_in, c_out = channels
  keys = jax.random.split(jax.random.key(0), 3)
  x = jax.random.normal(keys[0], (2, 4, 2, 6, c_in))
  kernel = jax.random.normal(keys[1], (4, 4, 4, c_in, c_out))
  fast, plain = ((layers3d.conv_transpose3d, layers3d.conv_transpose3d_lax) if transposed
                 else (layers3d.conv3d, layers3d.conv3d_lax))
  fast_vjp = lambda a, k: _vjp_all(lambda a, k: fast(a, k, form="space_to_depth"), a, k, keys[2])
  got = fast_vjp(x, kernel)
  want = _vjp_all(plain, x, kernel, keys[2])
  hlo = jax.jit(fast_vjp).lower(x, kernel).as_text()
  assert ("gans_conv_kernel_grad" in hlo) == (cpu_kernels_on and cpu_kernels.available())
  # The space-to-depth (of x, or of the transposed conv's output gradient) by C++ from 16 channels.
  wide = (c_out if transposed else c_in) >= 16
  assert ("gans_space_to_depth_padded" in hlo) == (cpu_kernels_on and cpu_kernels.available() and wide)
  # By C++ to a multiple of 16 channels: the strided conv (conv3d's forward, conv_transpose3d's input gradient)
  # and the transposed conv (conv_transpose3d's forward, conv3d's input gradient).
  strided_out, transposed_out = (c_in, c_out) if transposed else (c_out, c_in)
  assert ("gans_conv3d_stride2" in hlo) == (cpu_kernels_on and cpu_kernels.available() and strided_out % 16 == 0)
  assert ("gans_conv_transpose3d_stride2" in hlo) == (
      cpu_kernels_on and cpu_kernels.available() and transposed_out % 16 == 0)
  assert got[0].shape == want[0].shape == ((2, 8, 4, 12, c_out) if transposed else (2, 2, 1, 3, c_out))
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(w))))


def test_transposed_conv_is_the_adjoint_of_the_conv():
  # <conv3d(y, K^T), x> = <y, conv_transpose3d(x, K)> for the same scatter-form kernel K.
  keys = jax.random.split(jax.random.key(1), 3)
  x = jax.random.normal(keys[0], (1, 2, 2, 2, 3))
  y = jax.random.normal(keys[1], (1, 4, 4, 4, 2))
  kernel = jax.random.normal(keys[2], (4, 4, 4, 3, 2))
  left = jnp.vdot(layers3d.conv3d(y, kernel.transpose(0, 1, 2, 4, 3), form="space_to_depth"), x)
  right = jnp.vdot(y, layers3d.conv_transpose3d(x, kernel, form="space_to_depth"))
  np.testing.assert_allclose(left, right, rtol=1e-5)


def test_subvoxel_by_phases_equals_the_cropped_subvoxel_conv():
  # Each of the 8 output phases (channel block r of the adjoint kernel) lands where depth-to-space puts it.
  keys = jax.random.split(jax.random.key(3), 2)
  x = jax.random.normal(keys[0], (2, 3, 2, 4, 5))
  adjoint_kernel = jax.random.normal(keys[1], (2, 2, 2, 5, 8 * 3))
  cropped = layers3d.depth_to_space_3d(
      layers3d.conv_stride1_3d(x, adjoint_kernel, ((1, 1),) * 3))[:, 1:-1, 1:-1, 1:-1]
  by_phases = layers3d._subvoxel_cropped(x, adjoint_kernel, None)  # pylint: disable=protected-access
  assert by_phases.shape == cropped.shape == (2, 6, 4, 8, 3)
  np.testing.assert_allclose(by_phases, cropped, rtol=1e-5, atol=1e-5 * float(jnp.max(jnp.abs(cropped))))


def test_bad_shapes_are_refused_with_the_reason():
  with pytest.raises(ValueError, match="4x4x4 kernels"):
    layers3d.conv3d(jnp.zeros((1, 4, 4, 4, 1)), jnp.zeros((3, 3, 3, 1, 1)))
  with pytest.raises(ValueError, match="even D, H, W"):
    layers3d.conv3d(jnp.zeros((1, 5, 4, 4, 1)), jnp.zeros((4, 4, 4, 1, 1)))
  with pytest.raises(ValueError, match="Unknown 3D conv form 'winograd'"):
    layers3d.conv3d(jnp.zeros((1, 4, 4, 4, 1)), jnp.zeros((4, 4, 4, 1, 1)), form="winograd")


@pytest.mark.parametrize("c_in,c_out", [(5, 3), (3, 5)])  # the "shifted_smaller" forms shift either side
@pytest.mark.parametrize("padding", [0, 1])
def test_kernel_gradient_forms_of_the_benchmark_equal_lax(padding, c_in, c_out):
  # benchmarks/conv3d_kernel_grad.py times these forms against each other: they must compute the same thing.
  from benchmarks import conv3d_kernel_grad  # pylint: disable=import-outside-toplevel
  keys = jax.random.split(jax.random.key(2), 2)
  pads = ((padding, padding),) * 3
  x = jax.random.normal(keys[0], (2, 3, 4, 3, c_in))
  y_grad = jax.random.normal(keys[1], (2, 2 + 2 * padding, 3 + 2 * padding, 2 + 2 * padding, c_out))
  want = conv3d_kernel_grad.lax_kernel_grad(x, y_grad, pads)
  assert want.shape == (2, 2, 2, c_in, c_out)
  for form, fn in conv3d_kernel_grad.FORMS.items():
    np.testing.assert_allclose(fn(x, y_grad, pads), want, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(want))),
                               err_msg=form)


def _record_winograd_plans(monkeypatch) -> list:
  """The plans of the depth-taps convs that take Winograd, appended as they are traced; the thresholds lowered so
  small channel counts and grids qualify."""
  monkeypatch.setattr(layers3d, "WINOGRAD_MIN_CHANNELS", 1)
  monkeypatch.setattr(layers3d.layers, "WINOGRAD_MIN_GRID_PIXELS", 1)
  plans = []
  correlate = layers3d.winograd.correlate
  monkeypatch.setattr(layers3d.winograd, "correlate", lambda *a: plans.append(a[2]) or correlate(*a))
  return plans


@pytest.mark.parametrize("transposed", [False, True])
@pytest.mark.parametrize("side,plan", [(4, "F4_2"), (8, "F3_2")])
def test_winograd_depth_taps_equal_lax_values_and_gradients(transposed, side, plan, monkeypatch):
  # Output sides of 4 (conv3d's forward and kernel gradient, conv_transpose3d's input gradient) take F(4, 2);
  # at 8^3 the transposed sub-voxel conv's 9x9 outputs (conv_transpose3d's forward, conv3d's input gradient)
  # take F(3, 2). The thresholds lowered so these small channel counts and grids qualify.
  plans = _record_winograd_plans(monkeypatch)
  keys = jax.random.split(jax.random.key(3), 3)
  x = jax.random.normal(keys[0], (2, side, side, side, 3) if transposed else (2, 2 * side, 2 * side, 2 * side, 3))
  kernel = jax.random.normal(keys[1], (4, 4, 4, 3, 5))
  fast, plain = ((layers3d.conv_transpose3d, layers3d.conv_transpose3d_lax) if transposed
                 else (layers3d.conv3d, layers3d.conv3d_lax))
  got = _vjp_all(lambda a, k: fast(a, k, form="space_to_depth"), x, kernel, keys[2])
  assert getattr(layers3d.winograd, plan) in plans, f"no depth-taps conv took Winograd's {plan}"
  want = _vjp_all(plain, x, kernel, keys[2])
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(w))))


@pytest.mark.parametrize("kernel_grad_limit, takes_winograd", [(2.0, True), (1.9, False)])
def test_only_the_kernel_gradient_takes_winograd_at_side_17(kernel_grad_limit, takes_winograd, monkeypatch):
  # conv_transpose3d at 16^3: the sub-voxel conv's 17x17 outputs need 1.99 products per output in F(3, 2), above
  # WINOGRAD_MAX_PRODUCTS_PER_OUTPUT (the forward keeps XLA's conv) and within the kernel gradient's limit.
  monkeypatch.setattr(layers3d, "WINOGRAD_KERNEL_GRAD_MAX_PRODUCTS_PER_OUTPUT", kernel_grad_limit)
  plans = _record_winograd_plans(monkeypatch)
  keys = jax.random.split(jax.random.key(4), 3)
  x, kernel = jax.random.normal(keys[0], (1, 16, 16, 16, 3)), jax.random.normal(keys[1], (4, 4, 4, 3, 5))
  jax.eval_shape(lambda a, k: layers3d.conv_transpose3d(a, k, form="space_to_depth"), x, kernel)
  assert plans == []  # the forward
  got = _vjp_all(lambda a, k: layers3d.conv_transpose3d(a, k, form="space_to_depth"), x, kernel, keys[2])
  assert (layers3d.winograd.F3_2 in plans) == takes_winograd
  want = _vjp_all(layers3d.conv_transpose3d_lax, x, kernel, keys[2])
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(w))))
