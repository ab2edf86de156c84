// GENConv aggregation per destination node on destination-sorted edges (Li et al., 2020; Li et al., 2021).
//
// Notation: N nodes, E edges sorted by destination, rowptr (N+1) the CSR row pointer, c channels, k raw edge
// features. Edge e (sorted position) has source src[e] and raw features u[ue] with ue = perm[e] (or e), and message
//     z = x_src + A u + a,   m = ReLU(z) + eps.
// Edge term modes: 0 none, 1 e = u (k == c), 2 folded encoder e = A u (+ a when a is given).
// Aggregations: 0 max, 1 softmax, 2 mean, 3 add. Nodes without in-edges aggregate to 0.
//
// Forward: one pass per destination node. Max keeps its running maximum, tie count and arg edge as each message is
// computed (no buffer); where no gradient will be asked for (``stats`` false: inference, the reversible engine's
// first pass) it keeps the running maximum of z alone, ReLU(max z) + eps being max(ReLU(z) + eps) bit for bit.
// Softmax, mean and add put the node's messages in a per-thread (deg, c) buffer and reduce it (softmax's max /
// sum-exp / weighted sum, or the sum).
// Backward: recomputes the messages of a node; max touches only the arg edge of untied (node, channel) entries and
// recomputes a node's edges only where a tie exists (the next node's edge features are prefetched: its channels
// read them in random order). Gradients to sources are scattered into per-thread buffers and reduced; gradients to
// edge features are written per edge (each edge belongs to one destination).
// OpenMP over destination nodes; the inner loops run over c contiguous channels for the compiler to vectorise.
#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

inline int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

// y += x; y += s x; y = x + b  (restrict parameters: the compiler vectorises these)
template <typename T>
inline void add_to(T* __restrict__ y, const T* __restrict__ x, int64_t c) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) y[j] += x[j];
}
template <typename T>
inline void axpy(T* __restrict__ y, const T* __restrict__ x, T s, int64_t c) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) y[j] += s * x[j];
}
template <typename T>
inline void sum_of(T* __restrict__ y, const T* __restrict__ x, const T* __restrict__ b, int64_t c) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) y[j] = x[j] + b[j];
}
template <typename T>
inline T dot(const T* __restrict__ x, const T* __restrict__ y, int64_t c) {
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < c; ++j) s += x[j] * y[j];
  return s;
}

template <typename scalar_t, typename index_t>
struct Graph {
  const scalar_t* x;      // (N, c)
  const index_t* src;     // (E,)
  const int64_t* rowptr;  // (N + 1,)
  const scalar_t* u;      // (E, k) raw features (original order) or nullptr
  const index_t* perm;    // (E,) sorted position -> original edge, or nullptr (identity)
  const scalar_t* At;     // (k, c) transposed folded encoder, or nullptr
  const scalar_t* a;      // (c,) or nullptr
  int64_t c, k, mode, E;
  scalar_t eps;

  inline int64_t uidx(int64_t e) const { return perm ? static_cast<int64_t>(perm[e]) : e; }
  inline const scalar_t* xrow(int64_t e) const { return x + static_cast<int64_t>(src[e]) * c; }
  inline const scalar_t* urow(int64_t e) const {
    return mode == 0 ? nullptr : u + uidx(e) * (mode == 1 ? c : k);
  }
  // the source row (and a permuted edge-feature row) of edge e into the cache ahead of use: the gather from a
  // random source is the kernel's main memory stall
  inline void prefetch(int64_t e) const {
    if (e >= E) return;
    const char* p = reinterpret_cast<const char*>(xrow(e));
    for (int64_t b = 0; b < c * static_cast<int64_t>(sizeof(scalar_t)); b += 64) __builtin_prefetch(p + b);
    __builtin_prefetch(p + c * sizeof(scalar_t) - 1);
    if (perm && mode) __builtin_prefetch(urow(e));
  }

  // z (pre-ReLU) of edge e into zr[0..c): the 8-lane path (float32, c % 8 == 0) or the generic one; forward and
  // backward both call this, so the recomputed z equals the forward's bit for bit (max's ties depend on it)
  inline void message(int64_t e, scalar_t* __restrict__ zr) const;

  inline void message_generic(int64_t e, scalar_t* __restrict__ zr) const {
    const scalar_t* xr = xrow(e);
    const scalar_t* ur = urow(e);
    // z = x_j + a, then z += u_q A_q for each raw feature q: whole rows of c contiguous channels (vectorised; the
    // row stays in L1 across the k passes)
    if (a) {
      sum_of(zr, xr, a, c);
    } else {
      std::copy(xr, xr + c, zr);
    }
    if (mode == 1) {
      add_to(zr, ur, c);
    } else if (mode == 2) {
      for (int64_t q = 0; q < k; ++q) axpy(zr, At + q * c, ur[q], c);
    }
  }
};

// 8-lane vectors (GCC/Clang vector extensions): one AVX register in the avx2 build, two SSE halves in the generic
// one. The float32 path of max keeps a group of up to kGroup vectors of channels, their running maximum, tie count
// and arg edge in registers while it walks a node's edges: each message is computed once and never stored.
typedef float v8f __attribute__((vector_size(32)));
typedef int32_t v8i __attribute__((vector_size(32)));
inline v8f load8(const float* p) { v8f v; std::memcpy(&v, p, sizeof v); return v; }
inline v8i load8(const int32_t* p) { v8i v; std::memcpy(&v, p, sizeof v); return v; }
inline void store8(float* p, v8f v) { std::memcpy(p, &v, sizeof v); }
inline void store8(int32_t* p, v8i v) { std::memcpy(p, &v, sizeof v); }
constexpr int kGroup = 6;     // vectors of channels per pass over a node's edges (registers: z, o, n, w per vector)
constexpr int64_t kAhead = 8;  // edges between a row's prefetch and its use

