// The compiled FC engine: the loop over layers of ResNetEnsemble's one-matrix block in C++
// (docs/design.md, "The compiled FC engine"). Built on first use by resnet_scaling.compiled.
//
// A plain C interface, without torch's headers: the build takes seconds instead of the
// minute that <torch/extension.h> costs. It links against libtorch_cpu for SLEEF's tanh of doubles.
#include <cmath>
#include <new>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#define RS_X86 1
#include <immintrin.h>
#else
#define RS_X86 0
#endif

namespace base {
typedef float vf __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(32)));
static inline vd vec_tanh(vd z) {
  for (int l = 0; l < 4; ++l) z[l] = std::tanh(z[l]);
  return z;
}
#include "fc_kernels.h"
}  // namespace base

#if RS_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma")
// SLEEF's vector tanh of doubles (1 ulp), as torch uses it for its own tanh (libtorch_cpu exports it)
extern "C" __m256d Sleef_tanhd4_u10avx2(__m256d);
namespace avx2 {
typedef float vf __attribute__((vector_size(32)));
typedef double vd __attribute__((vector_size(32)));
static inline vd vec_tanh(vd z) { return (vd)Sleef_tanhd4_u10avx2((__m256d)z); }
#include "fc_kernels.h"
}  // namespace avx2
#pragma GCC pop_options
#endif

namespace {

bool use_avx2() {
#if RS_X86
  static const bool yes = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  return yes;
#else
  return false;
#endif
}

template <typename T>
std::vector<T>& thread_work() {
  thread_local std::vector<T> work;
  return work;
}

template <typename T>
int train_all(int L, int S, int d, int N, int act, const T* A, const T* b, const T* delta, const T* x,
              const T* y, T* loss, T* gA, T* gb, T* gdelta) {
  try {
    for (int s = 0; s < S; ++s) {
#if RS_X86
      if (use_avx2()) {
        if (act == base::ACT_TANH)
          avx2::train_network<T, base::ACT_TANH>(L, S, d, N, s, A, b, delta, x, y, loss, gA, gb, gdelta, thread_work<T>());
        else
          avx2::train_network<T, base::ACT_RELU>(L, S, d, N, s, A, b, delta, x, y, loss, gA, gb, gdelta, thread_work<T>());
        continue;
      }
#endif
      if (act == base::ACT_TANH)
        base::train_network<T, base::ACT_TANH>(L, S, d, N, s, A, b, delta, x, y, loss, gA, gb, gdelta, thread_work<T>());
      else
        base::train_network<T, base::ACT_RELU>(L, S, d, N, s, A, b, delta, x, y, loss, gA, gb, gdelta, thread_work<T>());
    }
  } catch (const std::bad_alloc&) {
    return 1;
  }
  return 0;
}

template <typename T>
int forward_all(int L, int S, int d, int N, int act, const T* A, const T* b, const T* delta, const T* x, T* out) {
  try {
    for (int s = 0; s < S; ++s) {
#if RS_X86
      if (use_avx2()) {
        if (act == base::ACT_TANH)
          avx2::forward_network<T, base::ACT_TANH>(L, S, d, N, s, A, b, delta, x, out, thread_work<T>());
        else
          avx2::forward_network<T, base::ACT_RELU>(L, S, d, N, s, A, b, delta, x, out, thread_work<T>());
        continue;
      }
#endif
      if (act == base::ACT_TANH)
        base::forward_network<T, base::ACT_TANH>(L, S, d, N, s, A, b, delta, x, out, thread_work<T>());
      else
        base::forward_network<T, base::ACT_RELU>(L, S, d, N, s, A, b, delta, x, out, thread_work<T>());
    }
  } catch (const std::bad_alloc&) {
    return 1;
  }
  return 0;
}

}  // namespace

// The C interface that resnet_scaling.compiled calls through ctypes (every tensor contiguous,
// checked there). Weights layer-major: A (L, S, d, d), b (L, S, d), δ (L, S); x, y, out (S, N, d).
// `act`: 0 tanh, 1 ReLU. Return 0, or 1 when the work memory cannot be allocated.
extern "C" {

// 1 when the kernels run with AVX2 + FMA on this CPU, 0 for the default instruction set.
int rs_fc_instruction_set() { return use_avx2() ? 1 : 0; }

// One training step of every network: per-network MSE `loss` (S), ∂ℓ/∂A, ∂ℓ/∂b and, unless
// `gdelta` is null, ∂ℓ/∂δ_k (L, S).
int rs_fc_train_f32(int L, int S, int d, int N, int act, const float* A, const float* b, const float* delta,
                    const float* x, const float* y, float* loss, float* gA, float* gb, float* gdelta) {
  return train_all<float>(L, S, d, N, act, A, b, delta, x, y, loss, gA, gb, gdelta);
}
int rs_fc_train_f64(int L, int S, int d, int N, int act, const double* A, const double* b, const double* delta,
                    const double* x, const double* y, double* loss, double* gA, double* gb, double* gdelta) {
  return train_all<double>(L, S, d, N, act, A, b, delta, x, y, loss, gA, gb, gdelta);
}

// The outputs h_L of every network.
int rs_fc_forward_f32(int L, int S, int d, int N, int act, const float* A, const float* b, const float* delta,
                      const float* x, float* out) {
  return forward_all<float>(L, S, d, N, act, A, b, delta, x, out);
}
int rs_fc_forward_f64(int L, int S, int d, int N, int act, const double* A, const double* b, const double* delta,
                      const double* x, double* out) {
  return forward_all<double>(L, S, d, N, act, A, b, delta, x, out);
}

}  // extern "C"
