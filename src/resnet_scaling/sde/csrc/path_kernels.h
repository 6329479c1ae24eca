// The loops of path_loops.cpp, included once per instruction set inside a namespace that
// defines `vd` (4 doubles) and `vec_tanh(vd)`. Rows of states are padded to a multiple of 4
// doubles with zeros (σ(0) = 0 for tanh and ReLU keeps the padding zero); every buffer is
// 32-byte aligned.

enum { ACT_TANH = 0, ACT_RELU = 1, ACT_LINEAR = 2 };

static inline int padded(int d) { return (d + 3) & ~3; }

// M (d × dp): row i holds column i of the d × d matrix A (transpose) or its row i.
static inline void pack_matrix(const double* A, int d, int dp, bool transpose, double* M) {
  for (int i = 0; i < d; ++i) {
    double* row = M + (size_t)i * dp;
    if (transpose) {
      for (int c = 0; c < d; ++c) row[c] = A[(size_t)c * d + i];
    } else {
      for (int c = 0; c < d; ++c) row[c] = A[(size_t)i * d + c];
    }
    for (int c = d; c < dp; ++c) row[c] = 0.0;
  }
}

// rows × d into rows × dp, zero padded.
static inline void pack_rows(const double* x, int rows, int d, int dp, double* out) {
  for (int r = 0; r < rows; ++r) {
    std::memcpy(out + (size_t)r * dp, x + (size_t)r * d, sizeof(double) * d);
    for (int c = d; c < dp; ++c) out[(size_t)r * dp + c] = 0.0;
  }
}

static inline void unpack_rows(const double* x, int rows, int d, int dp, double* out) {
  for (int r = 0; r < rows; ++r) std::memcpy(out + (size_t)r * d, x + (size_t)r * dp, sizeof(double) * d);
}

// out (N × dp) = bias + x M, x (N × dp), M (d × dp), bias (dp) or null.
// A row's dp / 4 accumulators stay in registers for the whole sum (up to MAX_VECTORS of them,
// d ≤ 32; wider rows are summed through memory).
enum { MAX_VECTORS = 8 };

template <int NV>
static inline void affine_rows(int N, int d, int dp, const double* __restrict__ M, const double* __restrict__ bias,
                               const double* __restrict__ x, double* __restrict__ out) {
  for (int r = 0; r < N; ++r) {
    const double* xr = x + (size_t)r * dp;
    vd acc[NV];
    for (int v = 0; v < NV; ++v) acc[v] = bias ? ((const vd*)bias)[v] : (vd){0.0, 0.0, 0.0, 0.0};
    for (int i = 0; i < d; ++i) {
      const double s = xr[i];
      const vd* m = (const vd*)(M + (size_t)i * dp);
      for (int v = 0; v < NV; ++v) acc[v] += s * m[v];
    }
    vd* o = (vd*)(out + (size_t)r * dp);
    for (int v = 0; v < NV; ++v) o[v] = acc[v];
  }
}

static inline void affine(int N, int d, int dp, const double* __restrict__ M, const double* __restrict__ bias,
                          const double* __restrict__ x, double* __restrict__ out) {
  switch (dp / 4) {
    case 1: return affine_rows<1>(N, d, dp, M, bias, x, out);
    case 2: return affine_rows<2>(N, d, dp, M, bias, x, out);
    case 3: return affine_rows<3>(N, d, dp, M, bias, x, out);
    case 4: return affine_rows<4>(N, d, dp, M, bias, x, out);
    case 5: return affine_rows<5>(N, d, dp, M, bias, x, out);
    case 6: return affine_rows<6>(N, d, dp, M, bias, x, out);
    case 7: return affine_rows<7>(N, d, dp, M, bias, x, out);
    case 8: return affine_rows<8>(N, d, dp, M, bias, x, out);
    default: break;
  }
  const int nv = dp / 4;
  for (int r = 0; r < N; ++r) {
    const double* xr = x + (size_t)r * dp;
    vd* o = (vd*)(out + (size_t)r * dp);
    for (int v = 0; v < nv; ++v) o[v] = bias ? ((const vd*)bias)[v] : (vd){0.0, 0.0, 0.0, 0.0};
    for (int i = 0; i < d; ++i) {
      const double s = xr[i];
      const vd* m = (const vd*)(M + (size_t)i * dp);
      for (int v = 0; v < nv; ++v) o[v] += s * m[v];
    }
  }
}

