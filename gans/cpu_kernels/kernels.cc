// The 3D-GAN's layout-bound operations as XLA:CPU FFI handlers (gans/cpu_kernels/__init__.py builds, registers
// and calls them), each on float32 operands that may carry leading batch dimensions (vmap):
//
// * gans_conv_kernel_grad: the kernel gradient of a stride-1 VALID 3D convolution on NDHWC operands,
//
//     kernel[a, b, c, i, o] = sum over n, d, h, w of x[n, d + a, h + b, w + c, i] * y_grad[n, d, h, w, o].
//
//   XLA:CPU computes it as a convolution whose operands it first transposes (batch to channels), and those
//   untiled transposes cost as much as the convolution itself (README, 3D-GAN). Here both operands are read in
//   place: each (tap, block of i, block of o) keeps its block of the kernel in registers while it runs over the
//   positions, one channel of one operand broadcast against vectors of the other. x (N, Dp, Hp, Wp, I),
//   y_grad (N, Do, Ho, Wo, O), kernel (Dp - Do + 1, Hp - Ho + 1, Wp - Wo + 1, I, O); the vector side (y_grad's
//   channels, or x's when `vectors_from_x`) has a multiple of 16 channels.
//
// * gans_conv3d_stride2: PyTorch's Conv3d(k=4, s=2, p=1) on an input padded beforehand, (N, 2D + 2, 2H + 2,
//   2W + 2, C) -> (N, D, H, W, O), with the kernel in layers3d's space-to-depth layout (2, 2, 2, 8C, O): tap
//   (a, b, c) of the 4x4x4 kernel is block ((a % 2) * 4 + (b % 2) * 2 + c % 2) of tap (a / 2, b / 2, c / 2).
//   Read in place: no space-to-depth copy, no depth-tap copies; per output row a block of up to 8 positions
//   along W by 2 vectors of output channels in registers, over the 64 taps and C. O is a multiple of 16.
//
// * gans_conv_transpose3d_stride2: PyTorch's ConvTranspose3d(k=4, s=2, p=1) on an input padded beforehand,
//   (N, D + 2, H + 2, W + 2, C) -> (N, 2D, 2H, 2W, O), by output phases: output 2m + q along an axis is the
//   2-tap sum of padded inputs m + q + t (t = 0, 1) with the 4x4x4 kernel's index 3 - q - 2t. The kernel is in
//   layers3d's adjoint layout (2, 2, 2, C, 8 O). No sub-voxel conv over the border, depth-to-space or crop; per
//   output row both phases along W of a block of positions by 1 or 2 vectors of output channels in registers.
//   With `pack` (wide layers) the kernel is first repacked so the inner loop reads it in order, and the rows
//   run in tiles of one phase, 16 input channels at a time, so the kernel's slice stays in L1. O is a multiple
//   of 16.
//
// * gans_space_to_depth_padded: (N, 2D, 2H, 2W, C) padded by one zero voxel on every side, then 2x2x2
//   space-to-depth: (N, D + 1, H + 1, W + 1, 8C), channels ordered (depth offset, row offset, column offset, c).
//   XLA:CPU writes this as one loop over the output with the index arithmetic per element (3 ns per element on
//   one core); here it is a copy of C-float runs, as fast as XLA's elementwise copy for C >= 16 (for C = 1 it
//   is 4x slower than XLA's loop: gans/cpu_kernels/__init__.py keeps XLA's there).
//
// * gans_winograd_tiles: Winograd's tiles of an NHWC map (gans/winograd.py's input transform and its output
//   transform's adjoint), (N, H, W, C) -> (R * R, N * TH * TW, C), the R x S matrix applied to each S x S tile's
//   rows and columns in one pass, 16 channels at a time. XLA:CPU writes it as two concatenation loops (rows,
//   then columns), each a pass over memory with the slices' index arithmetic per element.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// One vector register of floats, and the kernel rows per block: kRows x 2 vector accumulators, a few registers
// left for the operands. (A vector wider than the machine's is expanded piecewise through memory by the
// compiler: a 16-float vector without AVX-512 ran 50-200x slower.)
#if defined(__AVX512F__)
constexpr int kLanes = 16, kRows = 8;  // 16 of 32 registers
#elif defined(__AVX__)
constexpr int kLanes = 8, kRows = 6;  // 12 of 16
#else
constexpr int kLanes = 4, kRows = 4;  // SSE, NEON
#endif
typedef float Vec __attribute__((vector_size(kLanes * sizeof(float))));
constexpr int64_t kChunkPositions = 1024;  // positions per pass over the kernel: operands stay in L2

struct Problem {
  int64_t n, dp, hp, wp, ci, dout, ho, wo, co, kd, kh, kw;
  bool vectors_from_x;
  int64_t scalar_channels() const { return vectors_from_x ? co : ci; }
  int64_t vector_channels() const { return vectors_from_x ? ci : co; }
};