template <typename scalar_t>
inline bool lanes8(int64_t c) { return std::is_same<scalar_t, float>::value && c % 8 == 0 && c > 0; }

// channels j..j+7 of z for the edge with source row xr and feature row ur: x + a, then + u (MODE 1) or + u_q A_q
// for q = 0..k-1 (MODE 2), in the generic path's order
// one edge's step of the running maximum of a vector of channels (see max_track): m = ReLU(z) + eps against the
// maximum o; a larger m restarts the tie count n at 1 and sets the arg edge w to d (or -1 where z <= 0); an equal m
// adds 1 to n (eq is -1 where true) and, where z > 0, sets w to d. VF/VI: float/int32 vectors of one width.
template <typename VF, typename VI>
inline void track_lanes(VF z, VF veps, VF& o, VI& n, VI& w, VI dv) {
  const VI pos = z > VF{};                            // -1 where z > 0 (false for NaN)
  const VF m = reinterpret_cast<VF>(reinterpret_cast<VI>(z) & pos) + veps;   // ReLU(z) + eps, exactly
  const VI gt = m > o, eq = m == o;
  n = gt ? VI{} + 1 : n - eq;
  w = ((gt | eq) & pos) ? dv : (w | gt);              // gt without pos: -1 (w | -1); eq without pos: w stays
  o = gt ? m : o;
}

template <int MODE>
inline v8f message8(const float* __restrict__ xr, const float* __restrict__ ur, const float* __restrict__ a,
                    const float* __restrict__ At, int64_t c, int64_t k, int64_t j) {
  v8f z = load8(xr + j);
  if (a) z += load8(a + j);
  if (MODE == 1) {
    z += load8(ur + j);
  } else if (MODE == 2) {
    for (int64_t q = 0; q < k; ++q) z += ur[q] * load8(At + q * c + j);
  }
  return z;
}

template <int MODE, typename index_t>
inline void message_row8(const Graph<float, index_t>& G, int64_t e, float* __restrict__ zr) {
  const float* xr = G.xrow(e);
  const float* ur = G.urow(e);
  for (int64_t j = 0; j < G.c; j += 8) store8(zr + j, message8<MODE>(xr, ur, G.a, G.At, G.c, G.k, j));
}

template <typename scalar_t, typename index_t>
inline void Graph<scalar_t, index_t>::message(int64_t e, scalar_t* __restrict__ zr) const {
  if constexpr (std::is_same<scalar_t, float>::value) {
    if (lanes8<scalar_t>(c)) {
      if (mode == 2) message_row8<2>(*this, e, zr);
      else if (mode == 1) message_row8<1>(*this, e, zr);
      else message_row8<0>(*this, e, zr);
      return;
    }
  }
  message_generic(e, zr);
}

// max over a node's edges lo..lo+deg-1, channels 8 v0 .. 8 (v0 + NV) - 1, with the tie count n and arg edge w (see
// max_track) when STATS; without, the maximum alone (see max_pass_enc); float32, c % 8 == 0. NV and MODE are
// compile-time: the NV vectors of z, o, n and w stay in registers
template <int MODE, int NV, bool STATS, typename index_t>
void max_pass8(const Graph<float, index_t>& G, int64_t lo, int64_t deg, int64_t v0, float* o, int32_t* n,
               int32_t* w) {
  const float* __restrict__ a = G.a;
  const float* __restrict__ At = G.At;
  const int64_t c = G.c, k = G.k;
  const v8f zero{}, veps = zero + G.eps, ninf = zero - std::numeric_limits<float>::infinity();
  const v8i none = v8i{} - 1;
  v8f vo[NV];
  v8i vn[NV], vw[NV];
  for (int g = 0; g < NV; ++g) { vo[g] = ninf; vn[g] = v8i{}; vw[g] = none; }
  for (int64_t d = 0; d < deg; ++d) {
    const int64_t e = lo + d;
    G.prefetch(e + kAhead);
    const float* xr = G.xrow(e);
    const float* ur = G.urow(e);
    const v8i dv = v8i{} + static_cast<int32_t>(d);
    for (int g = 0; g < NV; ++g) {
      const v8f z = message8<MODE>(xr, ur, a, At, c, k, (v0 + g) * 8);
      if constexpr (STATS) {
        track_lanes(z, veps, vo[g], vn[g], vw[g], dv);
      } else {
        vo[g] = z > vo[g] ? z : vo[g];                         // the largest z; NaN never wins, as in track_lanes
      }
    }
  }
  for (int g = 0; g < NV; ++g) {
    const int64_t j = (v0 + g) * 8;
    if constexpr (STATS) {
      store8(o + j, vo[g]);
      store8(n + j, vn[g]);
      store8(w + j, vw[g]);
    } else {
      store8(o + j, (vo[g] > zero ? vo[g] : zero) + veps);     // ReLU(max z) + eps = max(ReLU(z) + eps)
    }
  }
}

template <int MODE, bool STATS, typename index_t>
void max_node8_mode(const Graph<float, index_t>& G, int64_t lo, int64_t deg, float* o, int32_t* n, int32_t* w) {
  const int64_t nvec = G.c / 8;
  const int64_t passes = (nvec + kGroup - 1) / kGroup, per = (nvec + passes - 1) / passes;
  for (int64_t v0 = 0; v0 < nvec; v0 += per) {
    switch (std::min(per, nvec - v0)) {
      case 1: max_pass8<MODE, 1, STATS>(G, lo, deg, v0, o, n, w); break;
      case 2: max_pass8<MODE, 2, STATS>(G, lo, deg, v0, o, n, w); break;
      case 3: max_pass8<MODE, 3, STATS>(G, lo, deg, v0, o, n, w); break;
      case 4: max_pass8<MODE, 4, STATS>(G, lo, deg, v0, o, n, w); break;
      case 5: max_pass8<MODE, 5, STATS>(G, lo, deg, v0, o, n, w); break;
      default: max_pass8<MODE, kGroup, STATS>(G, lo, deg, v0, o, n, w); break;
    }
  }
}