// z ← scale σ(z) (tanh, ReLU) or scale g z (linear), over `len` doubles.
template <int ACT>
static inline void activate(int len, double scale, double g, double* z) {
  vd* o = (vd*)z;
  const int nv = len / 4;
  if constexpr (ACT == ACT_TANH) {
    for (int v = 0; v < nv; ++v) o[v] = scale * vec_tanh(o[v]);
  } else if constexpr (ACT == ACT_RELU) {
    for (int l = 0; l < len; ++l) z[l] = scale * (z[l] < 0.0 ? 0.0 : z[l]);
  } else {
    const double factor = scale * g;
    for (int v = 0; v < nv; ++v) o[v] = factor * o[v];
  }
}

// n classical RK4 steps of one network's state y (len doubles). Step i evaluates at half-grid
// indices 2i, 2i+1, 2i+2 forward, 2i+2, 2i+1, 2i backward; `prepare(j, slot)` readies index j's
// coefficients in one of three slots (the last of a step is the first of the next), `eval(slot,
// x, out)` evaluates the field, `record(k, y)` stores the state at grid time k. With `per_step`
// the coefficients are constant on each step: step i reads index i at all its times. Steps are
// 1/n long, or dts[i] where dts is not null.
template <class Prepare, class Eval, class Record>
static void rk4(int n, int len, bool backward, bool per_step, const double* dts, Prepare prepare, Eval eval,
                Record record, double* y, double* work) {
  double *x = work, *k1 = work + len, *k2 = work + 2 * (size_t)len, *k3 = work + 3 * (size_t)len,
         *k4 = work + 4 * (size_t)len;
  int cur = 0;
  if (!per_step) prepare(backward ? 2 * n : 0, cur);
  record(backward ? n : 0, y);
  for (int s = 0; s < n; ++s) {
    const int i = backward ? n - 1 - s : s;
    const double dt = dts ? dts[i] : 1.0 / n, half = dt / 2, sixth = dt / 6;
    int mid = (cur + 1) % 3, next = (cur + 2) % 3;
    if (per_step) {
      prepare(i, cur);
      mid = next = cur;
    } else {
      prepare(2 * i + 1, mid);
      prepare(backward ? 2 * i : 2 * i + 2, next);
    }
    eval(cur, y, k1);
    for (int l = 0; l < len; ++l) x[l] = y[l] + half * k1[l];
    eval(mid, x, k2);
    for (int l = 0; l < len; ++l) x[l] = y[l] + half * k2[l];
    eval(mid, x, k3);
    for (int l = 0; l < len; ++l) x[l] = y[l] + dt * k3[l];
    eval(next, x, k4);
    for (int l = 0; l < len; ++l) y[l] = y[l] + sixth * (((k1[l] + 2.0 * k2[l]) + 2.0 * k3[l]) + k4[l]);
    cur = next;
    record(backward ? i : i + 1, y);
  }
}

static double* aligned_doubles(size_t count) {
  void* p = std::aligned_alloc(32, ((count * sizeof(double) + 31) / 32) * 32);
  if (!p) throw std::bad_alloc();
  return (double*)p;
}

struct Buffers {
  double* data;
  explicit Buffers(size_t count) : data(aligned_doubles(count)) {}
  ~Buffers() { std::free(data); }
};

template <int ACT>
static void forward_network(int n, int P, int N, int d, int p, double g, const double* A, const double* b,
                            const double* scale, bool per_step, const double* dts, const double* h0, double* H,
                            double* work) {
  const int dp = padded(d), len = N * dp;
  double* y = work;
  double* M = y + len;                  // 3 slots of d × dp
  double* bias = M + 3 * (size_t)d * dp;  // 3 slots of dp
  double* rk = bias + 3 * (size_t)dp;     // 5 states
  double scales[3];
  pack_rows(h0 + (size_t)p * N * d, N, d, dp, y);
  auto prepare = [&](int j, int slot) {
    pack_matrix(A + ((size_t)j * P + p) * d * d, d, dp, true, M + (size_t)slot * d * dp);
    pack_rows(b + ((size_t)j * P + p) * d, 1, d, dp, bias + (size_t)slot * dp);
    scales[slot] = scale ? scale[(size_t)j * P + p] : 1.0;
  };
  auto eval = [&](int slot, const double* x, double* out) {
    affine(N, d, dp, M + (size_t)slot * d * dp, bias + (size_t)slot * dp, x, out);
    activate<ACT>(len, scales[slot], g, out);
  };
  auto record = [&](int k, const double* state) { unpack_rows(state, N, d, dp, H + ((size_t)k * P + p) * N * d); };
  rk4(n, len, false, per_step, dts, prepare, eval, record, y, rk);
}

