// The per-layer kernels of the compiled FC engine (docs/maths.md §1, §5), for one network.
//
// Included twice by fc_engine.cpp: once in namespace `avx2` compiled for AVX2 + FMA, once in
// namespace `base` for the compiler's default instruction set; the extension picks one at run
// time from the CPU it runs on, so the same build runs on any x86-64 machine.
//
// Layout: a network's hidden states h_k, activations σ(z_k) and adjoints p_k are kept *column-major*,
// one row of Np samples per coordinate (T[d][Np]); Np is the batch rounded up to the chunk of
// W = 4 vectors, so every inner loop runs over whole vectors of samples. The padded samples
// carry a zero adjoint, so they add nothing to any gradient.
//
// Needs from the includer: the 32-byte vector types `vf` (8 floats) and `vd` (4 doubles), and
// `vec_tanh(vd)`; `vec_tanh(vf)` is defined here.

template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef vf type;
  static constexpr int lanes = 8;
};
template <>
struct Vec<double> {
  typedef vd type;
  static constexpr int lanes = 4;
};

constexpr int CHUNK = 4;  // vectors per chunk of samples
template <typename T>
constexpr int chunk_width() { return CHUNK * Vec<T>::lanes; }

enum { ACT_TANH = 0, ACT_RELU = 1 };

template <typename T>
static inline __attribute__((always_inline)) typename Vec<T>::type vload(const T* p) {
  typename Vec<T>::type v;
  __builtin_memcpy(&v, p, sizeof(v));
  return v;
}

template <typename T>
static inline __attribute__((always_inline)) void vstore(T* p, typename Vec<T>::type v) {
  __builtin_memcpy(p, &v, sizeof(v));
}

template <typename T>
static inline __attribute__((always_inline)) typename Vec<T>::type vsplat(T x) {
  if constexpr (Vec<T>::lanes == 8)
    return typename Vec<T>::type{x, x, x, x, x, x, x, x};
  else
    return typename Vec<T>::type{x, x, x, x};
}

static inline __attribute__((always_inline)) auto vsplat_bits(unsigned x) {
  typedef unsigned vu __attribute__((vector_size(32)));
  return vu{x, x, x, x, x, x, x, x};
}

// tanh of 8 floats within 1.33 ulp of the exact value (measured over every float in [-20, 20]):
// x + x³ P(x²) for |x| < 0.625, else sign(x) (1 - 2 / (exp(2|x|) + 1)), with the polynomials of
// Cephes' tanhf and expf; NaN stays NaN, ±∞ gives ±1. Inlined, it costs about half of a call
// to SLEEF's tanhf8_u10, which dominated the step at d = 10.
static inline __attribute__((always_inline)) vf vec_tanh(vf x) {
  typedef int vi __attribute__((vector_size(32)));
  typedef unsigned vu __attribute__((vector_size(32)));
  const vf one = vsplat<float>(1.0f);
  const vf ax = (vf)((vu)x & vsplat_bits(0x7fffffffu));
  const vf z = x * x;
  vf p = vsplat<float>(-5.70498872745e-3f);
  p = p * z + vsplat<float>(2.06390887954e-2f);
  p = p * z + vsplat<float>(-5.37397155531e-2f);
  p = p * z + vsplat<float>(1.33314422036e-1f);
  p = p * z + vsplat<float>(-3.33332819422e-1f);
  const vf small = p * z * x + x;
  vf t = ax + ax;
  t = t > vsplat<float>(88.0f) ? vsplat<float>(88.0f) : t;  // exp(88) is finite; NaN passes
  const vi ni = __builtin_convertvector(t * vsplat<float>(1.44269504088896341f) + vsplat<float>(0.5f), vi);
  const vf n = __builtin_convertvector(ni, vf);  // round(t / log 2), t ≥ 0
  vf r = t - n * vsplat<float>(0.693359375f);
  r = r - n * vsplat<float>(-2.12194440e-4f);
  vf e = vsplat<float>(1.9875691500e-4f);
  e = e * r + vsplat<float>(1.3981999507e-3f);
  e = e * r + vsplat<float>(8.3334519073e-3f);
  e = e * r + vsplat<float>(4.1665795894e-2f);
  e = e * r + vsplat<float>(1.6666665459e-1f);
  e = e * r + vsplat<float>(5.0000001201e-1f);
  e = e * r * r + r + one;
  e = (vf)((vu)e + ((vu)ni << 23));  // × 2^n
  vf big = one - vsplat<float>(2.0f) / (e + one);
  big = (vf)((vu)big | ((vu)x & vsplat_bits(0x80000000u)));
  return ax >= vsplat<float>(0.625f) ? big : small;
}