// The folded encoder with k == kEncK raw features. z is formed in message8's order (x, + a, then + u_q A_q for
// q = 0..k-1, each a fused multiply-add as there), lane for lane, so the backward's recomputed z is the same bit for
// bit (a test fails if either order changes). The AVX-512 build (32 vector registers) runs one 16-lane vector of
// channels per pass with the encoder's columns held in registers (max_pass_enc; measured on the partition shape,
// c = 40, one thread, Intel: the op's forward 2.5-3x faster than max_pass8, passes of 2 or 3 vectors slower). The
// 8-lane builds (16 registers, where the columns spilled) run kRowsStats vectors per pass with tie statistics and
// kRowsMax without, the columns read from L1 and each feature broadcast once for all vectors
// (max_pass_enc_rows; measured on the partition shape, c = 40, one thread, AMD EPYC, AVX2 build, against one
// vector per pass: the forward 22 -> 18 ms with statistics, 13 -> 9 ms without).
constexpr int kEncK = 8;
#ifndef REVGNN_ROWS_STATS
#define REVGNN_ROWS_STATS 3
#endif
#ifndef REVGNN_ROWS_MAX
#define REVGNN_ROWS_MAX 5
#endif
constexpr int kRowsStats = REVGNN_ROWS_STATS;   // vectors per pass of the 8-lane encoder path, with tie statistics
constexpr int kRowsMax = REVGNN_ROWS_MAX;       // ... and for the maximum alone

#ifdef __AVX512F__
typedef float v16f __attribute__((vector_size(64)));      // one AVX-512 register
typedef int32_t v16i __attribute__((vector_size(64)));
#endif
template <typename V>
inline V loadv(const void* p) { V v; std::memcpy(&v, p, sizeof v); return v; }
template <typename V>
inline void storev(void* p, V v) { std::memcpy(p, &v, sizeof v); }

// channels j0 .. j0 + W - 1 (W: the lanes of VF) of max over a node's edges lo..lo+deg-1, with the encoder's kEncK
// columns for those channels in registers; with STATS the tie count n and arg edge w as in max_pass8, without them
// the maximum alone: max_e (ReLU(z_e) + eps) = ReLU(max_e z_e) + eps, bit for bit (rounding is monotone), so the
// loop keeps one running maximum of z (a no-grad pass: inference, and the reversible engine's first pass). PERM:
// edge features are read through the permutation. Every loop-invariant pointer and size is a local, so that the
// loop carries no reloads (the 8-lane build has 16 vector registers: the 8 columns, z and the running state).
template <typename VF, typename VI, bool PERM, bool STATS, typename index_t>
void max_pass_enc(const Graph<float, index_t>& G, int64_t lo, int64_t deg, int64_t j0, float* o, int32_t* n,
                  int32_t* w) {
  constexpr int K = kEncK;
  constexpr int64_t W = sizeof(VF) / sizeof(float);
  const int64_t c = G.c;
  const float* __restrict__ x = G.x + j0;
  const index_t* __restrict__ src = G.src + lo;
  const index_t* __restrict__ perm = PERM ? G.perm + lo : nullptr;
  const float* __restrict__ u = PERM ? G.u : G.u + lo * K;
  const bool has_a = G.a != nullptr;
  const VF zero{}, veps = zero + G.eps;
  VF A[K];
#pragma GCC unroll 16
  for (int q = 0; q < K; ++q) A[q] = loadv<VF>(G.At + q * c + j0);
  const VF av = has_a ? loadv<VF>(G.a + j0) : zero;
  VF vo = zero - std::numeric_limits<float>::infinity();
  VI vn = VI{}, vw = VI{} - 1, dv = VI{};
  const VI one = VI{} + 1;
  for (int64_t d = 0; d < deg; ++d) {
    if (d + kAhead < deg) {                                  // this pass's channels of a row kAhead edges on
      const float* pf = x + static_cast<int64_t>(src[d + kAhead]) * c;
      __builtin_prefetch(pf);
      __builtin_prefetch(pf + W - 1);
      if (PERM) __builtin_prefetch(u + static_cast<int64_t>(perm[d + kAhead]) * K);
    }
    const float* ur = PERM ? u + static_cast<int64_t>(perm[d]) * K : u + d * K;
    VF z = loadv<VF>(x + static_cast<int64_t>(src[d]) * c);
    if (has_a) z += av;
#pragma GCC unroll 16
    for (int q = 0; q < K; ++q) z += ur[q] * A[q];
    if constexpr (STATS) {
      track_lanes(z, veps, vo, vn, vw, dv);
      dv += one;
    } else {
      vo = z > vo ? z : vo;                                  // NaN never wins, as in track_lanes
    }
  }
  if constexpr (STATS) {
    storev(o + j0, vo);
    storev(n + j0, vn);
    storev(w + j0, vw);
  } else {
    storev(o + j0, (vo > zero ? vo : zero) + veps);
  }
}

