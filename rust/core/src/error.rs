//! The kernels' error: an argument with a bad value or shape (the bindings raise ValueError), or
//! memory that cannot be allocated (MemoryError).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoreError {
    kind: ErrorKind,
    msg: String,
}

/// What went wrong: the bindings raise a different Python exception for each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A bad argument value or shape (ValueError).
    Value,
    /// An allocation that failed, or whose size does not fit in memory at all (MemoryError).
    Alloc,
}

pub type Result<T> = std::result::Result<T, CoreError>;

impl CoreError {
    /// A bad argument; the message names it.
    pub fn new(msg: impl Into<String>) -> Self {
        CoreError { kind: ErrorKind::Value, msg: msg.into() }
    }

    /// `bytes` (None: more than the address space holds) could not be allocated for `what`, which
    /// names the argument that sets its size (e.g. "the output of x", "a window of n_fft values").
    pub fn alloc(what: &str, bytes: Option<usize>) -> Self {
        let size = match bytes {
            Some(b) => format!("{} ({b} bytes)", human_bytes(b)),
            None => "more bytes than the address space holds".to_string(),
        };
        CoreError { kind: ErrorKind::Alloc, msg: format!("cannot allocate {what}: {size}") }
    }

    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    pub fn is_alloc(&self) -> bool {
        self.kind == ErrorKind::Alloc
    }

    /// The same error with `context` before its message (e.g. the instance it concerns).
    pub fn context(self, context: impl fmt::Display) -> Self {
        CoreError { kind: self.kind, msg: format!("{context}: {}", self.msg) }
    }
}

/// `bytes` in binary units, as numpy's MemoryError reports them ("8.00 TiB").
fn human_bytes(bytes: usize) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.2} {}", UNITS[unit])
    }
}

impl fmt::Display for CoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.msg)
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

/// `eps` of a standardization `(x - mean) / (std + eps)`: 0, or a normal positive float. A
/// subnormal eps (below 2.2e-308) is refused: `1 / eps` overflows, so a constant instance would
/// come out as `0 * inf = NaN` instead of 0.
pub fn normal_eps(eps: f64, name: &str) -> Result<f64> {
    non_negative(eps, name)?;
    crate::ensure!(
        eps == 0.0 || eps >= f64::MIN_POSITIVE,
        "{name} must be 0 or a normal positive float (at least {:e}), got {eps:e}",
        f64::MIN_POSITIVE
    );
    Ok(eps)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_errors_are_their_own_kind_and_say_how_much() {
        let e = CoreError::alloc("the output of x", Some(8 << 40));
        assert!(e.is_alloc() && e.kind() == ErrorKind::Alloc);
        assert_eq!(e.to_string(), "cannot allocate the output of x: 8.00 TiB (8796093022208 bytes)");
        let overflow = CoreError::alloc("a window of n_fft values", None);
        assert!(overflow.to_string().contains("more bytes than the address space holds"), "{overflow}");
        assert!(!CoreError::new("x must be finite").is_alloc());
        assert_eq!(CoreError::new("bad").context("instance 3").to_string(), "instance 3: bad");
        assert_eq!(human_bytes(10), "10 B");
    }

    #[test]
    fn eps_must_be_zero_or_normal() {
        assert_eq!(normal_eps(0.0, "eps"), Ok(0.0));
        assert_eq!(normal_eps(1e-6, "eps"), Ok(1e-6));
        assert_eq!(normal_eps(f64::MIN_POSITIVE, "eps"), Ok(f64::MIN_POSITIVE));
        for bad in [5e-324, 1e-310, -1e-6, f64::NAN, f64::INFINITY] {
            let err = normal_eps(bad, "eps").unwrap_err();
            assert!(err.to_string().starts_with("eps must"), "{err}");
        }
    }
}