template <typename T, int ACT>
static inline __attribute__((always_inline)) typename Vec<T>::type activate(typename Vec<T>::type z) {
  if constexpr (ACT == ACT_TANH) {
    return vec_tanh(z);
  } else {
    typename Vec<T>::type zero = vsplat<T>(T(0));
    return z > zero ? z : zero;  // clamp(z, min=0): relu(-0.0) = -0.0 > 0 is false, so 0
  }
}

// σ'(z_k) from σ(z_k) (the activation's grad_from_value): 1 - s² for tanh, 1{s > 0} for ReLU.
template <typename T, int ACT>
static inline __attribute__((always_inline)) typename Vec<T>::type slope(typename Vec<T>::type s) {
  typename Vec<T>::type one = vsplat<T>(T(1));
  if constexpr (ACT == ACT_TANH) {
    return one - s * s;
  } else {
    typename Vec<T>::type zero = vsplat<T>(T(0));
    return s > zero ? one : zero;
  }
}

// One layer forward on Np samples: s = σ(A h + b), h_next = h + δ s (s stored when `s` is
// not null). Two output rows at a time share the loads of h.
template <typename T, int ACT>
static void forward_layer(int d, int Np, const T* __restrict A, const T* __restrict b, T delta,
                          const T* __restrict h, T* __restrict s, T* __restrict hn) {
  typedef typename Vec<T>::type V;
  constexpr int lanes = Vec<T>::lanes, W = chunk_width<T>();
  const V dv = vsplat<T>(delta);
  for (int c0 = 0; c0 < Np; c0 += W) {
    int i = 0;
    for (; i + 2 <= d; i += 2) {
      V z0[CHUNK], z1[CHUNK];
      const V b0 = vsplat<T>(b[i]), b1 = vsplat<T>(b[i + 1]);
      for (int q = 0; q < CHUNK; ++q) { z0[q] = b0; z1[q] = b1; }
      const T* a0 = A + i * d;
      const T* a1 = a0 + d;
      for (int j = 0; j < d; ++j) {
        const V w0 = vsplat<T>(a0[j]), w1 = vsplat<T>(a1[j]);
        const T* hj = h + j * Np + c0;
        for (int q = 0; q < CHUNK; ++q) {
          const V hv = vload<T>(hj + q * lanes);
          z0[q] += w0 * hv;
          z1[q] += w1 * hv;
        }
      }
      for (int q = 0; q < CHUNK; ++q) {
        const int o0 = i * Np + c0 + q * lanes, o1 = o0 + Np;
        const V s0 = activate<T, ACT>(z0[q]), s1 = activate<T, ACT>(z1[q]);
        if (s) { vstore<T>(s + o0, s0); vstore<T>(s + o1, s1); }
        vstore<T>(hn + o0, vload<T>(h + o0) + dv * s0);
        vstore<T>(hn + o1, vload<T>(h + o1) + dv * s1);
      }
    }
    for (; i < d; ++i) {
      V z0[CHUNK];
      const V b0 = vsplat<T>(b[i]);
      for (int q = 0; q < CHUNK; ++q) z0[q] = b0;
      const T* a0 = A + i * d;
      for (int j = 0; j < d; ++j) {
        const V w0 = vsplat<T>(a0[j]);
        const T* hj = h + j * Np + c0;
        for (int q = 0; q < CHUNK; ++q) z0[q] += w0 * vload<T>(hj + q * lanes);
      }
      for (int q = 0; q < CHUNK; ++q) {
        const int o0 = i * Np + c0 + q * lanes;
        const V s0 = activate<T, ACT>(z0[q]);
        if (s) vstore<T>(s + o0, s0);
        vstore<T>(hn + o0, vload<T>(h + o0) + dv * s0);
      }
    }
  }
}