inline Vec load(const float* p) { Vec v; std::memcpy(&v, p, sizeof(Vec)); return v; }

// A run of output rows (row = (n * dout + d) * ho + h): where each row's input starts at tap (0, 0, 0), and
// y_grad's first row (consecutive rows are contiguous there).
struct Rows {
  const int64_t* x_offsets;
  int64_t count;
  const float* y_grad;
};

// Adds to `tap` (I x O) the block of ROWS scalar channels from s0 by NV * 16 vector channels from v0, summed
// over the rows' positions; x_tap is x shifted to the tap.
template <int ROWS, int NV>
void Block(const Problem& p, const float* x_tap, const Rows& rows, float* tap, int64_t s0, int64_t v0) {
  Vec acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = Vec{};
  const int64_t s_stride = p.vectors_from_x ? p.co : p.ci, v_stride = p.vectors_from_x ? p.ci : p.co;
  for (int64_t k = 0; k < rows.count; ++k) {
    const float* x_row = x_tap + rows.x_offsets[k];
    const float* g_row = rows.y_grad + k * p.wo * p.co;
    const float* s_row = (p.vectors_from_x ? g_row : x_row) + s0;
    const float* v_row = (p.vectors_from_x ? x_row : g_row) + v0;
    for (int64_t w = 0; w < p.wo; ++w) {
      Vec v[NV];
      for (int j = 0; j < NV; ++j) v[j] = load(v_row + w * v_stride + j * kLanes);
      for (int r = 0; r < ROWS; ++r) {
        const float s = s_row[w * s_stride + r];
        for (int j = 0; j < NV; ++j) acc[r][j] += s * v[j];
      }
    }
  }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j)
      for (int l = 0; l < kLanes; ++l) {
        const int64_t s = s0 + r, v = v0 + j * kLanes + l;
        tap[p.vectors_from_x ? v * p.co + s : s * p.co + v] += acc[r][j][l];
      }
}

// Block<rows, NV> for 1 <= rows <= kRows (the last block of scalar channels may be narrower).
template <int NV, int R = kRows>
void BlockRows(int rows, const Problem& p, const float* x_tap, const Rows& run, float* tap, int64_t s0,
               int64_t v0) {
  if (rows == R) return Block<R, NV>(p, x_tap, run, tap, s0, v0);
  if constexpr (R > 1) BlockRows<NV, R - 1>(rows, p, x_tap, run, tap, s0, v0);
}

// The whole kernel's sum over output rows [row0, row1), added to `kernel`, in chunks that stay in L2.
void AddRows(const Problem& p, const float* x, const float* y_grad, float* kernel, int64_t row0, int64_t row1) {
  const int64_t chunk_rows = std::max<int64_t>(1, kChunkPositions / p.wo);
  std::vector<int64_t> x_offsets(chunk_rows);
  for (int64_t c0 = row0; c0 < row1; c0 += chunk_rows) {
    const Rows run{x_offsets.data(), std::min(row1, c0 + chunk_rows) - c0, y_grad + c0 * p.wo * p.co};
    for (int64_t k = 0; k < run.count; ++k) {
      const int64_t row = c0 + k, h = row % p.ho, d = row / p.ho % p.dout, n = row / p.ho / p.dout;
      x_offsets[k] = ((n * p.dp + d) * p.hp + h) * p.wp * p.ci;
    }
    for (int64_t t = 0; t < p.kd * p.kh * p.kw; ++t) {
      const int64_t a = t / (p.kh * p.kw), b = t / p.kw % p.kh, c = t % p.kw;
      const float* x_tap = x + ((a * p.hp + b) * p.wp + c) * p.ci;
      float* tap = kernel + t * p.ci * p.co;
      for (int64_t s0 = 0; s0 < p.scalar_channels(); s0 += kRows) {
        const int rows = static_cast<int>(std::min<int64_t>(kRows, p.scalar_channels() - s0));
        int64_t v0 = 0;
        for (; v0 + 2 * kLanes <= p.vector_channels(); v0 += 2 * kLanes)
          BlockRows<2>(rows, p, x_tap, run, tap, s0, v0);
        // The vector side has a multiple of 16 channels, so at most one vector is left.
        if (v0 < p.vector_channels()) BlockRows<1>(rows, p, x_tap, run, tap, s0, v0);
      }
    }
  }
}

