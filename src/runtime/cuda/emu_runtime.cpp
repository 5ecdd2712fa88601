// The scheduler of the host emulation (see emu_runtime.hpp): fibers for
// the threads of one block, block and warp barriers, the kernel registry,
// and the two functions the Rust side calls (emu_find, emu_launch).
#include "emu_runtime.hpp"

uint3 threadIdx;
uint3 blockIdx;
uint3 blockDim;
uint3 gridDim;

#if defined(__x86_64__)
// Saves the callee-saved registers of the System V ABI on the current
// stack, stores the stack pointer in *from, loads `to` and restores.
extern "C" void emu_switch_ctx(void** from, void* to);
asm(R"(
    .text
    .globl emu_switch_ctx
    .hidden emu_switch_ctx
    .type emu_switch_ctx,@function
emu_switch_ctx:
    pushq %rbp
    pushq %rbx
    pushq %r12
    pushq %r13
    pushq %r14
    pushq %r15
    movq %rsp, (%rdi)
    movq %rsi, %rsp
    popq %r15
    popq %r14
    popq %r13
    popq %r12
    popq %rbx
    popq %rbp
    ret
    .size emu_switch_ctx, .-emu_switch_ctx
)");
#endif

namespace emu {
namespace {

// NEW: not started (no stack yet); READY: started, runnable.
enum State { NEW, READY, AT_BLOCK, AT_WARP, DONE, FAILED };

constexpr size_t STACK_BYTES = 256 * 1024;
constexpr unsigned MAX_THREADS = 1024;

struct Fiber {
#if defined(__x86_64__)
    void* sp = nullptr;
#else
    ucontext_t ctx;
#endif
    char* stack = nullptr;  // lowest usable byte (a guard page sits below); null when not started
    State state = DONE;
};

// Stacks not in use, most recently freed last: a thread that runs to its
// end without waiting hands its stack to the next, so a kernel without
// barriers runs every thread on one cache-hot stack.
std::vector<char*> g_free_stacks;

Fiber g_fibers[MAX_THREADS];
unsigned g_nt = 0;        // threads of the running block
unsigned g_current = 0;   // the fiber running now
#if defined(__x86_64__)
void* g_sched_sp = nullptr;
#else
ucontext_t g_sched_ctx;
#endif
Trampoline g_run = nullptr;
void** g_args = nullptr;
unsigned g_votes[MAX_THREADS];
unsigned g_warp_mask[MAX_THREADS / 32];
unsigned g_warp_waiting[MAX_THREADS / 32];
unsigned g_done = 0;      // fibers of the block that have returned
unsigned g_at_block = 0;  // fibers waiting at __syncthreads
bool g_failed = false;
char g_error[512];

uint3 index_of(unsigned t) {
    if (blockDim.y == 1 && blockDim.z == 1) return uint3{t, 0, 0};
    return uint3{t % blockDim.x, (t / blockDim.x) % blockDim.y, t / (blockDim.x * blockDim.y)};
}

void to_scheduler() {
#if defined(__x86_64__)
    emu_switch_ctx(&g_fibers[g_current].sp, g_sched_sp);
#else
    swapcontext(&g_fibers[g_current].ctx, &g_sched_ctx);
#endif
}

void divergence_check() {
    if (g_at_block > 0 && g_at_block + g_done == g_nt) {
        snprintf(g_error, sizeof g_error,
                 "barrier divergence in block (%u,%u,%u): %u threads wait at __syncthreads "
                 "while %u have returned",
                 blockIdx.x, blockIdx.y, blockIdx.z, g_at_block, g_done);
        g_failed = true;
    }
}

void fiber_main() {
    g_run(g_args);
    g_fibers[g_current].state = DONE;
    ++g_done;
    divergence_check();
    to_scheduler();
    std::abort();  // a finished fiber is never resumed
}

// A stack from the pool, or a new mapping; null when none can be mapped.
char* take_stack() {
    if (!g_free_stacks.empty()) {
        char* st = g_free_stacks.back();
        g_free_stacks.pop_back();
        return st;
    }
    const size_t page = (size_t)sysconf(_SC_PAGESIZE);
    void* m = mmap(nullptr, STACK_BYTES + page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (m == MAP_FAILED) return nullptr;
    // The lowest page is a guard: a stack overflow faults instead of
    // writing into another fiber's stack.
    mprotect(m, page, PROT_NONE);
    return static_cast<char*>(m) + page;
}

void start_fiber(Fiber& f) {
#if defined(__x86_64__)
    uintptr_t top = (reinterpret_cast<uintptr_t>(f.stack) + STACK_BYTES) & ~uintptr_t(15);
    uintptr_t* sp = reinterpret_cast<uintptr_t*>(top);
    *--sp = 0;                                             // fiber_main's return address (never used)
    *--sp = reinterpret_cast<uintptr_t>(&fiber_main);      // where emu_switch_ctx returns to
    for (int i = 0; i < 6; ++i) *--sp = 0;                 // rbp rbx r12 r13 r14 r15
    f.sp = sp;
#else
    getcontext(&f.ctx);
    f.ctx.uc_stack.ss_sp = f.stack;
    f.ctx.uc_stack.ss_size = STACK_BYTES;
    f.ctx.uc_link = nullptr;
    makecontext(&f.ctx, &fiber_main, 0);
#endif
    f.state = READY;
}

void resume(unsigned t) {
    g_current = t;
    threadIdx = index_of(t);
#if defined(__x86_64__)
    emu_switch_ctx(&g_sched_sp, g_fibers[t].sp);
#else
    swapcontext(&g_sched_ctx, &g_fibers[t].ctx);
#endif
}

// Runs one block to completion; false (with g_error set) on an error.
// Fibers run round-robin until each finishes or waits at a barrier; the
// last thread to reach a barrier releases the others and goes on, so a
// pass over the fibers advances the block by at least one barrier.
bool run_block() {
    for (unsigned t = 0; t < g_nt; ++t) g_fibers[t].state = NEW;
    g_done = 0;
    g_at_block = 0;
    for (unsigned w = 0; w * 32 < g_nt; ++w) g_warp_waiting[w] = 0;
    while (g_done < g_nt) {
        bool ran = false;
        for (unsigned t = 0; t < g_nt; ++t) {
            Fiber& f = g_fibers[t];
            if (f.state == NEW) {
                f.stack = take_stack();
                if (!f.stack) {
                    snprintf(g_error, sizeof g_error, "cannot map a fiber stack");
                    return false;
                }
                start_fiber(f);
            } else if (f.state != READY) {
                continue;
            }
            resume(t);
            ran = true;
            if (g_failed) return false;
            if (f.state == DONE) {
                g_free_stacks.push_back(f.stack);
                f.stack = nullptr;
            }
        }
        if (!ran) {
            unsigned at_warp = 0;
            for (unsigned t = 0; t < g_nt; ++t) at_warp += g_fibers[t].state == AT_WARP;
            snprintf(g_error, sizeof g_error,
                     "deadlock in block (%u,%u,%u): %u threads at __syncthreads, %u at a "
                     "ballot that part of their warp never reaches, %u returned",
                     blockIdx.x, blockIdx.y, blockIdx.z, g_at_block, at_warp, g_done);
            return false;
        }
    }
    return true;
}

std::vector<Entry>& registry() {
    static std::vector<Entry> r;
    return r;
}

}  // namespace

void block_barrier() {
    if (g_at_block + 1 == g_nt) {
        // The last to arrive releases the others and goes on.
        for (unsigned t = 0; t < g_nt; ++t)
            if (g_fibers[t].state == AT_BLOCK) g_fibers[t].state = READY;
        g_at_block = 0;
        return;
    }
    ++g_at_block;
    g_fibers[g_current].state = AT_BLOCK;
    divergence_check();
    to_scheduler();
}

unsigned ballot(unsigned mask, bool pred) {
    if (mask != 0xffffffffu) fail("__ballot_sync with a partial mask (the emulator supports only the full mask)");
    unsigned t = g_current;
    unsigned w = t / 32;
    if (w * 32 + 32 > g_nt) fail("__ballot_sync with the full mask in a partial warp (undefined on a GPU)");
    g_votes[t] = pred ? 1u : 0u;
    if (g_warp_waiting[w] + 1 == 32) {
        // The last lane to vote computes the ballot and releases the warp;
        // the others read it when they resume (before any can vote again).
        unsigned m = 0;
        for (unsigned l = 0; l < 32; ++l) m |= g_votes[w * 32 + l] << l;
        g_warp_mask[w] = m;
        for (unsigned l = 0; l < 32; ++l)
            if (g_fibers[w * 32 + l].state == AT_WARP) g_fibers[w * 32 + l].state = READY;
        g_warp_waiting[w] = 0;
        return m;
    }
    ++g_warp_waiting[w];
    g_fibers[t].state = AT_WARP;
    to_scheduler();
    return g_warp_mask[w];
}

void fail(const char* what) {
    uint3 ti = threadIdx;
    snprintf(g_error, sizeof g_error, "%s (block (%u,%u,%u), thread (%u,%u,%u))", what,
             blockIdx.x, blockIdx.y, blockIdx.z, ti.x, ti.y, ti.z);
    g_fibers[g_current].state = FAILED;
    g_failed = true;
    to_scheduler();
    std::abort();  // a failed fiber is never resumed
}

void register_family(const Entry* entries, int count) {
    for (int i = 0; i < count; ++i) registry().push_back(entries[i]);
}

}  // namespace emu

// The kernel `name` of family `family`, or null.
EMU_EXPORT const void* emu_find(const char* family, const char* name) {
    for (const emu::Entry& e : emu::registry())
        if (std::strcmp(e.family, family) == 0 && std::strcmp(e.name, name) == 0) return &e;
    return nullptr;
}

// Parameter count of kernel `entry`, and their sizes in bytes.
EMU_EXPORT int emu_params(const void* entry, const unsigned** sizes) {
    const emu::Entry* e = static_cast<const emu::Entry*>(entry);
    *sizes = e->sizes;
    return e->params;
}

// Number of registered kernels; emu_kernel(i) gives family and name.
EMU_EXPORT int emu_kernel_count() { return (int)emu::registry().size(); }
EMU_EXPORT const char* emu_kernel(int i, const char** family) {
    const emu::Entry& e = emu::registry().at((size_t)i);
    *family = e.family;
    return e.name;
}

// Runs kernel `entry` (from emu_find) over grid[3] blocks of block[3]
// threads with the parameters `args` points to (cuLaunchKernel's layout).
// 0 on success; otherwise writes a message to err.
EMU_EXPORT int emu_launch(const void* entry, const unsigned* grid, const unsigned* block,
                          unsigned shared_bytes, void** args, char* err, size_t err_len) {
    using namespace emu;
    auto error = [&](const char* msg) {
        snprintf(err, err_len, "%s", msg);
        return 1;
    };
    const Entry* e = static_cast<const Entry*>(entry);
    if (!e) return error("no kernel");
    unsigned long long nt = (unsigned long long)block[0] * block[1] * block[2];
    if (nt == 0 || nt > MAX_THREADS || block[2] > 64)
        return error("invalid block: 1 to 1024 threads, z at most 64");
    if (grid[0] == 0 || grid[1] == 0 || grid[2] == 0 || grid[0] > 0x7fffffffu ||
        grid[1] > 65535 || grid[2] > 65535)
        return error("invalid grid: x 1 to 2^31-1, y and z 1 to 65535");
    if (shared_bytes != 0)
        return error("dynamic shared memory is not emulated (the kernels use static __shared__)");
    blockDim = uint3{block[0], block[1], block[2]};
    gridDim = uint3{grid[0], grid[1], grid[2]};
    g_nt = (unsigned)nt;
    g_run = e->run;
    g_args = args;
    g_error[0] = 0;
    g_failed = false;
    for (unsigned z = 0; z < grid[2]; ++z)
        for (unsigned y = 0; y < grid[1]; ++y)
            for (unsigned x = 0; x < grid[0]; ++x) {
                blockIdx = uint3{x, y, z};
                if (!run_block()) {
                    // Fibers stopped mid-kernel give their stacks back.
                    for (unsigned t = 0; t < g_nt; ++t)
                        if (g_fibers[t].stack) {
                            g_free_stacks.push_back(g_fibers[t].stack);
                            g_fibers[t].stack = nullptr;
                        }
                    return error(g_error);
                }
            }
    return 0;
}
