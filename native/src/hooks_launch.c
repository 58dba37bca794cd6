/* Launch wrappers: plain, Ex, cooperative and graph launches, each variant (legacy and per-thread
 * stream) calling its own driver function, all metered by the compute limiter. */
#include "limiter.h"

#define LAUNCH(name, ptsz)                                                                              \
    EXPORT CUresult name(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, \
                         unsigned bz, unsigned shmem, CUstream s, void **params, void **extra) {        \
        shim_init();                                                                                    \
        if (UNLIKELY(!real_##name)) return CUDA_ERROR_NOT_FOUND;                                         \
        if (LIKELY(!limiter_before((uintptr_t)f, (uint64_t)gx * gy * gz, s, ptsz)))                     \
            return real_##name(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);                     \
        CUresult rc = real_##name(f, gx, gy, gz, bx, by, bz, shmem, s, params, extra);                  \
        limiter_after(s, ptsz);                                                  \
        return rc;                                                                                      \
    }
LAUNCH(cuLaunchKernel, 0)
LAUNCH(cuLaunchKernel_ptsz, 1)

#define COOPERATIVE(name, ptsz)                                                                         \
    EXPORT CUresult name(CUfunction f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, \
                         unsigned bz, unsigned shmem, CUstream s, void **params) {                      \
        shim_init();                                                                                    \
        if (UNLIKELY(!real_##name)) return CUDA_ERROR_NOT_FOUND;                                         \
        if (LIKELY(!limiter_before((uintptr_t)f, (uint64_t)gx * gy * gz, s, ptsz)))                     \
            return real_##name(f, gx, gy, gz, bx, by, bz, shmem, s, params);                            \
        CUresult rc = real_##name(f, gx, gy, gz, bx, by, bz, shmem, s, params);                         \
        limiter_after(s, ptsz);                                                  \
        return rc;                                                                                      \
    }
COOPERATIVE(cuLaunchCooperativeKernel, 0)
COOPERATIVE(cuLaunchCooperativeKernel_ptsz, 1)

#define LAUNCH_EX(name, ptsz)                                                                           \
    EXPORT CUresult name(const CUlaunchConfig *c, CUfunction f, void **params, void **extra) {          \
        shim_init();                                                                                    \
        if (UNLIKELY(!real_##name)) return CUDA_ERROR_NOT_FOUND;                                         \
        if (!c) return real_##name(c, f, params, extra);                                                \
        if (LIKELY(!limiter_before((uintptr_t)f, (uint64_t)c->gridDimX * c->gridDimY * c->gridDimZ,    \
                                   c->hStream, ptsz)))                                                  \
            return real_##name(c, f, params, extra);                                                    \
        CUresult rc = real_##name(c, f, params, extra);                                                 \
        limiter_after(c->hStream, ptsz);                                         \
        return rc;                                                                                      \
    }
LAUNCH_EX(cuLaunchKernelEx, 0)
LAUNCH_EX(cuLaunchKernelEx_ptsz, 1)

#define GRAPH_LAUNCH(name, ptsz)                                                                        \
    EXPORT CUresult name(CUgraphExec g, CUstream s) {                                                   \
        shim_init();                                                                                    \
        if (UNLIKELY(!real_##name)) return CUDA_ERROR_NOT_FOUND;                                         \
        if (LIKELY(!limiter_before((uintptr_t)g, 1, s, ptsz))) return real_##name(g, s);               \
        CUresult rc = real_##name(g, s);                                                                \
        limiter_after(s, ptsz);                                                  \
        return rc;                                                                                      \
    }
GRAPH_LAUNCH(cuGraphLaunch, 0)
GRAPH_LAUNCH(cuGraphLaunch_ptsz, 1)