static int forward(int n, int P, int N, int d, int act, double g, const double* A, const double* b,
                   const double* scale, bool per_step, const double* dts, const double* h0, double* H) {
  try {
    const int dp = padded(d);
    Buffers work(6 * (size_t)N * dp + 3 * (size_t)d * dp + 3 * (size_t)dp);
    for (int p = 0; p < P; ++p) {
      if (act == ACT_TANH)
        forward_network<ACT_TANH>(n, P, N, d, p, g, A, b, scale, per_step, dts, h0, H, work.data);
      else if (act == ACT_RELU)
        forward_network<ACT_RELU>(n, P, N, d, p, g, A, b, scale, per_step, dts, h0, H, work.data);
      else
        forward_network<ACT_LINEAR>(n, P, N, d, p, g, A, b, scale, per_step, dts, h0, H, work.data);
    }
  } catch (const std::bad_alloc&) {
    return 1;
  }
  return 0;
}

static int adjoint(int n, int P, int N, int d, double g, const double* A, const double* weight, const double* p1,
                   double* Pt) {
  try {
    const int dp = padded(d), len = N * dp;
    Buffers work(7 * (size_t)len + 3 * (size_t)d * dp + 3 * (size_t)len);
    for (int p = 0; p < P; ++p) {
      double* y = work.data;
      double* q = y + len;                    // weight ⊙ x
      double* M = q + len;                    // 3 slots of d × dp
      double* W = M + 3 * (size_t)d * dp;     // 3 slots of N × dp
      double* rk = W + 3 * (size_t)len;       // 5 states
      pack_rows(p1 + (size_t)p * N * d, N, d, dp, y);
      auto prepare = [&](int j, int slot) {
        pack_matrix(A + ((size_t)j * P + p) * d * d, d, dp, false, M + (size_t)slot * d * dp);
        if (weight) pack_rows(weight + ((size_t)j * P + p) * N * d, N, d, dp, W + (size_t)slot * len);
      };
      auto eval = [&](int slot, const double* x, double* out) {
        if (weight) {
          const double* w = W + (size_t)slot * len;
          for (int l = 0; l < len; ++l) q[l] = w[l] * x[l];
          affine(N, d, dp, M + (size_t)slot * d * dp, nullptr, q, out);
        } else {
          affine(N, d, dp, M + (size_t)slot * d * dp, nullptr, x, out);
          activate<ACT_LINEAR>(len, 1.0, g, out);
        }
      };
      auto record = [&](int k, const double* state) { unpack_rows(state, N, d, dp, Pt + ((size_t)k * P + p) * N * d); };
      rk4(n, len, true, false, nullptr, prepare, eval, record, y, rk);
    }
  } catch (const std::bad_alloc&) {
    return 1;
  }
  return 0;
}

// The network h_{k+1} = h_k + δ_k σ(A_k h_k + b_k) of P networks, weights path-major A (P, L, d, d),
// b (P, L, d), δ (P, L); inputs x (P, N, d); every state written to H (L+1, P, N, d).
// With H null only the output h_L is written, to out (P, N, d).
template <int ACT>
static void network_forward_one(int L, int P, int N, int d, int p, const double* A, const double* b,
                                const double* delta, const double* x, double* H, double* out, double* work) {
  const int dp = padded(d), len = N * dp;
  double *h = work, *z = h + len, *M = z + len, *bias = M + (size_t)d * dp;
  pack_rows(x + (size_t)p * N * d, N, d, dp, h);
  if (H) unpack_rows(h, N, d, dp, H + (size_t)p * N * d);
  for (int k = 0; k < L; ++k) {
    const size_t layer = (size_t)p * L + k;
    pack_matrix(A + layer * d * d, d, dp, true, M);
    pack_rows(b + layer * d, 1, d, dp, bias);
    affine(N, d, dp, M, bias, h, z);
    activate<ACT>(len, delta[layer], 1.0, z);
    for (int l = 0; l < len; ++l) h[l] += z[l];
    if (H) unpack_rows(h, N, d, dp, H + ((size_t)(k + 1) * P + p) * N * d);
  }
  if (!H) unpack_rows(h, N, d, dp, out + (size_t)p * N * d);
}