// The 8-lane builds (16 vector registers): NV vectors of channels j0 .. j0 + 8 NV - 1 per pass, the encoder's
// columns read from L1 as operands of the fused multiply-adds (not held in registers), each edge feature broadcast
// once for all NV vectors (q outer, vectors inner: every lane still forms z as x, + a, then + u_q A_q for q = 0..k-1,
// as message8 does). Live registers: NV z, one broadcast, and the running state (o; with STATS also n and w).
template <int NV, bool PERM, bool STATS, typename index_t>
void max_pass_enc_rows(const Graph<float, index_t>& G, int64_t lo, int64_t deg, int64_t j0, float* o, int32_t* n,
                       int32_t* w) {
  constexpr int K = kEncK;
  const int64_t c = G.c;
  const float* __restrict__ x = G.x + j0;
  const index_t* __restrict__ src = G.src + lo;
  const index_t* __restrict__ perm = PERM ? G.perm + lo : nullptr;
  const float* __restrict__ u = PERM ? G.u : G.u + lo * K;
  const float* __restrict__ At = G.At + j0;
  const float* __restrict__ a = G.a ? G.a + j0 : nullptr;
  const v8f zero{}, veps = zero + G.eps;
  v8f vo[NV];
  v8i vn[NV], vw[NV];
  for (int g = 0; g < NV; ++g) { vo[g] = zero - std::numeric_limits<float>::infinity(); vn[g] = v8i{}; vw[g] = v8i{} - 1; }
  v8i dv = v8i{};
  const v8i one = v8i{} + 1;
  for (int64_t d = 0; d < deg; ++d) {
    if (d + kAhead < deg) {                                  // this pass's channels of a row kAhead edges on
      const char* pf = reinterpret_cast<const char*>(x + static_cast<int64_t>(src[d + kAhead]) * c);
      for (int b = 0; b < NV * 32; b += 64) __builtin_prefetch(pf + b);
      __builtin_prefetch(pf + NV * 32 - 1);
      if (PERM) __builtin_prefetch(u + static_cast<int64_t>(perm[d + kAhead]) * K);
    }
    const float* ur = PERM ? u + static_cast<int64_t>(perm[d]) * K : u + d * K;
    const float* xr = x + static_cast<int64_t>(src[d]) * c;
    v8f z[NV];
#pragma GCC unroll 8
    for (int g = 0; g < NV; ++g) {
      z[g] = load8(xr + 8 * g);
      if (a) z[g] += load8(a + 8 * g);
    }
#pragma GCC unroll 16
    for (int q = 0; q < K; ++q) {
#pragma GCC unroll 8
      for (int g = 0; g < NV; ++g) z[g] += ur[q] * load8(At + q * c + 8 * g);
    }
#pragma GCC unroll 8
    for (int g = 0; g < NV; ++g) {
      if constexpr (STATS) {
        track_lanes(z[g], veps, vo[g], vn[g], vw[g], dv);
      } else {
        vo[g] = z[g] > vo[g] ? z[g] : vo[g];                 // NaN never wins, as in track_lanes
      }
    }
    if constexpr (STATS) dv += one;
  }
  for (int g = 0; g < NV; ++g) {
    if constexpr (STATS) {
      store8(o + j0 + 8 * g, vo[g]);
      store8(n + j0 + 8 * g, vn[g]);
      store8(w + j0 + 8 * g, vw[g]);
    } else {
      store8(o + j0 + 8 * g, (vo[g] > zero ? vo[g] : zero) + veps);
    }
  }
}

template <bool PERM, bool STATS, typename index_t>
void max_node_enc(const Graph<float, index_t>& G, int64_t lo, int64_t deg, float* o, int32_t* n, int32_t* w) {
  int64_t j0 = 0;
#ifdef __AVX512F__
  for (; j0 + 16 <= G.c; j0 += 16) max_pass_enc<v16f, v16i, PERM, STATS>(G, lo, deg, j0, o, n, w);
  for (; j0 < G.c; j0 += 8) max_pass_enc<v8f, v8i, PERM, STATS>(G, lo, deg, j0, o, n, w);
#else
  constexpr int64_t per = STATS ? kRowsStats : kRowsMax;     // vectors per pass
  for (; j0 + 8 * per <= G.c; j0 += 8 * per) max_pass_enc_rows<per, PERM, STATS>(G, lo, deg, j0, o, n, w);
  switch ((G.c - j0) / 8) {
    case 0: break;
    case 1: max_pass_enc_rows<1, PERM, STATS>(G, lo, deg, j0, o, n, w); break;
    case 2: max_pass_enc_rows<2, PERM, STATS>(G, lo, deg, j0, o, n, w); break;
    case 3: max_pass_enc_rows<3, PERM, STATS>(G, lo, deg, j0, o, n, w); break;
    default: max_pass_enc_rows<4, PERM, STATS>(G, lo, deg, j0, o, n, w); break;
  }
#endif
}

// max over a node's edges lo..lo+deg-1, float32, c % 8 == 0: with ``stats`` its tie count n and arg edge w (see
// max_track), without them the maximum alone
template <typename index_t>
void max_node8(const Graph<float, index_t>& G, int64_t lo, int64_t deg, float* o, int32_t* n, int32_t* w,
               bool stats) {
  if (G.mode == 2 && G.k == kEncK) {
    if (G.perm) {
      if (stats) max_node_enc<true, true>(G, lo, deg, o, n, w); else max_node_enc<true, false>(G, lo, deg, o, n, w);
    } else {
      if (stats) max_node_enc<false, true>(G, lo, deg, o, n, w); else max_node_enc<false, false>(G, lo, deg, o, n, w);
    }
  } else if (G.mode == 2) {
    if (stats) max_node8_mode<2, true>(G, lo, deg, o, n, w); else max_node8_mode<2, false>(G, lo, deg, o, n, w);
  } else if (G.mode == 1) {
    if (stats) max_node8_mode<1, true>(G, lo, deg, o, n, w); else max_node8_mode<1, false>(G, lo, deg, o, n, w);
  } else {
    if (stats) max_node8_mode<0, true>(G, lo, deg, o, n, w); else max_node8_mode<0, false>(G, lo, deg, o, n, w);
  }
}

