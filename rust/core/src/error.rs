//! The kernels' error: an argument with a bad value or shape (the bindings raise ValueError).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError(String);

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    pub fn new(msg: impl Into<String>) -> Self {
        CoreError(msg.into())
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CoreError {}

/// `value` if it is finite; else an error naming the argument `name`.
pub fn finite(value: f64, name: &str) -> Result<f64> {
    crate::ensure!(value.is_finite(), "{name} must be finite, got {value}");
    Ok(value)
}

/// `value` if it is finite and positive.
pub fn positive(value: f64, name: &str) -> Result<f64> {
    crate::ensure!(finite(value, name)? > 0.0, "{name} must be positive, got {value}");
    Ok(value)
}

/// `value` if it is finite and >= 0.
pub fn non_negative(value: f64, name: &str) -> Result<f64> {
    crate::ensure!(finite(value, name)? >= 0.0, "{name} must be >= 0, got {value}");
    Ok(value)
}

/// Returns `Err(CoreError)` with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {{
        // Bound first: `!(a < b)` on floats reads as `a >= b`, which NaN does not satisfy.
        let holds: bool = $cond;
        if !holds {
            return Err($crate::error::CoreError::new(format!($($fmt)+)));
        }
    }};
}