static int network_forward(int L, int P, int N, int d, int act, const double* A, const double* b, const double* delta,
                           const double* x, double* H, double* out) {
  try {
    const int dp = padded(d);
    Buffers work(2 * (size_t)N * dp + (size_t)d * dp + dp);
    for (int p = 0; p < P; ++p) {
      if (act == ACT_TANH)
        network_forward_one<ACT_TANH>(L, P, N, d, p, A, b, delta, x, H, out, work.data);
      else
        network_forward_one<ACT_RELU>(L, P, N, d, p, A, b, delta, x, H, out, work.data);
    }
  } catch (const std::bad_alloc&) {
    return 1;
  }
  return 0;
}

// The explicit adjoint of the network (docs/maths.md §5) from p_L (P, N, d) and the states H:
// u_k = σ'(z_k) ⊙ p_{k+1}, p_k = p_{k+1} + δ_k A_kᵀ u_k, written to Pt (L+1, P, N, d); unless null,
// gM (L, P, d, d) = Σ_n u_k h_kᵀ = ∂ℓ/∂A_k / δ_k and gm (L, P, d) = Σ_n u_k = ∂ℓ/∂b_k / δ_k.
template <int ACT>
static void network_adjoint_one(int L, int P, int N, int d, int p, const double* A, const double* b,
                                const double* delta, const double* H, const double* pL, double* Pt, double* gM,
                                double* gm, double* work) {
  const int dp = padded(d), len = N * dp;
  double *q = work, *h = q + len, *z = h + len, *u = z + len, *M = u + len, *bias = M + (size_t)d * dp;
  pack_rows(pL + (size_t)p * N * d, N, d, dp, q);
  unpack_rows(q, N, d, dp, Pt + ((size_t)L * P + p) * N * d);
  for (int k = L - 1; k >= 0; --k) {
    const size_t layer = (size_t)p * L + k;
    pack_rows(H + ((size_t)k * P + p) * N * d, N, d, dp, h);
    pack_matrix(A + layer * d * d, d, dp, true, M);
    pack_rows(b + layer * d, 1, d, dp, bias);
    affine(N, d, dp, M, bias, h, z);
    if constexpr (ACT == ACT_TANH) {  // σ'(z) = 1 − tanh(z)²
      const vd* zv = (const vd*)z;
      const vd* qv = (const vd*)q;
      vd* uv = (vd*)u;
      for (int v = 0; v < len / 4; ++v) {
        const vd t = vec_tanh(zv[v]);
        uv[v] = (1.0 - t * t) * qv[v];
      }
    } else {
      for (int l = 0; l < len; ++l) u[l] = z[l] > 0.0 ? q[l] : 0.0;
    }
    if (gM) {
      double* g = gM + ((size_t)k * P + p) * d * d;
      for (int i = 0; i < d; ++i)
        for (int j = 0; j < d; ++j) {
          double s = 0.0;
          for (int r = 0; r < N; ++r) s += u[(size_t)r * dp + i] * h[(size_t)r * dp + j];
          g[(size_t)i * d + j] = s;
        }
    }
    if (gm) {
      double* g = gm + ((size_t)k * P + p) * d;
      for (int i = 0; i < d; ++i) {
        double s = 0.0;
        for (int r = 0; r < N; ++r) s += u[(size_t)r * dp + i];
        g[i] = s;
      }
    }
    pack_matrix(A + layer * d * d, d, dp, false, M);
    affine(N, d, dp, M, nullptr, u, z);  // rows of A_kᵀ u_k
    const double dk = delta[layer];
    for (int l = 0; l < len; ++l) q[l] += dk * z[l];
    unpack_rows(q, N, d, dp, Pt + ((size_t)k * P + p) * N * d);
  }
}

static int network_adjoint(int L, int P, int N, int d, int act, const double* A, const double* b, const double* delta,
                           const double* H, const double* pL, double* Pt, double* gM, double* gm) {
  try {
    const int dp = padded(d);
    Buffers work(4 * (size_t)N * dp + (size_t)d * dp + dp);
    for (int p = 0; p < P; ++p) {
      if (act == ACT_TANH)
        network_adjoint_one<ACT_TANH>(L, P, N, d, p, A, b, delta, H, pL, Pt, gM, gm, work.data);
      else
        network_adjoint_one<ACT_RELU>(L, P, N, d, p, A, b, delta, H, pL, Pt, gM, gm, work.data);
    }
  } catch (const std::bad_alloc&) {
    return 1;
  }
  return 0;
}
