//! The element types the kernels accept. Work is done in f64; f32 is a storage format.

pub trait Real: Copy + Send + Sync + PartialOrd + 'static {
    const NAME: &'static str;
    /// The largest finite value, as f64.
    const MAX: f64;
    fn to_f64(self) -> f64;
    fn from_f64(v: f64) -> Self;
}

impl Real for f32 {
    const NAME: &'static str = "float32";
    const MAX: f64 = f32::MAX as f64;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v as f32
    }
}

impl Real for f64 {
    const NAME: &'static str = "float64";
    const MAX: f64 = f64::MAX;
    #[inline(always)]
    fn to_f64(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_f64(v: f64) -> Self {
        v
    }
}