// Runs fn(0), ..., fn(parts - 1) on XLA's intra-op threads and the calling one. Parts are claimed from a shared
// counter, so the calling thread finishes them alone if the pool is busy (no thread waits on a task that has
// not started), and a task that starts after the last part was claimed touches nothing but the counters.
template <typename F>
void ParallelFor(ffi::ThreadPool& pool, int64_t parts, const F& fn) {
  struct Counters {
    std::atomic<int64_t> next{0}, done{0};
  };
  auto counters = std::make_shared<Counters>();
  auto work = [counters, &fn, parts]() {
    for (int64_t i; (i = counters->next.fetch_add(1)) < parts;) {
      fn(i);
      counters->done.fetch_add(1, std::memory_order_release);
    }
  };
  for (int64_t i = 1; i < parts; ++i) pool.Schedule(decltype(work)(work));
  work();
  while (counters->done.load(std::memory_order_acquire) < parts) std::this_thread::yield();
}

int64_t Parts(ffi::ThreadPool& pool, int64_t rows) {
  return std::max<int64_t>(1, std::min<int64_t>(pool.num_threads(), rows));
}

// Splits the rows over the threads, each part summing into its own copy of the kernel.
void KernelGrad(const Problem& p, const float* x, const float* y_grad, float* kernel, ffi::ThreadPool& pool) {
  const int64_t kernel_size = p.kd * p.kh * p.kw * p.ci * p.co, rows = p.n * p.dout * p.ho;
  const int64_t parts = Parts(pool, rows);
  std::vector<std::vector<float>> partial(parts);
  for (int64_t i = 1; i < parts; ++i) partial[i].assign(kernel_size, 0.0f);
  std::memset(kernel, 0, sizeof(float) * kernel_size);
  ParallelFor(pool, parts, [&](int64_t i) {
    AddRows(p, x, y_grad, i == 0 ? kernel : partial[i].data(), rows * i / parts, rows * (i + 1) / parts);
  });
  for (int64_t i = 1; i < parts; ++i)
    for (int64_t k = 0; k < kernel_size; ++k) kernel[k] += partial[i][k];
}

ffi::Error ConvKernelGrad(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer y_grad,
                          ffi::Result<ffi::AnyBuffer> kernel, bool vectors_from_x) {
  const auto xd = x.dimensions(), gd = y_grad.dimensions(), kdims = kernel->dimensions();
  const size_t rank = xd.size();
  if (rank < 5 || gd.size() != rank || kdims.size() != rank || x.element_type() != ffi::F32 ||
      y_grad.element_type() != ffi::F32 || kernel->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("conv_kernel_grad: float32 operands of equal rank >= 5 expected");
  int64_t batch = 1;
  for (size_t d = 0; d + 5 < rank; ++d) batch *= xd[d];
  const size_t r = rank - 5;
  const Problem p{xd[r],     xd[r + 1], xd[r + 2], xd[r + 3], xd[r + 4], gd[r + 1], gd[r + 2],
                  gd[r + 3], gd[r + 4], kdims[r], kdims[r + 1], kdims[r + 2], vectors_from_x};
  const float* x_data = static_cast<const float*>(x.untyped_data());
  const float* g_data = static_cast<const float*>(y_grad.untyped_data());
  float* k_data = static_cast<float*>(kernel->untyped_data());
  for (int64_t i = 0; i < batch; ++i)
    KernelGrad(p, x_data + i * p.n * p.dp * p.hp * p.wp * p.ci, g_data + i * p.n * p.dout * p.ho * p.wo * p.co,
               k_data + i * p.kd * p.kh * p.kw * p.ci * p.co, pool);
  return ffi::Error::Success();
}

// Adds tap by tap into registers: ROWS output positions (w0, w0 + 1, ...) of row (n, d, h) by NV vectors of
// output channels from o0; `x_row0` is the padded input at (n, 2d, 2h, 0).
template <int ROWS, int NV>
void ConvBlock(const float* x_row0, const float* kernel, float* y, int64_t hp, int64_t wp, int64_t c, int64_t o,
               int64_t w0, int64_t o0) {
  Vec acc[ROWS][NV];
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j) acc[r][j] = Vec{};
  for (int a = 0; a < 4; ++a)
    for (int b = 0; b < 4; ++b)
      for (int cc = 0; cc < 4; ++cc) {
        const int64_t block = ((a / 2) * 2 + b / 2) * 2 + cc / 2, offset = ((a % 2) * 2 + b % 2) * 2 + cc % 2;
        const float* k = kernel + (block * 8 + offset) * c * o + o0;
        const float* x = x_row0 + ((a * hp + b) * wp + 2 * w0 + cc) * c;
        for (int64_t i = 0; i < c; ++i) {
          Vec kv[NV];
          for (int j = 0; j < NV; ++j) kv[j] = load(k + i * o + j * kLanes);
          for (int r = 0; r < ROWS; ++r) {
            const float s = x[2 * r * c + i];
            for (int j = 0; j < NV; ++j) acc[r][j] += s * kv[j];
          }
        }
      }
  for (int r = 0; r < ROWS; ++r)
    for (int j = 0; j < NV; ++j) std::memcpy(y + (w0 + r) * o + o0 + j * kLanes, &acc[r][j], sizeof(Vec));
}

