//! The hms native core: filters, resampling, spectral transforms, mel spectrograms, the EEG
//! montage and recipes (spectrograms and raw inputs), model inputs and running statistics, in
//! plain Rust (no Python). The bindings crate (`hms-native`) exposes them to Python as
//! `hms._native`.

pub mod alloc;
pub mod bandmel;
pub mod error;
pub mod filter;
pub mod filterbank;
pub mod inputs;
pub mod mel;
pub mod montage;
pub mod raw;
pub mod real;
pub mod resample;
mod simd;
pub mod spectral;
pub mod stats;
#[cfg(test)]
mod testing;
pub mod transform;

pub use error::{CoreError, Result};
