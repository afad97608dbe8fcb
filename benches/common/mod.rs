//! Settings shared by the criterion benches: short runs, since CI only
//! compiles them and the machines are small and shared.

use std::time::Duration;

use criterion::Criterion;

/// 30 samples, 1 s warm-up, 3 s of measurement.
pub fn config() -> Criterion {
    Criterion::default().sample_size(30).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1))
}