// The lane sums of `lanes` vectors, as one vector (a transpose-and-add tree).
template <typename T>
static inline __attribute__((always_inline)) typename Vec<T>::type lane_sums(const typename Vec<T>::type* a) {
  typedef typename Vec<T>::type V;
  if constexpr (Vec<T>::lanes == 8) {
    typedef int M __attribute__((vector_size(32)));
    const M even = {0, 8, 2, 10, 4, 12, 6, 14}, odd = {1, 9, 3, 11, 5, 13, 7, 15};
    const M lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const M lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    V t[4], u[2];
    for (int r = 0; r < 4; ++r)
      t[r] = __builtin_shuffle(a[2 * r], a[2 * r + 1], even) + __builtin_shuffle(a[2 * r], a[2 * r + 1], odd);
    for (int r = 0; r < 2; ++r)
      u[r] = __builtin_shuffle(t[2 * r], t[2 * r + 1], lo2) + __builtin_shuffle(t[2 * r], t[2 * r + 1], hi2);
    return __builtin_shuffle(u[0], u[1], lo4) + __builtin_shuffle(u[0], u[1], hi4);
  } else {
    typedef long long M __attribute__((vector_size(32)));
    const M even = {0, 4, 2, 6}, odd = {1, 5, 3, 7}, lo2 = {0, 1, 4, 5}, hi2 = {2, 3, 6, 7};
    V t[2];
    for (int r = 0; r < 2; ++r)
      t[r] = __builtin_shuffle(a[2 * r], a[2 * r + 1], even) + __builtin_shuffle(a[2 * r], a[2 * r + 1], odd);
    return __builtin_shuffle(t[0], t[1], lo2) + __builtin_shuffle(t[0], t[1], hi2);
  }
}

// out[l] = Σ_n u_n h_{l,n} for the R rows h_l (R ≤ lanes) of a block of rows Np apart.
template <typename T, int R>
static inline __attribute__((always_inline)) void gradient_row(int Np, const T* __restrict u, const T* __restrict h,
                                                                T* __restrict out) {
  typedef typename Vec<T>::type V;
  constexpr int lanes = Vec<T>::lanes;
  V acc[lanes];
#pragma GCC unroll 8
  for (int l = 0; l < lanes; ++l) acc[l] = vsplat<T>(T(0));
  for (int c = 0; c < Np; c += lanes) {
    const V uv = vload<T>(u + c);
#pragma GCC unroll 8
    for (int l = 0; l < R; ++l) acc[l] += uv * vload<T>(h + l * Np + c);
  }
  const V sums = lane_sums<T>(acc);
  if constexpr (R == lanes) {
    vstore<T>(out, sums);
  } else {
#pragma GCC unroll 8
    for (int l = 0; l < R; ++l) out[l] = sums[l];
  }
}

// gradient_row for the last r < lanes rows, r known at run time.
template <typename T, int R = Vec<T>::lanes - 1>
static inline void gradient_rest(int r, int Np, const T* u, const T* h, T* out) {
  if constexpr (R >= 1) {
    if (r == R)
      gradient_row<T, R>(Np, u, h, out);
    else
      gradient_rest<T, R - 1>(r, Np, u, h, out);
  }
}