template <int NV, int R = 8>
void ConvBlockRows(int rows, const float* x_row0, const float* kernel, float* y, int64_t hp, int64_t wp,
                   int64_t c, int64_t o, int64_t w0, int64_t o0) {
  if (rows == R) return ConvBlock<R, NV>(x_row0, kernel, y, hp, wp, c, o, w0, o0);
  if constexpr (R > 1) ConvBlockRows<NV, R - 1>(rows, x_row0, kernel, y, hp, wp, c, o, w0, o0);
}

ffi::Error Conv3dStride2(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer kernel,
                         ffi::Result<ffi::AnyBuffer> y) {
  const auto xd = x.dimensions(), kd = kernel.dimensions(), yd = y->dimensions();
  const size_t rank = xd.size(), k_rank = kd.size();
  if (rank < 5 || yd.size() != rank || k_rank < 5 || x.element_type() != ffi::F32 ||
      kernel.element_type() != ffi::F32 || y->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("conv3d_stride2: float32 operands expected");
  int64_t batch = 1;  // vmap's leading dimensions, on all three
  for (size_t d = 0; d + 5 < rank; ++d) batch *= xd[d];
  const size_t r = rank - 5;
  const int64_t n = xd[r], dp = xd[r + 1], hp = xd[r + 2], wp = xd[r + 3], c = xd[r + 4];
  const int64_t dy = yd[r + 1], hy = yd[r + 2], wy = yd[r + 3], o = yd[r + 4];
  const float* x_data = static_cast<const float*>(x.untyped_data());
  const float* k_data = static_cast<const float*>(kernel.untyped_data());
  float* y_data = static_cast<float*>(y->untyped_data());
  const int64_t rows = batch * n * dy * hy, parts = Parts(pool, rows);
  ParallelFor(pool, parts, [&](int64_t part) {
    for (int64_t row = rows * part / parts; row < rows * (part + 1) / parts; ++row) {
      const int64_t h = row % hy, d = row / hy % dy, bn = row / hy / dy, example = bn / n;
      const float* x_row0 = x_data + ((bn * dp + 2 * d) * hp + 2 * h) * wp * c;
      const float* k = k_data + example * 64 * c * o;
      float* y_row = y_data + row * wy * o;
      for (int64_t o0 = 0; o0 < o; o0 += 2 * kLanes)
        for (int64_t w0 = 0; w0 < wy; w0 += 8) {
          const int positions = static_cast<int>(std::min<int64_t>(8, wy - w0));
          if (o - o0 >= 2 * kLanes) {
            ConvBlockRows<2>(positions, x_row0, k, y_row, hp, wp, c, o, w0, o0);
          } else {
            for (int64_t v0 = o0; v0 < o; v0 += kLanes)
              ConvBlockRows<1>(positions, x_row0, k, y_row, hp, wp, c, o, w0, v0);
          }
        }
    }
  });
  return ffi::Error::Success();
}

// Where TransposedBlock finds the kernel's vectors for one phase (qd, qh) and block of output channels: tap
// (td, th), input channel i, phase qw, tap tw at base + (2 td + th) tap_stride + i i_stride + qw q_stride +
// tw tw_stride. Views of the adjoint layout itself and of `PackTransposed`'s.
struct KernelView {
  const float* base;
  int64_t tap_stride, i_stride, q_stride, tw_stride;
};

// Adds tap by tap into registers: the output positions 2 (m0 + p) + qw, p < P, of both phases qw along W, of one
// output row, by NV vectors of output channels. Both phases read the input columns m0 + u, u <= P + 1 (phase qw,
// tap tw reads column m0 + p + qw + tw), so each input value is broadcast once for up to 4 FMAs. `x_row0` is the
// padded input at the row's first tap, (n, md + qd, mh + qh, 0); `kernel` the view of the row's phase and block of
// output channels.
template <int P, int NV>
void TransposedBlock(const float* x_row0, const KernelView& kernel, float* y_row, int64_t hp, int64_t wp, int64_t c,
                     int64_t o, int64_t m0, int64_t o0, int64_t i0, int64_t i1) {
  Vec acc[2][P][NV];
  for (int q = 0; q < 2; ++q)
    for (int p = 0; p < P; ++p)
      for (int j = 0; j < NV; ++j)
        acc[q][p][j] = i0 == 0 ? Vec{} : load(y_row + (2 * (m0 + p) + q) * o + o0 + j * kLanes);
  for (int td = 0; td < 2; ++td)
    for (int th = 0; th < 2; ++th) {
      const float* k = kernel.base + (td * 2 + th) * kernel.tap_stride + i0 * kernel.i_stride;
      const float* x = x_row0 + ((td * hp + th) * wp + m0) * c;
      for (int64_t i = i0; i < i1; ++i, k += kernel.i_stride) {
        Vec kv[2][2][NV];
        for (int q = 0; q < 2; ++q)
          for (int tw = 0; tw < 2; ++tw)
            for (int j = 0; j < NV; ++j)
              kv[q][tw][j] = load(k + q * kernel.q_stride + tw * kernel.tw_stride + j * kLanes);
        for (int u = 0; u < P + 2; ++u) {
          const float s = x[u * c + i];
          for (int q = 0; q < 2; ++q)
            for (int tw = 0; tw < 2; ++tw) {
              const int p = u - q - tw;
              if (p >= 0 && p < P)
                for (int j = 0; j < NV; ++j) acc[q][p][j] += s * kv[q][tw][j];
            }
        }
      }
    }
  for (int p = 0; p < P; ++p)
    for (int q = 0; q < 2; ++q)
      for (int j = 0; j < NV; ++j)
        std::memcpy(y_row + (2 * (m0 + p) + q) * o + o0 + j * kLanes, &acc[q][p][j], sizeof(Vec));
}

// TransposedBlock<positions, NV> for 1 <= positions <= P.
template <int NV, int P>
void TransposedBlockPositions(int positions, const float* x_row0, const KernelView& kernel, float* y_row, int64_t hp,
                              int64_t wp, int64_t c, int64_t o, int64_t m0, int64_t o0, int64_t i0, int64_t i1) {
  if (positions == P) return TransposedBlock<P, NV>(x_row0, kernel, y_row, hp, wp, c, o, m0, o0, i0, i1);
  if constexpr (P > 1)
    TransposedBlockPositions<NV, P - 1>(positions, x_row0, kernel, y_row, hp, wp, c, o, m0, o0, i0, i1);
}

// The transposed conv's blocking where its caller asks for it (`pack`; cpu_kernels.TRANSPOSED_PACK_MIN_FLOATS):
// the kernel packed (`PackTransposed`), rows in tiles of kTileRows, input channels in chunks of kChunkChannels.
constexpr int64_t kTileRows = 8, kChunkChannels = 16;

// Output channels per block: 2 vectors while 2 are left, then 1 (O is a multiple of 16).
inline int64_t BlockWidth(int64_t o, int64_t o0) { return o - o0 >= 2 * kLanes ? 2 * kLanes : kLanes; }

// One output row's block of output channels from o0, summed over input channels [i0, i1) (added to y_row's
// partial sums unless i0 is 0); `kernel` the view of the row's phase (qd, qh) and the block.
void TransposedRow(const float* x_row0, const KernelView& kernel, float* y_row, int64_t hp, int64_t wp, int64_t c,
                   int64_t o, int64_t o0, int64_t i0, int64_t i1) {
  // 2 phases x P positions x NV vectors: 16 accumulators with AVX-512.
  constexpr int kWide = kRows / 2, kNarrow = kRows;
  const int64_t w_in = wp - 2;
  if (BlockWidth(o, o0) == 2 * kLanes) {
    for (int64_t m0 = 0; m0 < w_in; m0 += kWide)
      TransposedBlockPositions<2, kWide>(static_cast<int>(std::min<int64_t>(kWide, w_in - m0)), x_row0, kernel,
                                         y_row, hp, wp, c, o, m0, o0, i0, i1);
  } else {
    for (int64_t m0 = 0; m0 < w_in; m0 += kNarrow)
      TransposedBlockPositions<1, kNarrow>(static_cast<int>(std::min<int64_t>(kNarrow, w_in - m0)), x_row0, kernel,
                                           y_row, hp, wp, c, o, m0, o0, i0, i1);
  }
}

// The adjoint kernel (2, 2, 2, C, 8 O) rearranged so that TransposedBlock reads it in order: per block of output
// channels from o0 (width w, at packed + 64 C o0), per output phase (qd, qh) (the piece written here), tap
// (td, th) and input channel i, the w-float rows of (phase qw, tap tw) = (0, 0), (0, 1), (1, 0), (1, 1).
void PackTransposed(const float* kernel, float* packed, int64_t c, int64_t o, int64_t o0, int phase) {
  const int64_t width = BlockWidth(o, o0);
  const int qd = phase / 2, qh = phase % 2;
  float* out = packed + 64 * c * o0 + phase * 16 * c * width;
  for (int td = 0; td < 2; ++td)
    for (int th = 0; th < 2; ++th)
      for (int64_t i = 0; i < c; ++i)
        for (int qw = 0; qw < 2; ++qw)
          for (int tw = 0; tw < 2; ++tw, out += width) {
            const int64_t block = ((1 - qd) * 2 + (1 - qh)) * 2 + (1 - qw);
            std::memcpy(out, kernel + (((td * 2 + th) * 2 + tw) * c + i) * 8 * o + block * o + o0,
                        sizeof(float) * width);
          }
}

ffi::Error ConvTranspose3dStride2(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::AnyBuffer kernel,
                                  ffi::Result<ffi::AnyBuffer> y, bool pack) {
  const auto xd = x.dimensions(), yd = y->dimensions();
  const size_t rank = xd.size();
  if (rank < 5 || yd.size() != rank || kernel.dimensions().size() < 5 || x.element_type() != ffi::F32 ||
      kernel.element_type() != ffi::F32 || y->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("conv_transpose3d_stride2: float32 operands expected");
  int64_t batch = 1;  // vmap's leading dimensions, on all three
  for (size_t d = 0; d + 5 < rank; ++d) batch *= xd[d];
  const size_t r = rank - 5;
  const int64_t n = xd[r], dp = xd[r + 1], hp = xd[r + 2], wp = xd[r + 3], c = xd[r + 4];
  const int64_t dy = yd[r + 1], hy = yd[r + 2], o = yd[r + 4], w_in = wp - 2;
  const float* x_data = static_cast<const float*>(x.untyped_data());
  const float* k_data = static_cast<const float*>(kernel.untyped_data());
  float* y_data = static_cast<float*>(y->untyped_data());
  std::vector<float> packed(pack ? 64 * c * o : 0);
  std::vector<std::pair<int64_t, int>> pieces;  // (o0, phase): packed over the threads too
  for (int64_t o0 = 0; o0 < o; o0 += BlockWidth(o, o0))
    for (int phase = 0; phase < 4; ++phase) pieces.emplace_back(o0, phase);
  const int64_t rows = n * dy * hy, parts = Parts(pool, rows);
  for (int64_t example = 0; example < batch; ++example) {
    const float* adjoint = k_data + example * 64 * c * o;
    if (pack)
      ParallelFor(pool, static_cast<int64_t>(pieces.size()), [&](int64_t i) {
        PackTransposed(adjoint, packed.data(), c, o, pieces[i].first, pieces[i].second);
      });
    const float* x_example = x_data + example * n * dp * hp * wp * c;
    float* y_example = y_data + example * rows * 2 * w_in * o;
    const auto x_row0 = [&](int64_t row) {
      const int64_t oh = row % hy, od = row / hy % dy, b = row / hy / dy;
      return x_example + ((b * dp + od / 2 + od % 2) * hp + oh / 2 + oh % 2) * wp * c;
    };
    // A row's output phase (qd, qh) = (od % 2, oh % 2), as 2 qd + qh.
    const auto phase_of = [&](int64_t row) { return static_cast<int>((row / hy % dy % 2) * 2 + row % hy % 2); };
    const auto kernel_at = [&](int64_t row, int64_t o0) {
      const int phase = phase_of(row);
      const int64_t width = BlockWidth(o, o0);
      if (pack) return KernelView{packed.data() + 64 * c * o0 + phase * 16 * c * width, 4 * c * width, 4 * width,
                                  2 * width, width};
      // Adjoint tap (td, th, tw), channel block 1 - q: the phase's block is (1 - qd, 1 - qh, 1 - qw).
      return KernelView{adjoint + ((1 - phase / 2) * 4 + (1 - phase % 2) * 2 + 1) * o + o0, 16 * c * o, 8 * o, -o,
                        8 * c * o};
    };
    ParallelFor(pool, parts, [&](int64_t part) {
      const int64_t row0 = rows * part / parts, row1 = rows * (part + 1) / parts;
      if (!pack) {  // the kernel read in place, row by row: x and y, the larger operands, stream through once
        for (int64_t row = row0; row < row1; ++row)
          for (int64_t o0 = 0; o0 < o; o0 += BlockWidth(o, o0))
            TransposedRow(x_row0(row), kernel_at(row, o0), y_example + row * 2 * w_in * o, hp, wp, c, o, o0, 0, c);
        return;
      }
      // A kernel larger than the caches: block by block of output channels, phase by phase (qd, qh), tiles of
      // kTileRows rows of that phase, kChunkChannels input channels at a time over the tile's rows, so that the
      // kernel's chunk (32 KB by 32 output channels) stays in L1 for all of them, the tile's partial sums in L1.
      std::vector<int64_t> tile;
      for (int64_t o0 = 0; o0 < o; o0 += BlockWidth(o, o0))
        for (int phase = 0; phase < 4; ++phase)
          for (int64_t row = row0; row < row1;) {
            tile.clear();
            for (; row < row1 && static_cast<int64_t>(tile.size()) < kTileRows; ++row)
              if (phase_of(row) == phase) tile.push_back(row);
            for (int64_t i0 = 0; i0 < c; i0 += kChunkChannels)
              for (const int64_t t : tile)
                TransposedRow(x_row0(t), kernel_at(t, o0), y_example + t * 2 * w_in * o, hp, wp, c, o, o0, i0,
                              std::min(c, i0 + kChunkChannels));
          }
    });
  }
  return ffi::Error::Success();
}

ffi::Error SpaceToDepthPadded(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> y) {
  const auto xd = x.dimensions(), yd = y->dimensions();
  const size_t rank = xd.size();
  if (rank < 5 || yd.size() != rank || x.element_type() != ffi::F32 || y->element_type() != ffi::F32)
    return ffi::Error::InvalidArgument("space_to_depth_padded: float32 operands of equal rank >= 5 expected");
  int64_t n = 1;  // leading batch dimensions and N: every example alike
  for (size_t d = 0; d + 4 < rank; ++d) n *= xd[d];
  const int64_t d2 = xd[rank - 4], h2 = xd[rank - 3], w2 = xd[rank - 2], c = xd[rank - 1];
  const int64_t dy = d2 / 2 + 1, hy = h2 / 2 + 1, wy = w2 / 2 + 1;
  const float* in = static_cast<const float*>(x.untyped_data());
  float* out = static_cast<float*>(y->untyped_data());
  const int64_t rows = n * dy * hy, parts = Parts(pool, rows);
  // Output row (n, d, h), offset (rd, rh, rw), column w: the C channels of input voxel
  // (2d + rd - 1, 2h + rh - 1, 2w + rw - 1), or zeros outside the input.
  ParallelFor(pool, parts, [&](int64_t part) {
    for (int64_t row = rows * part / parts; row < rows * (part + 1) / parts; ++row) {
      const int64_t h = row % hy, d = row / hy % dy, b = row / hy / dy;
      float* out_row = out + row * wy * 8 * c;
      for (int64_t offset = 0; offset < 8; ++offset) {
        const int64_t sd = 2 * d + offset / 4 - 1, sh = 2 * h + offset / 2 % 2 - 1, rw = offset % 2;
        const bool inside = sd >= 0 && sd < d2 && sh >= 0 && sh < h2;
        const float* in_row = in + ((b * d2 + sd) * h2 + sh) * w2 * c;
        for (int64_t w = 0; w < wy; ++w) {
          const int64_t sw = 2 * w + rw - 1;
          float* o = out_row + (w * 8 + offset) * c;
          if (inside && sw >= 0 && sw < w2) {
            const float* i = in_row + sw * c;
            for (int64_t k = 0; k < c; ++k) o[k] = i[k];
          } else {
            for (int64_t k = 0; k < c; ++k) o[k] = 0.0f;
          }
        }
      }
    }
  });
  return ffi::Error::Success();
}

// tiles[i * R + j, (n * TH + th) * TW + tw, c] = sum over u, v < S of M[i, u] M[j, v] x[n, th * m + u, tw * m + v, c]
// for one tile (n, th, tw) and `lanes` channels from c0 (a whole vector, or the last few): the R x S matrix applied
// to the tile's rows, then to its columns; x is zero beyond its H rows and W columns.
template <int R, int S, bool WHOLE>
inline void WinogradTileChannels(const float* x, int64_t h, int64_t w, int64_t c, const float* m, int64_t y0,
                                 int64_t x0, float* out, int64_t plane_stride, int64_t c0, int64_t lanes) {
  Vec in[S][S];
  for (int u = 0; u < S; ++u)
    for (int v = 0; v < S; ++v) {
      const float* p = x + ((y0 + u) * w + x0 + v) * c + c0;
      if (y0 + u >= h || x0 + v >= w) in[u][v] = Vec{};
      else if (WHOLE) in[u][v] = load(p);
      else { in[u][v] = Vec{}; std::memcpy(&in[u][v], p, lanes * sizeof(float)); }
    }
  Vec rows[R][S];
  for (int i = 0; i < R; ++i)
    for (int v = 0; v < S; ++v) {
      Vec sum = m[i * S] * in[0][v];
      for (int u = 1; u < S; ++u) sum += m[i * S + u] * in[u][v];
      rows[i][v] = sum;
    }
  for (int i = 0; i < R; ++i)
    for (int j = 0; j < R; ++j) {
      Vec sum = m[j * S] * rows[i][0];
      for (int v = 1; v < S; ++v) sum += m[j * S + v] * rows[i][v];
      float* o = out + (i * R + j) * plane_stride + c0;
      if (WHOLE) std::memcpy(o, &sum, sizeof(Vec));
      else std::memcpy(o, &sum, lanes * sizeof(float));
    }
}

template <int R, int S>
void WinogradTile(const float* x, int64_t h, int64_t w, int64_t c, const float* m, int64_t y0, int64_t x0,
                  float* out, int64_t plane_stride) {
  int64_t c0 = 0;
  for (; c0 + kLanes <= c; c0 += kLanes)
    WinogradTileChannels<R, S, true>(x, h, w, c, m, y0, x0, out, plane_stride, c0, kLanes);
  if (c0 < c) WinogradTileChannels<R, S, false>(x, h, w, c, m, y0, x0, out, plane_stride, c0, c - c0);
}

using TileFn = void (*)(const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t);

// WinogradTile<R, S> for the plans' shapes: 2 <= S <= R <= 6 (B^T is a x a, A^T's transpose a x m).
template <int R = 6, int S = 6>
TileFn WinogradTileFor(int64_t rows, int64_t size) {
  if (rows == R && size == S) return &WinogradTile<R, S>;
  if constexpr (S > 2) return WinogradTileFor<R, S - 1>(rows, size);
  if constexpr (S == 2 && R > 2) return WinogradTileFor<R - 1, R - 1>(rows, size);
  return nullptr;
}

ffi::Error WinogradTiles(ffi::ThreadPool pool, ffi::AnyBuffer x, ffi::Result<ffi::AnyBuffer> tiles,
                         ffi::Span<const float> matrix, int64_t rows, int64_t stride, int64_t tiles_h,
                         int64_t tiles_w) {
  const auto xd = x.dimensions(), td = tiles->dimensions();
  const size_t rank = xd.size();
  const int64_t size = rows > 0 ? static_cast<int64_t>(matrix.size()) / rows : 0;
  const TileFn tile_fn = WinogradTileFor(rows, size);
  if (rank < 4 || td.size() != rank - 1 || x.element_type() != ffi::F32 || tiles->element_type() != ffi::F32 ||
      tile_fn == nullptr || rows * size != static_cast<int64_t>(matrix.size()))
    return ffi::Error::InvalidArgument("winograd_tiles: float32 x of rank >= 4 and a matrix of 2 <= size <= rows "
                                       "<= 6 expected");
  int64_t batch = 1;  // leading vmap dimensions: each its own (N, H, W, C) -> (R * R, T, C)
  for (size_t d = 0; d + 4 < rank; ++d) batch *= xd[d];
  const int64_t n = xd[rank - 4], h = xd[rank - 3], w = xd[rank - 2], c = xd[rank - 1];
  const int64_t count = n * tiles_h * tiles_w;
  if (td[rank - 4] != rows * rows || td[rank - 3] != count || td[rank - 2] != c)
    return ffi::Error::InvalidArgument("winograd_tiles: result shape does not match the tiles");
  const float* in = static_cast<const float*>(x.untyped_data());
  float* out = static_cast<float*>(tiles->untyped_data());
  const int64_t tile_rows = batch * n * tiles_h, parts = Parts(pool, tile_rows);
  ParallelFor(pool, parts, [&](int64_t part) {
    for (int64_t row = tile_rows * part / parts; row < tile_rows * (part + 1) / parts; ++row) {
      const int64_t b = row / (n * tiles_h), th = row % tiles_h, image = row / tiles_h;  // image: b * n + n_b
      for (int64_t tw = 0; tw < tiles_w; ++tw)
        tile_fn(in + image * h * w * c, h, w, c, matrix.begin(), th * stride, tw * stride,
                out + b * rows * rows * count * c + ((image - b * n) * tiles_h * tiles_w + th * tiles_w + tw) * c,
                count * c);
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(gans_conv_kernel_grad, ConvKernelGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("vectors_from_x"));

// The floats per vector register the kernels were built for (16 with AVX-512, 8 with AVX, else 4).
extern "C" int gans_vector_lanes() { return kLanes; }

XLA_FFI_DEFINE_HANDLER_SYMBOL(gans_space_to_depth_padded, SpaceToDepthPadded,
                              ffi::Ffi::Bind().Ctx<ffi::ThreadPool>().Arg<ffi::AnyBuffer>().Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(gans_conv3d_stride2, Conv3dStride2,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(gans_conv_transpose3d_stride2, ConvTranspose3dStride2,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<bool>("pack"));

XLA_FFI_DEFINE_HANDLER_SYMBOL(gans_winograd_tiles, WinogradTiles,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::AnyBuffer>()
                                  .Ret<ffi::AnyBuffer>()
                                  .Attr<ffi::Span<const float>>("matrix")
                                  .Attr<int64_t>("rows")
                                  .Attr<int64_t>("stride")
                                  .Attr<int64_t>("tiles_h")
                                  .Attr<int64_t>("tiles_w"));