// o += ReLU(z) + eps; m = ReLU(z) + eps, s = max(s, t m)  (restrict: vectorised)
template <typename T>
inline void add_relu(T* __restrict__ o, const T* __restrict__ z, int64_t c, T eps) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) o[j] += (z[j] > T(0) ? z[j] : T(0)) + eps;
}
template <typename T>
inline void relu_max_scaled(T* __restrict__ z, T* __restrict__ s, int64_t c, T eps, T t) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) {
    z[j] = (z[j] > T(0) ? z[j] : T(0)) + eps;
    const T v = z[j] * t;
    s[j] = s[j] > v ? s[j] : v;
  }
}
template <typename T>
inline void relu_grad(T* __restrict__ dz, const T* __restrict__ z, const T* __restrict__ gn, int64_t c) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) dz[j] = z[j] > T(0) ? gn[j] : T(0);
}

// the running maximum of a node with its tie bookkeeping, one edge (position d among the node's edges) at a time:
// m = ReLU(z) + eps; a larger m restarts the count (n = 1) and the arg edge (w = d, or -1 when z <= 0: such a maximum
// passes no gradient); an equal m counts one more tie (n += 1) and, when it passes ReLU, becomes the arg edge. At the
// end n is the number of edges whose message equals the maximum and w the last of them with z > 0 (-1 if none).
// Branch-free selects over float and int32 lanes: the compiler vectorises it.
template <typename T>
inline void max_track(T* __restrict__ o, int32_t* __restrict__ n, int32_t* __restrict__ w, const T* __restrict__ z,
                      int64_t c, T eps, int32_t d) {
#pragma omp simd
  for (int64_t j = 0; j < c; ++j) {
    const T zj = z[j];
    const T m = (zj > T(0) ? zj : T(0)) + eps;
    const bool gt = m > o[j], eq = m == o[j], pos = zj > T(0);
    n[j] = gt ? 1 : (eq ? n[j] + 1 : n[j]);
    w[j] = gt ? (pos ? d : -1) : ((eq && pos) ? d : w[j]);
    o[j] = gt ? m : o[j];
  }
}

int64_t max_degree(const int64_t* rowptr, int64_t N) {
  int64_t d = 0;
  for (int64_t i = 0; i < N; ++i) d = std::max(d, rowptr[i + 1] - rowptr[i]);
  return d;
}

template <typename scalar_t, typename index_t>
void forward_impl(const Graph<scalar_t, index_t>& G, int64_t N, int64_t aggr, double t_, scalar_t* out,
                  int32_t* cnt, int32_t* arg, scalar_t* M, scalar_t* S, int nthreads) {
  const bool stats = cnt != nullptr;                                   // max: tie count and arg edge for backward
  const int64_t c = G.c;
  const int64_t dmax = max_degree(G.rowptr, N);
  const scalar_t t = static_cast<scalar_t>(t_), eps = G.eps;
  const scalar_t guard = static_cast<scalar_t>(1e-16);
#pragma omp parallel num_threads(nthreads)
  {
    std::vector<scalar_t> buf(std::max<int64_t>(dmax, 1) * c);
    std::vector<scalar_t> acc(2 * c);
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t lo = G.rowptr[i], deg = G.rowptr[i + 1] - lo;
      scalar_t* __restrict__ o = out + i * c;
      if (deg == 0) {
        for (int64_t j = 0; j < c; ++j) o[j] = 0;
        if (aggr == 0 && stats) for (int64_t j = 0; j < c; ++j) { cnt[i * c + j] = 0; arg[i * c + j] = -1; }
        if (aggr == 1) for (int64_t j = 0; j < c; ++j) { M[i * c + j] = 0; S[i * c + j] = 1; }
        continue;
      }
      scalar_t* __restrict__ B = buf.data();
      if (aggr == 0) {                                                   // one pass: no (deg, c) buffer
        int32_t* __restrict__ n = stats ? cnt + i * c : nullptr;
        int32_t* __restrict__ w = stats ? arg + i * c : nullptr;
        if constexpr (std::is_same<scalar_t, float>::value) {
          if (lanes8<scalar_t>(c)) {
            max_node8(G, lo, deg, o, n, w, stats);
            continue;
          }
        }
        if (!stats) {                                                    // the maximum alone: ReLU(max z) + eps
          for (int64_t j = 0; j < c; ++j) o[j] = -std::numeric_limits<scalar_t>::infinity();
          for (int64_t d = 0; d < deg; ++d) {
            G.prefetch(lo + d + kAhead);
            G.message(lo + d, B);
            for (int64_t j = 0; j < c; ++j) o[j] = B[j] > o[j] ? B[j] : o[j];
          }
          for (int64_t j = 0; j < c; ++j) o[j] = (o[j] > scalar_t(0) ? o[j] : scalar_t(0)) + eps;
          continue;
        }
        for (int64_t j = 0; j < c; ++j) { o[j] = -std::numeric_limits<scalar_t>::infinity(); n[j] = 0; w[j] = -1; }
        for (int64_t d = 0; d < deg; ++d) {
          G.prefetch(lo + d + kAhead);
          G.message(lo + d, B);
          max_track(o, n, w, B, c, eps, static_cast<int32_t>(d));
        }
        continue;
      }
      for (int64_t d = 0; d < deg; ++d) {                                // z, (deg, c)
        G.prefetch(lo + d + kAhead);
        G.message(lo + d, B + d * c);
      }
      if (aggr == 1) {
        scalar_t* __restrict__ mx = M + i * c;
        scalar_t* __restrict__ s = S + i * c;
        for (int64_t j = 0; j < c; ++j) { mx[j] = -std::numeric_limits<scalar_t>::infinity(); s[j] = 0; o[j] = 0; }
        for (int64_t d = 0; d < deg; ++d) relu_max_scaled(B + d * c, mx, c, eps, t);   // m in place, max t m
        for (int64_t d = 0; d < deg; ++d) {
          const scalar_t* __restrict__ m = B + d * c;
          for (int64_t j = 0; j < c; ++j) {
            const scalar_t w = std::exp(m[j] * t - mx[j]);
            s[j] += w;
            o[j] += w * m[j];
          }
        }
        for (int64_t j = 0; j < c; ++j) {
          s[j] += guard;                                                 // PyG's guard; no in-edges handled above
          o[j] /= s[j];
        }
      } else {
        for (int64_t j = 0; j < c; ++j) o[j] = 0;
        for (int64_t d = 0; d < deg; ++d) add_relu(o, B + d * c, c, eps);
        if (aggr == 2) {
          const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(deg);
          for (int64_t j = 0; j < c; ++j) o[j] *= inv;
        }
      }
    }
  }
}

