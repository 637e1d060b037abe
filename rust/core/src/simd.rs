//! The SIMD targets of the kernels, in one place. `simd_fn! { fn ... }` compiles the function once
//! per target (and once plain) and calls the best one the running CPU supports (multiversion).

/// `#[multiversion]` with the targets of every kernel; `$avx512` is the AVX-512 target.
macro_rules! simd_targets {
    ($avx512:tt, $($item:tt)*) => {
        #[multiversion::multiversion(targets($avx512, "x86_64+avx2+fma", "aarch64+neon"))]
        $($item)*
    };
}

/// The kernels' targets. The AVX-512 one does not enable FMA: kernels that choose their
/// arithmetic by target (the filter cascade) keep their separately rounded products there.
macro_rules! simd_fn {
    ($($item:tt)*) => {
        $crate::simd::simd_targets!("x86_64+avx512f+avx512dq+avx512vl", $($item)*);
    };
}

/// The same targets with FMA on AVX-512, for the band mel kernel, which is written for it.
macro_rules! simd_fma_fn {
    ($($item:tt)*) => {
        $crate::simd::simd_targets!("x86_64+avx512f+avx512dq+avx512vl+fma", $($item)*);
    };
}

pub(crate) use {simd_fma_fn, simd_fn, simd_targets};