// RI rows of ∂ℓ/∂A = u hᵀ from the transposed h (`hr`, rows of JV vectors).
template <typename T, int JV, int RI>
static inline __attribute__((always_inline)) void gradient_outer_rows(int d, int Np, const T* __restrict u,
                                                                       const T* __restrict hr, T* __restrict gA) {
  typedef typename Vec<T>::type V;
  constexpr int lanes = Vec<T>::lanes, stride = JV * lanes;
  V acc[RI][JV];
#pragma GCC unroll 8
  for (int r = 0; r < RI; ++r)
#pragma GCC unroll 8
    for (int jv = 0; jv < JV; ++jv) acc[r][jv] = vsplat<T>(T(0));
  for (int n = 0; n < Np; ++n) {
    V hv[JV];
#pragma GCC unroll 8
    for (int jv = 0; jv < JV; ++jv) hv[jv] = vload<T>(hr + n * stride + jv * lanes);
#pragma GCC unroll 8
    for (int r = 0; r < RI; ++r) {
      const V ur = vsplat<T>(u[r * Np + n]);
#pragma GCC unroll 8
      for (int jv = 0; jv < JV; ++jv) acc[r][jv] += ur * hv[jv];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < RI; ++r)
#pragma GCC unroll 8
    for (int jv = 0; jv < JV; ++jv) {
      T* out = gA + r * d + jv * lanes;
      if ((jv + 1) * lanes <= d) {
        vstore<T>(out, acc[r][jv]);
      } else {
        for (int l = 0; l < d - jv * lanes; ++l) out[l] = acc[r][jv][l];
      }
    }
}

// gradient_outer_rows for the last rows (fewer than a block), their number known at run time.
template <typename T, int JV, int RI>
static inline void gradient_outer_rest(int rows, int d, int Np, const T* u, const T* hr, T* gA) {
  if constexpr (RI >= 1) {
    if (rows == RI)
      gradient_outer_rows<T, JV, RI>(d, Np, u, hr, gA);
    else
      gradient_outer_rest<T, JV, RI - 1>(rows, d, Np, u, hr, gA);
  }
}

// The transpose of `lanes` vectors (a lanes × lanes block), in place.
template <typename T>
static inline __attribute__((always_inline)) void transpose_block(typename Vec<T>::type* r) {
  typedef typename Vec<T>::type V;
  if constexpr (Vec<T>::lanes == 8) {
    typedef int M __attribute__((vector_size(32)));
    const M lo = {0, 8, 1, 9, 4, 12, 5, 13}, hi = {2, 10, 3, 11, 6, 14, 7, 15};
    const M lo2 = {0, 1, 8, 9, 4, 5, 12, 13}, hi2 = {2, 3, 10, 11, 6, 7, 14, 15};
    const M lo4 = {0, 1, 2, 3, 8, 9, 10, 11}, hi4 = {4, 5, 6, 7, 12, 13, 14, 15};
    V t[8], q[8];
    for (int k = 0; k < 4; ++k) {
      t[2 * k] = __builtin_shuffle(r[2 * k], r[2 * k + 1], lo);
      t[2 * k + 1] = __builtin_shuffle(r[2 * k], r[2 * k + 1], hi);
    }
    // q[0..3] columns {0,4},{1,5},{2,6},{3,7} of rows 0-3; q[4..7] the same of rows 4-7
    for (int k = 0; k < 2; ++k) {
      q[4 * k + 0] = __builtin_shuffle(t[4 * k], t[4 * k + 2], lo2);
      q[4 * k + 1] = __builtin_shuffle(t[4 * k], t[4 * k + 2], hi2);
      q[4 * k + 2] = __builtin_shuffle(t[4 * k + 1], t[4 * k + 3], lo2);
      q[4 * k + 3] = __builtin_shuffle(t[4 * k + 1], t[4 * k + 3], hi2);
    }
    for (int c = 0; c < 4; ++c) {
      r[c] = __builtin_shuffle(q[c], q[4 + c], lo4);
      r[c + 4] = __builtin_shuffle(q[c], q[4 + c], hi4);
    }
  } else {
    typedef long long M __attribute__((vector_size(32)));
    const M lo = {0, 4, 2, 6}, hi = {1, 5, 3, 7}, lo2 = {0, 1, 4, 5}, hi2 = {2, 3, 6, 7};
    const V t0 = __builtin_shuffle(r[0], r[1], lo), t1 = __builtin_shuffle(r[0], r[1], hi);
    const V t2 = __builtin_shuffle(r[2], r[3], lo), t3 = __builtin_shuffle(r[2], r[3], hi);
    r[0] = __builtin_shuffle(t0, t2, lo2);
    r[1] = __builtin_shuffle(t1, t3, lo2);
    r[2] = __builtin_shuffle(t0, t2, hi2);
    r[3] = __builtin_shuffle(t1, t3, hi2);
  }
}

// ∂ℓ/∂A = u hᵀ by outer products over the samples, for d ≤ JV lanes: h is first transposed
// into `hr` (Np rows of JV vectors, zero past d), then RI rows of ∂ℓ/∂A at a time accumulate
// u_{i,n} h_n in registers; no lane sums.
template <typename T, int JV>
static void gradient_outer(int d, int Np, const T* __restrict u, const T* __restrict h, T* __restrict hr,
                           T* __restrict gA) {
  typedef typename Vec<T>::type V;
  constexpr int lanes = Vec<T>::lanes, stride = JV * lanes;
  constexpr int RI = JV == 1 ? 8 : (14 / JV - 1 > 1 ? 14 / JV - 1 : 1);
  for (int n0 = 0; n0 < Np; n0 += lanes)
    for (int jv = 0; jv < JV; ++jv) {
      V r[lanes];
#pragma GCC unroll 8
      for (int l = 0; l < lanes; ++l) {
        const int j = jv * lanes + l;
        r[l] = j < d ? vload<T>(h + j * Np + n0) : vsplat<T>(T(0));
      }
      transpose_block<T>(r);
#pragma GCC unroll 8
      for (int l = 0; l < lanes; ++l) vstore<T>(hr + (n0 + l) * stride + jv * lanes, r[l]);
    }
  int i = 0;
  for (; i + RI <= d; i += RI) gradient_outer_rows<T, JV, RI>(d, Np, u + i * Np, hr, gA + i * d);
  if (i < d) gradient_outer_rest<T, JV, RI - 1>(d - i, d, Np, u + i * Np, hr, gA + i * d);
}

// One layer backward (docs/maths.md §5) from p = p_{k+1}:
//   u = δ σ'(z) ⊙ p,  ∂ℓ/∂b = Σ_n u,  ∂ℓ/∂δ = Σ p ⊙ σ(z),  ∂ℓ/∂A = u hᵀ,  p_k = p + Aᵀ u.
// `u` is a (d × Np) work block, `hr` one of Np × 4 vectors for the transposed h.
template <typename T, int ACT>
static void backward_layer(int d, int Np, const T* __restrict A, T delta, const T* __restrict h,
                           const T* __restrict s, const T* __restrict p, T* __restrict pn,
                           T* __restrict u, T* __restrict hr, T* __restrict gA,
                           T* __restrict gb, T* __restrict gdelta) {
  typedef typename Vec<T>::type V;
  constexpr int lanes = Vec<T>::lanes;
  const V dv = vsplat<T>(delta);
  V gd = vsplat<T>(T(0));
  for (int i = 0; i < d; ++i) {
    V gbv = vsplat<T>(T(0));
    for (int c = 0; c < Np; c += lanes) {
      const int o = i * Np + c;
      const V sv = vload<T>(s + o), pv = vload<T>(p + o);
      const V uv = (dv * slope<T, ACT>(sv)) * pv;
      vstore<T>(u + o, uv);
      gbv += uv;
      gd += pv * sv;
    }
    T acc = 0;
    for (int l = 0; l < lanes; ++l) acc += gbv[l];
    gb[i] = acc;
  }
  if (gdelta) {
    T acc = 0;
    for (int l = 0; l < lanes; ++l) acc += gd[l];
    *gdelta = acc;
  }
  // p_k = p + Aᵀ u, two rows of p_k at a time
  for (int c0 = 0; c0 < Np; c0 += chunk_width<T>()) {
    int j = 0;
    for (; j + 2 <= d; j += 2) {
      V r0[CHUNK], r1[CHUNK];
      for (int q = 0; q < CHUNK; ++q) {
        r0[q] = vload<T>(p + j * Np + c0 + q * lanes);
        r1[q] = vload<T>(p + (j + 1) * Np + c0 + q * lanes);
      }
      for (int i = 0; i < d; ++i) {
        const V w0 = vsplat<T>(A[i * d + j]), w1 = vsplat<T>(A[i * d + j + 1]);
        const T* ui = u + i * Np + c0;
        for (int q = 0; q < CHUNK; ++q) {
          const V uv = vload<T>(ui + q * lanes);
          r0[q] += w0 * uv;
          r1[q] += w1 * uv;
        }
      }
      for (int q = 0; q < CHUNK; ++q) {
        vstore<T>(pn + j * Np + c0 + q * lanes, r0[q]);
        vstore<T>(pn + (j + 1) * Np + c0 + q * lanes, r1[q]);
      }
    }
    for (; j < d; ++j) {
      V r0[CHUNK];
      for (int q = 0; q < CHUNK; ++q) r0[q] = vload<T>(p + j * Np + c0 + q * lanes);
      for (int i = 0; i < d; ++i) {
        const V w0 = vsplat<T>(A[i * d + j]);
        const T* ui = u + i * Np + c0;
        for (int q = 0; q < CHUNK; ++q) r0[q] += w0 * vload<T>(ui + q * lanes);
      }
      for (int q = 0; q < CHUNK; ++q) vstore<T>(pn + j * Np + c0 + q * lanes, r0[q]);
    }
  }
  // ∂ℓ/∂A_ij = Σ_n u_i h_j: by outer products up to 4 vectors of columns j (d ≤ 32 floats)
  switch ((d + lanes - 1) / lanes) {
    case 1: gradient_outer<T, 1>(d, Np, u, h, hr, gA); return;
    case 2: gradient_outer<T, 2>(d, Np, u, h, hr, gA); return;
    case 3: gradient_outer<T, 3>(d, Np, u, h, hr, gA); return;
    case 4: gradient_outer<T, 4>(d, Np, u, h, hr, gA); return;
    default: break;
  }
  // wider: dot products over the samples, `lanes` columns j at a time, their lane sums in one tree
  for (int i = 0; i < d; ++i) {
    const T* ui = u + i * Np;
    int j0 = 0;
    for (; j0 + lanes <= d; j0 += lanes) gradient_row<T, lanes>(Np, ui, h + j0 * Np, gA + i * d + j0);
    if (j0 < d) gradient_rest<T>(d - j0, Np, ui, h + j0 * Np, gA + i * d + j0);
  }
}

// -- whole networks -----------------------------------------------------------------------
// Weights are the engine's layer-major tensors: A (L, S, d, d), b (L, S, d), δ (L, S);
// inputs and targets (S, N, d). Network s of the ensemble touches only its own slices, so
// the networks may run on different threads.

// One training step's loss and gradients of network s: the forward pass keeps every h_k and
// σ(z_k) (column-major, in `work`), then the adjoint runs back through them.
template <typename T, int ACT>
static void train_network(int L, int S, int d, int N, int s, const T* A, const T* b, const T* delta,
                          const T* x, const T* y, T* loss, T* gA, T* gb, T* gdelta, std::vector<T>& work) {
  const int W = chunk_width<T>();
  const int Np = (N + W - 1) / W * W, blk = d * Np;
  work.resize(static_cast<size_t>(2 * L + 4) * blk + static_cast<size_t>(Np) * 4 * Vec<T>::lanes);
  T* H = work.data();
  T* Sg = H + static_cast<size_t>(L + 1) * blk;
  T* P = Sg + static_cast<size_t>(L) * blk;
  T* Pn = P + blk;
  T* U = Pn + blk;
  T* HR = U + blk;
  const T* xs = x + static_cast<size_t>(s) * N * d;
  for (int i = 0; i < d; ++i)
    for (int n = 0; n < Np; ++n) H[i * Np + n] = n < N ? xs[n * d + i] : T(0);
  for (int k = 0; k < L; ++k) {
    const size_t ks = static_cast<size_t>(k) * S + s;
    forward_layer<T, ACT>(d, Np, A + ks * d * d, b + ks * d, delta[ks], H + static_cast<size_t>(k) * blk,
                          Sg + static_cast<size_t>(k) * blk, H + static_cast<size_t>(k + 1) * blk);
  }
  // MSE over samples and coordinates; p_L = ∂ℓ/∂h_L, zero on the padded samples
  const T* hL = H + static_cast<size_t>(L) * blk;
  const T* ys = y + static_cast<size_t>(s) * N * d;
  const T scale = static_cast<T>(2.0 / (static_cast<double>(N) * d));
  T sum = 0;
  for (int n = 0; n < N; ++n)
    for (int i = 0; i < d; ++i) {
      const T r = hL[i * Np + n] - ys[n * d + i];
      sum += r * r;
      P[i * Np + n] = r * scale;
    }
  for (int i = 0; i < d; ++i)
    for (int n = N; n < Np; ++n) P[i * Np + n] = T(0);
  loss[s] = sum / static_cast<T>(N * d);
  for (int k = L - 1; k >= 0; --k) {
    const size_t ks = static_cast<size_t>(k) * S + s;
    backward_layer<T, ACT>(d, Np, A + ks * d * d, delta[ks], H + static_cast<size_t>(k) * blk,
                           Sg + static_cast<size_t>(k) * blk, P, Pn, U, HR, gA + ks * d * d, gb + ks * d,
                           gdelta ? gdelta + ks : nullptr);
    T* t = P;
    P = Pn;
    Pn = t;
  }
}

// h_L of network s for N inputs, a block of samples at a time through all layers (each
// sample's arithmetic is that of train_network, whatever the block).
template <typename T, int ACT>
static void forward_network(int L, int S, int d, int N, int s, const T* A, const T* b, const T* delta,
                            const T* x, T* out, std::vector<T>& work) {
  const int W = chunk_width<T>();
  const int Np = N > W ? 2 * W : W, blk = d * Np;
  work.resize(static_cast<size_t>(2) * blk);
  const T* xs = x + static_cast<size_t>(s) * N * d;
  T* os = out + static_cast<size_t>(s) * N * d;
  for (int n0 = 0; n0 < N; n0 += Np) {
    T* h = work.data();
    T* hn = h + blk;
    const int m = N - n0 < Np ? N - n0 : Np;
    for (int i = 0; i < d; ++i)
      for (int n = 0; n < Np; ++n) h[i * Np + n] = n < m ? xs[(n0 + n) * d + i] : T(0);
    for (int k = 0; k < L; ++k) {
      const size_t ks = static_cast<size_t>(k) * S + s;
      forward_layer<T, ACT>(d, Np, A + ks * d * d, b + ks * d, delta[ks], h, nullptr, hn);
      T* t = h;
      h = hn;
      hn = t;
    }
    for (int n = 0; n < m; ++n)
      for (int i = 0; i < d; ++i) os[(n0 + n) * d + i] = h[i * Np + n];
  }
}
