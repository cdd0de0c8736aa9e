// A Dense layer's two products on inputs that are mostly zeros (MNIST: 81% of the pixels),
// as XLA FFI custom calls for CPU. They skip the zeros, which a dense BLAS product cannot:
//
//   initlab_sparse_forward:      y[r, m, i, :] = sum_k x[r, i, k] * w[r, m, k, :]
//   initlab_sparse_weight_grad:  dw[r, m, k, :] = sum_i x[r, i, k] * g[r, m, i, :]
//
// x: (R, B, N) inputs, one batch per row r of an ensemble; w: (R, M, N, U) the kernels of the
// row's M models; g: (R, M, B, U) the gradient with respect to y. A single model is R = M = 1.
// The forward kernel lists each row's nonzeros once (for its M models) and also returns a
// bitmap of them by column, (R, ceil(B / 32) * N) words, with which the weight gradient finds
// each column's nonzeros without a transposition. Work is split over XLA's intra-op thread
// pool, in a fixed partition (results do not depend on the threads). Every output element is a
// sum over the nonzero inputs only, in increasing order of the summed index, in float32 with
// fused multiply-adds (two partial sums over alternate terms, added at the end).
//
// Built by initlab/sparse_dense.py with -march=native; needs AVX-512F.

#include <immintrin.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;

namespace {

// Run fn(task) for task in [0, tasks) on the calling thread and up to threads - 1 pool workers.
// Tasks are claimed from a shared counter, so the call finishes even if no worker ever starts.
template <typename F>
void ParallelFor(ffi::ThreadPool& pool, int64_t tasks, F fn) {
  struct State {
    std::atomic<int64_t> next{0};
    std::atomic<int64_t> done{0};
  };
  auto state = std::make_shared<State>();
  auto run = [state, tasks](F& f) {
    int64_t task;
    while ((task = state->next.fetch_add(1, std::memory_order_relaxed)) < tasks) {
      f(task);
      state->done.fetch_add(1, std::memory_order_release);
    }
  };
  const int64_t helpers = std::min<int64_t>(pool.num_threads(), tasks) - 1;
  // Workers hold their own copy of fn and of the state: a late one finds no task left and returns.
  for (int64_t h = 0; h < helpers; ++h) pool.Schedule([run, fn]() mutable { run(fn); });
  run(fn);
  while (state->done.load(std::memory_order_acquire) < tasks) _mm_pause();
}

inline __mmask16 TailMask(int64_t lanes) {
  return lanes >= 16 ? 0xFFFF : lanes <= 0 ? 0 : static_cast<__mmask16>((1u << lanes) - 1);
}

// Sums of scaled rows (v * row[0:lanes], up to 64 lanes in four registers), kept as two partial
// sums over alternate terms to hide the FMA latency, added at the end. kFull: all 64 lanes.
template <bool kFull>
class RowSums {
 public:
  explicit RowSums(int64_t lanes) : lanes_(lanes) {
    for (int k = 0; k < 4; ++k) {
      mask_[k] = TailMask(lanes - 16 * k);
      a_[k] = b_[k] = _mm512_setzero_ps();
    }
  }
  void AddPair(float v, const float* p, float w, const float* q) {
    const __m512 sv = _mm512_set1_ps(v), sw = _mm512_set1_ps(w);
    for (int k = 0; k < 4; ++k) {
      if (!Used(k)) continue;
      a_[k] = _mm512_fmadd_ps(sv, Load(k, p), a_[k]);
      b_[k] = _mm512_fmadd_ps(sw, Load(k, q), b_[k]);
    }
  }
  void Add(float v, const float* p) {
    const __m512 sv = _mm512_set1_ps(v);
    for (int k = 0; k < 4; ++k)
      if (Used(k)) a_[k] = _mm512_fmadd_ps(sv, Load(k, p), a_[k]);
  }
  void Store(float* out) const {
    for (int k = 0; k < 4; ++k)
      if (Used(k)) _mm512_mask_storeu_ps(out + 16 * k, mask_[k], _mm512_add_ps(a_[k], b_[k]));
  }