template <typename scalar_t, typename index_t>
struct Grads {
  scalar_t* gx;   // (N, c) per thread
  scalar_t* gwt;  // (k, c) per thread, transposed: whole edges add rows of c channels (scatter_edge)
  scalar_t* gwc;  // (c, k) per thread: one channel adds a row of k features (scatter_channel; one vector at k = 8)
  scalar_t* gb;   // (c,) per thread
  double gt;
};

// scatter the gradient dz (c,) of edge e to its source, the encoder and the edge features
template <typename scalar_t, typename index_t>
inline void scatter_edge(const Graph<scalar_t, index_t>& G, int64_t e, const scalar_t* __restrict__ dz,
                         Grads<scalar_t, index_t>& R, scalar_t* gu) {
  const int64_t c = G.c, k = G.k;
  if (R.gx) add_to(R.gx + static_cast<int64_t>(G.src[e]) * c, dz, c);
  if (R.gb) add_to(R.gb, dz, c);
  if (G.mode == 2 && (R.gwt || gu)) {
    const int64_t ue = G.uidx(e);
    const scalar_t* ur = G.u + ue * k;
    for (int64_t q = 0; q < k; ++q) {
      if (R.gwt) axpy(R.gwt + q * c, dz, ur[q], c);
      if (gu) gu[ue * k + q] += dot(G.At + q * c, dz, c);
    }
  } else if (G.mode == 1 && gu) {
    add_to(gu + G.uidx(e) * c, dz, c);
  }
}

// scatter the gradient gj of channel j of edge e alone (max without ties: one arg edge per channel)
template <typename scalar_t, typename index_t>
inline void scatter_channel(const Graph<scalar_t, index_t>& G, int64_t e, int64_t j, scalar_t gj,
                            Grads<scalar_t, index_t>& R, scalar_t* gu) {
  const int64_t c = G.c, k = G.k;
  if (R.gx) R.gx[static_cast<int64_t>(G.src[e]) * c + j] += gj;
  if (R.gb) R.gb[j] += gj;
  if (G.mode == 2 && (R.gwc || gu)) {
    const int64_t ue = G.uidx(e);
    const scalar_t* __restrict__ ur = G.u + ue * k;
    if (R.gwc) {
      scalar_t* __restrict__ gr = R.gwc + j * k;
      if constexpr (std::is_same<scalar_t, float>::value) {
        if (k == kEncK) {                                  // one 8-lane vector (a runtime-length loop costs 3x)
          store8(gr, load8(gr) + gj * load8(ur));
          goto done;
        }
      }
#pragma omp simd
      for (int64_t q = 0; q < k; ++q) gr[q] += gj * ur[q];
    }
  done:
    if (gu)
      for (int64_t q = 0; q < k; ++q) gu[ue * k + q] += gj * G.At[q * c + j];
  } else if (G.mode == 1 && gu) {
    gu[G.uidx(e) * c + j] += gj;
  }
}

