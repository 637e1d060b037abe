//! Helpers shared by the crate's unit tests.

/// `n` deterministic pseudo-random values in [-0.5, 0.5) (a 64-bit LCG seeded with `seed`).
pub fn noise(n: usize, seed: u64) -> Vec<f64> {
    let mut state = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 11) as f64 / (1u64 << 53) as f64) - 0.5
        })
        .collect()
}

/// The competition's mel recipe (Hann 128 in 1024-point frames, 128 mels to 20 Hz, 80 dB,
/// (dB + 40) / 40) on 2,000-sample windows: short enough for fast unit tests.
pub fn short_mel_recipe() -> crate::montage::MelRecipe {
    use crate::filterbank::MelFilterbank;
    use crate::mel::{MelSpectrogram, PowerToDb};
    use crate::montage::{MelRecipe, Preprocessing};
    use crate::spectral::{Framing, PadMode, Window};
    MelRecipe {
        pre: Preprocessing { n_samples: Some(2000), filters: vec![] },
        spec: std::sync::Arc::new(|kept| {
            let framing = Framing::new(1024, kept / 256, true, PadMode::Constant)?;
            let mel = MelFilterbank::new(200.0, 1024, 128, 0.0, 20.0, false, true)?;
            MelSpectrogram::new(framing, &Window::Hann, Some(128), mel, 2.0)
        }),
        db: PowerToDb::new(None, 1e-10, Some(80.0)).unwrap(),
        width_multiple: 32,
        offset: 40.0,
        scale: 40.0,
    }
}