 private:
  bool Used(int k) const { return kFull || lanes_ > 16 * k; }
  __m512 Load(int k, const float* p) const {
    return kFull ? _mm512_loadu_ps(p + 16 * k) : _mm512_maskz_loadu_ps(mask_[k], p + 16 * k);
  }
  int64_t lanes_;
  __mmask16 mask_[4];
  __m512 a_[4], b_[4];
};

// Calls block.template operator()<kFull>(c, lanes) for each block of up to 64 lanes of [0, u).
template <typename Block>
void ForLaneBlocks(int64_t u, Block block) {
  for (int64_t c = 0; c < u; c += 64) {
    const int64_t lanes = std::min<int64_t>(64, u - c);
    if (lanes == 64) {
      block.template operator()<true>(c, lanes);
    } else {
      block.template operator()<false>(c, lanes);
    }
  }
}

// out[0:u] = sum_j val[j] * base[idx[j] * u + 0:u]  (rows of a row-major (?, u) matrix).
void SumRows(const int32_t* idx, const float* val, int32_t nnz, const float* base, int64_t u, float* out) {
  ForLaneBlocks(u, [&]<bool kFull>(int64_t c, int64_t lanes) {
    RowSums<kFull> sums(lanes);
    const float* col = base + c;
    int32_t j = 0;
    for (; j + 2 <= nnz; j += 2)
      sums.AddPair(val[j], col + static_cast<int64_t>(idx[j]) * u, val[j + 1], col + static_cast<int64_t>(idx[j + 1]) * u);
    if (j < nnz) sums.Add(val[j], col + static_cast<int64_t>(idx[j]) * u);
    sums.Store(out + c);
  });
}

// Scratch owned by the thread that runs a task, grown as needed.
struct Scratch {
  std::vector<int32_t> count, idx;
  std::vector<float> val;
};
thread_local Scratch scratch;

template <typename T>
T* Grow(std::vector<T>& v, int64_t n) {
  if (static_cast<int64_t>(v.size()) < n) v.resize(n);
  return v.data();
}

constexpr int64_t kColumnsPerTask = 32;

// Lists the nonzeros of x's rows [i0, i1) (i0 a multiple of 32; row i's go to count[i - i0],
// idx and val + (i - i0) * stride) and sets their bits in the column bitmaps: bit i % 32 of
// bits[(i / 32) * N + k] is set when x[i, k] != 0.
void ListChunk(const float* x, int64_t i0, int64_t i1, int64_t n, int32_t* count, int32_t* idx, float* val,
               int64_t stride, uint32_t* bits) {
  uint32_t* word = bits + (i0 / 32) * n;
  std::fill(word, word + n, 0u);
  const __m512i ks0 = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  for (int64_t i = i0; i < i1; ++i) {
    const float* row = x + i * n;
    int32_t* ri = idx + (i - i0) * stride;
    float* rv = val + (i - i0) * stride;
    const __m512i bit = _mm512_set1_epi32(static_cast<int32_t>(1u << (i % 32)));
    int32_t nnz = 0;
    int64_t k = 0;
    __m512i ks = ks0;
    for (; k + 16 <= n; k += 16) {
      const __m512 v = _mm512_loadu_ps(row + k);
      const __mmask16 nz = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_NEQ_UQ);
      // Compress into registers, then store: compress-to-memory is microcoded and slow on Zen 4.
      _mm512_storeu_si512(ri + nnz, _mm512_maskz_compress_epi32(nz, ks));
      _mm512_storeu_ps(rv + nnz, _mm512_maskz_compress_ps(nz, v));
      nnz += __builtin_popcount(nz);
      __m512i* w = reinterpret_cast<__m512i*>(word + k);
      _mm512_storeu_si512(w, _mm512_or_si512(_mm512_loadu_si512(w), _mm512_maskz_mov_epi32(nz, bit)));
      ks = _mm512_add_epi32(ks, _mm512_set1_epi32(16));
    }
    for (; k < n; ++k) {
      ri[nnz] = static_cast<int32_t>(k);
      rv[nnz] = row[k];
      if (row[k] != 0.0f) word[k] |= 1u << (i % 32);
      nnz += row[k] != 0.0f;
    }
    count[i - i0] = nnz;
  }
}

// Lists the rows i whose bit is set in a column's bitmap words (words[w * n], w < word_count),
// in increasing order, with x's values there (x points at the column: x[i * n]). Branch-free
// per word: the set bits compress a vector of row numbers. Returns how many were listed.
int32_t ListColumn(const uint32_t* words, int64_t word_count, int64_t n, const float* x, int32_t* idx,
                   float* val) {
  const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  int32_t count = 0;
  for (int64_t w = 0; w < word_count; ++w) {
    const uint32_t bits = words[w * n];
    const __m512i low = _mm512_add_epi32(lanes, _mm512_set1_epi32(static_cast<int32_t>(w * 32)));
    _mm512_storeu_si512(idx + count, _mm512_maskz_compress_epi32(static_cast<__mmask16>(bits), low));
    count += __builtin_popcount(bits & 0xFFFFu);
    const __m512i high = _mm512_add_epi32(low, _mm512_set1_epi32(16));
    _mm512_storeu_si512(idx + count, _mm512_maskz_compress_epi32(static_cast<__mmask16>(bits >> 16), high));
    count += __builtin_popcount(bits >> 16);
  }
  for (int32_t j = 0; j < count; ++j) val[j] = x[static_cast<int64_t>(idx[j]) * n];
  return count;
}

