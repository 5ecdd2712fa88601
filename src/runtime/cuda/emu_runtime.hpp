// Host emulation of the CUDA execution model, for running the kernels of
// cuda/ on a machine without a GPU (src/device/cuda/emu.rs builds and loads
// it). Each kernel family is compiled as host C++ (this header, then the
// family's source with `extern "C"` removed, inside `namespace fam_<name>`);
// a launch runs the grid block by block on one OS thread, every CUDA thread
// of a block as a fiber (its own stack) that runs until it finishes or
// reaches a barrier:
//
// * __syncthreads: a fiber waits until every thread of its block is there;
//   one that finished while others wait is an error (barrier divergence).
// * __ballot_sync(full mask): a fiber waits until the 32 lanes of its warp
//   (fewer in a partial last warp) are at a ballot, then all read the vote.
// * __shared__ becomes `static` (blocks run one at a time).
// * atomics are plain read-modify-writes (one OS thread runs the grid).
// * float and double arithmetic is IEEE with round-to-nearest, each
//   operation rounded (built with -ffp-contract=off), as NVRTC compiles it
//   with --fmad=false; fmaf is libm's correctly rounded fma, like the GPU's.
//
// What it cannot show: races between blocks or warps that a GPU schedule
// would expose (each block runs alone, fibers switch only at barriers),
// anything about speed, and results of math functions that are not
// correctly rounded on the GPU (exp, log).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <utility>
#include <vector>
#include <sys/mman.h>
#include <unistd.h>
#if !defined(__x86_64__)
#include <ucontext.h>
#endif

#define EMU_EXPORT extern "C" __attribute__((visibility("default")))

struct uint3 { unsigned x, y, z; };
typedef uint3 dim3;
// Plain globals, not thread-locals: launches are serialised (one OS thread
// runs a grid at a time), and a thread-local costs a call per access in a
// shared library.
extern uint3 threadIdx;
extern uint3 blockIdx;
extern uint3 blockDim;
extern uint3 gridDim;

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)
#define __restrict__ __restrict
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
struct __attribute__((aligned(16))) float4 { float x, y, z, w; };
struct __attribute__((aligned(8))) float2 { float x, y; };
struct __attribute__((aligned(16))) double2 { double x, y; };

namespace emu {
void block_barrier();
unsigned ballot(unsigned mask, bool pred);
[[noreturn]] void fail(const char* what);
}  // namespace emu

inline void __syncthreads() { emu::block_barrier(); }
inline unsigned __ballot_sync(unsigned mask, bool pred) { return emu::ballot(mask, pred != 0); }

// Intrinsics with explicit rounding: the host's IEEE operations round to
// nearest even, which is what the _rn forms ask for.
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fsqrt_rn(float a) { return std::sqrt(a); }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __dsqrt_rn(double a) { return std::sqrt(a); }
inline float __int_as_float(int i) { float f; std::memcpy(&f, &i, 4); return f; }
inline float __uint_as_float(unsigned u) { float f; std::memcpy(&f, &u, 4); return f; }
inline int __float_as_int(float f) { int i; std::memcpy(&i, &f, 4); return i; }
inline unsigned __float_as_uint(float f) { unsigned u; std::memcpy(&u, &f, 4); return u; }
inline double __longlong_as_double(long long i) { double d; std::memcpy(&d, &i, 8); return d; }
inline long long __double_as_longlong(double d) { long long i; std::memcpy(&i, &d, 8); return i; }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __clzll(long long x) { return x == 0 ? 64 : __builtin_clzll((unsigned long long)x); }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }

// CUDA's min/max overloads for mixed operand types (usual arithmetic
// conversions, as CUDA's headers define them).
template <typename A, typename B>
inline typename std::common_type<A, B>::type min(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)a < (C)b ? (C)a : (C)b;
}
template <typename A, typename B>
inline typename std::common_type<A, B>::type max(A a, B b) {
    typedef typename std::common_type<A, B>::type C;
    return (C)a < (C)b ? (C)b : (C)a;
}
using std::ceil;
using std::exp;
using std::fabs;
using std::floor;
using std::fmax;
using std::fmin;
using std::log;
using std::sqrt;

// One atomic read-modify-write at a time is all a single OS thread does.
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) { unsigned long long o = *a; *a = o + v; return o; }
inline unsigned atomicAdd(unsigned* a, unsigned v) { unsigned o = *a; *a = o + v; return o; }
inline int atomicAdd(int* a, int v) { int o = *a; *a = o + v; return o; }
inline float atomicAdd(float* a, float v) { float o = *a; *a = o + v; return o; }
inline double atomicAdd(double* a, double v) { double o = *a; *a = o + v; return o; }
inline int atomicMax(int* a, int v) { int o = *a; if (v > o) *a = v; return o; }
inline int atomicOr(int* a, int v) { int o = *a; *a = o | v; return o; }

namespace emu {

// Calls `f` with the parameters that `args` points to, as cuLaunchKernel
// reads them: args[i] points to the bytes of parameter i.
template <typename... A, std::size_t... I>
inline void call_with(void (*f)(A...), void** args, std::index_sequence<I...>) {
    f(*static_cast<typename std::remove_reference<A>::type*>(args[I])...);
}
template <typename... A>
inline void call(void (*f)(A...), void** args) {
    call_with(f, args, std::index_sequence_for<A...>{});
}

// Parameter sizes of a kernel, for the launch-time check of arguments.
template <typename... A>
struct Signature {
    static constexpr unsigned sizes[sizeof...(A) + 1] = {(unsigned)sizeof(A)..., 0u};
};
template <typename... A>
constexpr int param_count(void (*)(A...)) { return (int)sizeof...(A); }
template <typename... A>
constexpr const unsigned* param_sizes(void (*)(A...)) { return Signature<A...>::sizes; }

typedef void (*Trampoline)(void** args);
struct Entry {
    const char* family;
    const char* name;
    Trampoline run;
    int params;
    const unsigned* sizes;
};
void register_family(const Entry* entries, int count);
struct Registrar {
    Registrar(const Entry* e, int n) { register_family(e, n); }
};

}  // namespace emu
