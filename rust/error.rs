//! The crate's error type. Kernels return it; the bindings map it to Python exceptions.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// An argument has a bad value or shape (Python `ValueError`).
    Value(String),
    /// An argument has an unsupported type or dtype (Python `TypeError`).
    Type(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn value(msg: impl Into<String>) -> Self {
        Error::Value(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Value(msg) | Error::Type(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for Error {}

/// Returns `Err(Error::Value)` with a formatted message unless `cond` holds.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {{
        // Bound first: `!(a < b)` on floats reads as `a >= b`, which NaN does not satisfy.
        let holds: bool = $cond;
        if !holds {
            return Err($crate::error::Error::Value(format!($($fmt)+)));
        }
    }};
}