template <typename scalar_t, typename index_t>
void backward_impl(const Graph<scalar_t, index_t>& G, int64_t N, int64_t aggr, double t_, const scalar_t* g,
                   const scalar_t* out, const int32_t* cnt, const int32_t* arg, const scalar_t* M, const scalar_t* S,
                   scalar_t* gx, scalar_t* gu, scalar_t* gw, scalar_t* gb, double* gt, bool need_t, int nthreads) {
  const int64_t c = G.c, k = G.k;
  const int64_t dmax = max_degree(G.rowptr, N);
  const scalar_t t = static_cast<scalar_t>(t_), eps = G.eps;
  // per-thread accumulators; thread 0 writes gx directly
  std::vector<std::vector<scalar_t>> gx_t(nthreads > 1 && gx ? nthreads - 1 : 0);
  std::vector<std::vector<scalar_t>> gw_t(nthreads), gwc_t(nthreads), gb_t(nthreads);
  std::vector<double> gt_t(nthreads, 0.0);
#pragma omp parallel num_threads(nthreads)
  {
    const int tid = thread_id();
    if (gx && tid > 0) gx_t[tid - 1].assign(N * c, scalar_t(0));
    if (gw) gw_t[tid].assign(k * c, scalar_t(0));
    if (gw && aggr == 0) gwc_t[tid].assign(c * k, scalar_t(0));
    if (gb) gb_t[tid].assign(c, scalar_t(0));
    Grads<scalar_t, index_t> R{gx ? (tid == 0 ? gx : gx_t[tid - 1].data()) : nullptr,
                               gw ? gw_t[tid].data() : nullptr, gw && aggr == 0 ? gwc_t[tid].data() : nullptr,
                               gb ? gb_t[tid].data() : nullptr, 0.0};
    std::vector<scalar_t> buf(std::max<int64_t>(dmax, 1) * c);
    std::vector<scalar_t> dz(c), gn(c);
#pragma omp barrier
#pragma omp for schedule(dynamic, 64)
    for (int64_t i = 0; i < N; ++i) {
      const int64_t lo = G.rowptr[i], deg = G.rowptr[i + 1] - lo;
      if (deg == 0) continue;
      const scalar_t* gi = g + i * c;
      const scalar_t* oi = out + i * c;
      if (aggr == 0) {
        const int32_t* n = cnt + i * c;
        const int32_t* w = arg + i * c;                                 // arg position in the node
        bool tied = false;
        if ((gw || gu) && G.mode == 2 && i + 1 < N) {                  // the next node's edge features, ahead of
          const int64_t lo1 = G.rowptr[i + 1], hi1 = G.rowptr[i + 2];   // use: its channels read them at random
          if (!G.perm) {                                                // (measured: backward 10.6 -> 6.1 ms on
            const char* p0 = reinterpret_cast<const char*>(G.u + lo1 * k);   // the partition, c = 40, k = 8)
            const char* p1 = reinterpret_cast<const char*>(G.u + hi1 * k);
            for (; p0 < p1; p0 += 64) __builtin_prefetch(p0);
          } else {
            for (int64_t e = lo1; e < hi1; ++e) __builtin_prefetch(G.u + G.uidx(e) * k);
          }
        }
        for (int64_t j = 0; j < c; ++j) {
          if (n[j] > 1) {                                               // recompute only if a tie passes ReLU
            tied = tied || w[j] >= 0;
            continue;
          }
          if (w[j] < 0 || gi[j] == 0) continue;                       // the single maximum has z <= 0
          scatter_channel(G, lo + w[j], j, gi[j], R, gu);
        }
        if (!tied) continue;
        for (int64_t d = 0; d < deg; ++d) {                            // ties: split g evenly, then ReLU'
          const int64_t e = lo + d;
          G.message(e, buf.data());
          const scalar_t* z = buf.data();
          bool any = false;
          for (int64_t j = 0; j < c; ++j) {
            dz[j] = 0;
            if (n[j] > 1 && z[j] > 0 && std::max(z[j], scalar_t(0)) + eps == oi[j]) {
              dz[j] = gi[j] / static_cast<scalar_t>(n[j]);
              any = true;
            }
          }
          if (any) scatter_edge(G, e, dz.data(), R, gu);
        }
        continue;
      }
      if (aggr == 1) {
        for (int64_t j = 0; j < c; ++j) gn[j] = gi[j] / S[i * c + j];
      } else if (aggr == 2) {
        const scalar_t inv = scalar_t(1) / static_cast<scalar_t>(deg);
        for (int64_t j = 0; j < c; ++j) gn[j] = gi[j] * inv;
      } else {
        for (int64_t j = 0; j < c; ++j) gn[j] = gi[j];
      }
      const scalar_t* mx = M ? M + i * c : nullptr;
      double gt_local = 0.0;
      for (int64_t d = 0; d < deg; ++d) {
        const int64_t e = lo + d;
        scalar_t* __restrict__ z = buf.data();
        G.prefetch(e + kAhead);
        G.message(e, z);
        if (aggr == 1) {
          scalar_t gtl = 0;
          for (int64_t j = 0; j < c; ++j) {
            const scalar_t m = std::max(z[j], scalar_t(0)) + eps;
            const scalar_t gp = std::exp(m * t - mx[j]) * gn[j];           // g p
            const scalar_t diff = m - oi[j];
            gtl += gp * diff * diff;                                    // g p (m - out)^2: no cancellation
            dz[j] = z[j] > 0 ? gp * (scalar_t(1) + t * diff) : scalar_t(0);
          }
          gt_local += gtl;
        } else {
          relu_grad(dz.data(), z, gn.data(), c);
        }
        scatter_edge(G, e, dz.data(), R, gu);
      }
      gt_t[tid] += gt_local;
    }
  }
  std::vector<const scalar_t*> parts;                                   // a smaller team leaves some unused
  for (auto& b : gx_t)
    if (!b.empty()) parts.push_back(b.data());
  if (gx && !parts.empty()) {
    const int64_t total = N * c;
#pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int64_t p = 0; p < total; ++p) {
      scalar_t s = gx[p];
      for (const scalar_t* b : parts) s += b[p];
      gx[p] = s;
    }
  }
  for (int th = 0; th < nthreads; ++th) {
    if (gw && !gw_t[th].empty())
      for (int64_t q = 0; q < k; ++q)
        for (int64_t j = 0; j < c; ++j) gw[j * k + q] += gw_t[th][q * c + j];
    if (gw && !gwc_t[th].empty())
      for (int64_t p = 0; p < c * k; ++p) gw[p] += gwc_t[th][p];
    if (gb && !gb_t[th].empty())
      for (int64_t j = 0; j < c; ++j) gb[j] += gb_t[th][j];
    *gt += gt_t[th];
  }
  (void)need_t;
}

template <typename scalar_t, typename index_t>
Graph<scalar_t, index_t> make_graph(const at::Tensor& x, const at::Tensor& src, const at::Tensor& rowptr,
                                    const at::Tensor& u, const at::Tensor& perm, const at::Tensor& At,
                                    const at::Tensor& a, int64_t mode, double eps) {
  Graph<scalar_t, index_t> G;
  G.x = x.data_ptr<scalar_t>();
  G.src = src.data_ptr<index_t>();
  G.rowptr = rowptr.data_ptr<int64_t>();
  G.u = u.numel() ? u.data_ptr<scalar_t>() : nullptr;
  G.perm = perm.numel() ? perm.data_ptr<index_t>() : nullptr;
  G.At = At.numel() ? At.data_ptr<scalar_t>() : nullptr;
  G.a = a.numel() ? a.data_ptr<scalar_t>() : nullptr;
  G.c = x.size(1);
  G.k = mode == 2 ? At.size(0) : (mode == 1 ? x.size(1) : 0);
  G.mode = mode;
  G.E = src.numel();
  G.eps = static_cast<scalar_t>(eps);
  return G;
}

