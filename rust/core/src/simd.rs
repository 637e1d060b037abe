//! The SIMD targets of the kernels, in one place. `simd_fn! { fn ... }` compiles the function once
//! per target (and once plain) and calls the best one the running CPU supports (multiversion).
//! AVX-512F implies AVX2, FMA and F16C: code that asks `selected_target!()` for FMA gets it there.

macro_rules! simd_fn {
    ($($item:tt)*) => {
        #[multiversion::multiversion(targets("x86_64+avx512f+avx512dq+avx512vl", "x86_64+avx2+fma", "aarch64+neon"))]
        $($item)*
    };
}

pub(crate) use simd_fn;
