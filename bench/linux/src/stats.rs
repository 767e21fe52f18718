//! Summaries of TSC samples and the output line the report generator parses.

/// Min / median / p99 of one measurement, in TSC cycles per operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub min: u64,
    pub median: u64,
    pub p99: u64,
}

/// Summarises `samples` (cycles per sample, each covering `per_sample`
/// operations) as cycles per operation. Sorts `samples` in place.
///
/// The median and p99 indices (`n / 2`, `n * 99 / 100`) are the ones the
/// nucleus's `nopbench` guest uses, so the two sides compare like for like.
pub fn summarize(samples: &mut [u64], per_sample: u64) -> Summary {
    assert!(!samples.is_empty(), "no samples to summarise");
    assert!(per_sample > 0, "a sample covers at least one operation");
    samples.sort_unstable();
    let n = samples.len();
    let at = |i: usize| samples[i.min(n - 1)] / per_sample;
    Summary {
        min: at(0),
        median: at(n / 2),
        p99: at(n * 99 / 100),
    }
}

/// Nanoseconds for `cycles` at a TSC of `hz` (rounded down, as `nopbench`).
pub fn cycles_to_ns(cycles: u64, hz: u64) -> u64 {
    (u128::from(cycles) * 1_000_000_000 / u128::from(hz.max(1))) as u64
}

/// The one result line:
/// `linux: NAME batch=B: min C cycles (N ns), median C cycles (N ns), p99 C cycles (N ns)`.
pub fn line(name: &str, batch: u32, s: Summary, hz: u64) -> String {
    let part = |c: u64| format!("{c} cycles ({} ns)", cycles_to_ns(c, hz));
    format!(
        "linux: {name} batch={batch}: min {}, median {}, p99 {}",
        part(s.min),
        part(s.median),
        part(s.p99)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_shuffled_samples() {
        // 1..=1000 reversed: min 1, median index 500 -> 501, p99 index 990 -> 991.
        let mut samples: Vec<u64> = (1..=1000).rev().collect();
        let s = summarize(&mut samples, 1);
        assert_eq!(
            s,
            Summary {
                min: 1,
                median: 501,
                p99: 991
            }
        );
    }

    #[test]
    fn summary_divides_by_batch_and_handles_one_sample() {
        let mut samples = vec![3200, 6400, 320];
        let s = summarize(&mut samples, 32);
        assert_eq!((s.min, s.median, s.p99), (10, 100, 200));
        let s = summarize(&mut [77], 1);
        assert_eq!((s.min, s.median, s.p99), (77, 77, 77));
    }

    #[test]
    fn line_format_is_the_parsed_one() {
        let s = Summary {
            min: 1000,
            median: 2000,
            p99: 3000,
        };
        assert_eq!(
            line("io_uring-nop", 32, s, 2_000_000_000),
            "linux: io_uring-nop batch=32: min 1000 cycles (500 ns), \
             median 2000 cycles (1000 ns), p99 3000 cycles (1500 ns)"
        );
        // No overflow for large counts: u64::MAX / 2 cycles at 4 GHz.
        assert_eq!(cycles_to_ns(u64::MAX / 2, 4_000_000_000), u64::MAX / 2 / 4);
    }
}