// The forward product, and the bitmaps of x's nonzeros by column that the weight gradient uses:
// bit i % 32 of bits[r, (i / 32) * N + k] is set when x[r, i, k] != 0.
ffi::Error Forward(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::F32> w,
                   ffi::ResultBuffer<ffi::F32> y, ffi::ResultBuffer<ffi::U32> bits_out) {
  const auto xd = x.dimensions();
  const auto wd = w.dimensions();
  if (xd.size() != 3 || wd.size() != 4 || wd[0] != xd[0] || wd[2] != xd[2])
    return ffi::Error::InvalidArgument("initlab_sparse_forward: expected x (R, B, N) and w (R, M, N, U)");
  const int64_t R = xd[0], B = xd[1], N = xd[2], M = wd[1], U = wd[3];
  const float* xp = x.typed_data();
  const float* wp = w.typed_data();
  float* yp = y->typed_data();
  uint32_t* bits = bits_out->typed_data();
  const int64_t stride = N + 16;
  const int64_t words = (B + 31) / 32;
  // One task per 32 rows of a batch: list them once, then sum for each of the row's M models.
  // The lists live in the running thread's scratch (bounded: 32 rows, whatever B and R).
  ParallelFor(pool, R * words, [=](int64_t task) {
    const int64_t r = task / words, i0 = (task % words) * 32, i1 = std::min(B, i0 + 32);
    int32_t* count = Grow(scratch.count, 32);
    int32_t* idx = Grow(scratch.idx, 32 * stride);
    float* val = Grow(scratch.val, 32 * stride);
    ListChunk(xp + r * B * N, i0, i1, N, count, idx, val, stride, bits + r * words * N);
    for (int64_t m = 0; m < M; ++m) {
      const int64_t rm = r * M + m;
      for (int64_t i = i0; i < i1; ++i)
        SumRows(idx + (i - i0) * stride, val + (i - i0) * stride, count[i - i0], wp + rm * N * U, U,
                yp + (rm * B + i) * U);
    }
  });
  return ffi::Error::Success();
}

// dw[r, m, k, :] = sum_i x[r, i, k] * g[r, m, i, :] over the nonzeros that the bitmaps list.
ffi::Error WeightGrad(ffi::ThreadPool pool, ffi::Buffer<ffi::F32> x, ffi::Buffer<ffi::U32> bits_in,
                      ffi::Buffer<ffi::F32> g, ffi::ResultBuffer<ffi::F32> dw) {
  const auto xd = x.dimensions();
  const auto gd = g.dimensions();
  if (xd.size() != 3 || gd.size() != 4 || gd[0] != xd[0] || gd[2] != xd[1])
    return ffi::Error::InvalidArgument("initlab_sparse_weight_grad: expected x (R, B, N) and g (R, M, B, U)");
  const int64_t R = xd[0], B = xd[1], N = xd[2], M = gd[1], U = gd[3];
  const float* xp = x.typed_data();
  const uint32_t* bits = bits_in.typed_data();
  const float* gp = g.typed_data();
  float* dp = dw->typed_data();
  const int64_t words = (B + 31) / 32;
  const int64_t chunks = (N + kColumnsPerTask - 1) / kColumnsPerTask;
  // One task per 32 columns of a row's batch: list each column's nonzeros once, then sum the
  // matching rows of g for each of the row's M models (as the forward kernel sums rows of w).
  ParallelFor(pool, R * chunks, [=](int64_t task) {
    const int64_t r = task / chunks, k0 = (task % chunks) * kColumnsPerTask;
    int32_t* idx = Grow(scratch.idx, words * 32 + 16);
    float* val = Grow(scratch.val, words * 32 + 16);
    for (int64_t k = k0; k < std::min(N, k0 + kColumnsPerTask); ++k) {
      const int32_t count = ListColumn(bits + r * words * N + k, words, N, xp + r * B * N + k, idx, val);
      for (int64_t m = 0; m < M; ++m) {
        const int64_t rm = r * M + m;
        SumRows(idx, val, count, gp + rm * B * U, U, dp + (rm * N + k) * U);
      }
    }
  });
  return ffi::Error::Success();
}

}  // namespace

XLA_FFI_DEFINE_HANDLER_SYMBOL(initlab_sparse_forward, Forward,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::U32>>());

XLA_FFI_DEFINE_HANDLER_SYMBOL(initlab_sparse_weight_grad, WeightGrad,
                              ffi::Ffi::Bind()
                                  .Ctx<ffi::ThreadPool>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Arg<ffi::Buffer<ffi::U32>>()
                                  .Arg<ffi::Buffer<ffi::F32>>()
                                  .Ret<ffi::Buffer<ffi::F32>>());