void check(const at::Tensor& x, const at::Tensor& src, const at::Tensor& rowptr, const at::Tensor& u,
           const at::Tensor& perm, const at::Tensor& At, const at::Tensor& a, int64_t mode) {
  TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.is_contiguous(), "x must be a contiguous (N, c) CPU tensor");
  TORCH_CHECK(src.scalar_type() == at::kLong || src.scalar_type() == at::kInt, "src must be int64 or int32");
  TORCH_CHECK(perm.numel() == 0 || perm.scalar_type() == src.scalar_type(), "perm must have src's dtype");
  TORCH_CHECK(rowptr.scalar_type() == at::kLong && rowptr.numel() == x.size(0) + 1, "rowptr must be int64 (N+1)");
  TORCH_CHECK(src.is_contiguous() && rowptr.is_contiguous() && perm.is_contiguous(), "indices must be contiguous");
  if (mode == 1) TORCH_CHECK(u.dim() == 2 && u.size(1) == x.size(1) && u.is_contiguous(), "u must be (E, c)");
  if (mode == 2) TORCH_CHECK(u.dim() == 2 && At.dim() == 2 && At.size(0) == u.size(1) && At.size(1) == x.size(1) &&
                             u.is_contiguous() && At.is_contiguous(), "u (E, k) and At (k, c) must be contiguous");
  for (const auto* p : {&u, &At, &a})
    TORCH_CHECK(p->numel() == 0 || p->scalar_type() == x.scalar_type(), "all float inputs must share x's dtype");
}

std::vector<at::Tensor> forward(at::Tensor x, at::Tensor src, at::Tensor rowptr, at::Tensor u, at::Tensor perm,
                                at::Tensor At, at::Tensor a, int64_t mode, int64_t aggr, double t, double eps,
                                int64_t nthreads, bool stats) {
  check(x, src, rowptr, u, perm, At, a, mode);
  const int64_t N = x.size(0), c = x.size(1);
  auto out = at::empty({N, c}, x.options());
  at::Tensor cnt, arg, M, S;
  if (aggr == 0 && stats) {
    cnt = at::empty({N, c}, x.options().dtype(at::kInt));
    arg = at::empty({N, c}, x.options().dtype(at::kInt));
  } else if (aggr == 1) {
    M = at::empty({N, c}, x.options());
    S = at::empty({N, c}, x.options());
  }
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "genconv_forward", [&] {
    auto run = [&](auto idx) {
      using index_t = decltype(idx);
      auto G = make_graph<scalar_t, index_t>(x, src, rowptr, u, perm, At, a, mode, eps);
      forward_impl<scalar_t, index_t>(G, N, aggr, t, out.data_ptr<scalar_t>(),
                                      cnt.defined() ? cnt.data_ptr<int32_t>() : nullptr,
                                      arg.defined() ? arg.data_ptr<int32_t>() : nullptr,
                                      aggr == 1 ? M.data_ptr<scalar_t>() : nullptr,
                                      aggr == 1 ? S.data_ptr<scalar_t>() : nullptr, static_cast<int>(nthreads));
    };
    if (src.scalar_type() == at::kInt) run(int32_t{0}); else run(int64_t{0});
  });
  if (aggr == 0 && stats) return {out, cnt, arg};
  if (aggr == 1) return {out, M, S};
  return {out};
}

std::vector<at::Tensor> backward(at::Tensor g, at::Tensor x, at::Tensor src, at::Tensor rowptr, at::Tensor u,
                                 at::Tensor perm, at::Tensor At, at::Tensor a, int64_t mode, int64_t aggr, double t,
                                 double eps, at::Tensor out, at::Tensor s1, at::Tensor s2, bool need_x, bool need_u,
                                 bool need_w, bool need_b, bool need_t, int64_t nthreads) {
  check(x, src, rowptr, u, perm, At, a, mode);
  TORCH_CHECK(g.sizes() == x.sizes() && g.is_contiguous() && g.scalar_type() == x.scalar_type(), "bad gradient");
  const int64_t N = x.size(0), c = x.size(1);
  const int64_t k = mode == 2 ? At.size(0) : c;
  auto gx = need_x ? at::zeros({N, c}, x.options()) : at::Tensor();
  auto gu = need_u && mode ? at::zeros_like(u) : at::Tensor();
  auto gw = need_w && mode == 2 ? at::zeros({c, k}, x.options()) : at::Tensor();
  auto gb = need_b ? at::zeros({c}, x.options()) : at::Tensor();
  double gt = 0.0;
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "genconv_backward", [&] {
    auto run = [&](auto idx) {
      using index_t = decltype(idx);
      auto G = make_graph<scalar_t, index_t>(x, src, rowptr, u, perm, At, a, mode, eps);
      backward_impl<scalar_t, index_t>(
          G, N, aggr, t, g.data_ptr<scalar_t>(), out.data_ptr<scalar_t>(),
          aggr == 0 ? s1.data_ptr<int32_t>() : nullptr, aggr == 0 ? s2.data_ptr<int32_t>() : nullptr,
          aggr == 1 ? s1.data_ptr<scalar_t>() : nullptr, aggr == 1 ? s2.data_ptr<scalar_t>() : nullptr,
          gx.defined() ? gx.data_ptr<scalar_t>() : nullptr, gu.defined() ? gu.data_ptr<scalar_t>() : nullptr,
          gw.defined() ? gw.data_ptr<scalar_t>() : nullptr, gb.defined() ? gb.data_ptr<scalar_t>() : nullptr, &gt,
          need_t, static_cast<int>(nthreads));
    };
    if (src.scalar_type() == at::kInt) run(int32_t{0}); else run(int64_t{0});
  });
  auto gt_tensor = at::full({1}, gt, x.options());
  return {gx, gu, gw, gb, gt_tensor};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &forward, "GENConv aggregation per destination node (forward; stats: what backward needs)");
  m.def("backward", &backward, "GENConv aggregation per destination node (backward, recomputing messages)");
}
