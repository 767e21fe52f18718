//! A token bucket: how much of something (console lines) a guest may have
//! the nucleus do per unit of time, with a burst. Time is whatever clock
//! the caller counts in (the TSC); the bucket never overflows however long
//! it sat idle, and a clock that goes backwards refills nothing.

/// `burst` tokens at most, `per_second` more each second.
#[derive(Clone, Debug)]
pub struct TokenBucket {
    burst: u64,
    per_second: u64,
    /// Ticks of the caller's clock per second.
    hz: u64,
    tokens: u64,
    /// Clock value the tokens were last counted at, and the fraction of a
    /// token (in tokens * hz) earned since, so slow refills are not lost.
    at: u64,
    earned: u64,
    /// Requests refused since the last `take_dropped`.
    dropped: u64,
}

impl TokenBucket {
    /// A full bucket at clock value `now`.
    pub fn new(burst: u64, per_second: u64, hz: u64, now: u64) -> TokenBucket {
        TokenBucket {
            burst,
            per_second,
            hz: hz.max(1),
            tokens: burst,
            at: now,
            earned: 0,
            dropped: 0,
        }
    }

    /// Takes one token at clock value `now`: whether the request may go
    /// ahead (else it is counted as dropped).
    pub fn take(&mut self, now: u64) -> bool {
        self.refill(now);
        if self.tokens > 0 {
            self.tokens -= 1;
            true
        } else {
            self.dropped += 1;
            false
        }
    }

    /// Requests refused since the last call (and forgets them).
    pub fn take_dropped(&mut self) -> u64 {
        core::mem::take(&mut self.dropped)
    }

    fn refill(&mut self, now: u64) {
        let elapsed = now.saturating_sub(self.at);
        if elapsed == 0 {
            // Many requests at one clock value (lines of one write) cost a
            // comparison each.
            return;
        }
        self.at = now;
        if self.tokens >= self.burst {
            self.earned = 0;
            return;
        }
        // In units of tokens * hz: exact, and u128 so no uptime overflows.
        let earned = self.earned as u128 + elapsed as u128 * self.per_second as u128;
        let whole = earned / self.hz as u128;
        let room = (self.burst - self.tokens) as u128;
        if whole >= room {
            self.tokens = self.burst;
            self.earned = 0;
        } else {
            self.tokens += whole as u64;
            self.earned = (earned % self.hz as u128) as u64;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_burst_then_the_rate() {
        let mut bucket = TokenBucket::new(3, 2, 1000, 0);
        assert!((0..3).all(|_| bucket.take(0)));
        assert!(!bucket.take(0));
        assert!(!bucket.take(499), "half a second earns one token, not yet");
        assert!(bucket.take(500));
        assert!(!bucket.take(500));
        assert_eq!(bucket.take_dropped(), 3);
        assert_eq!(bucket.take_dropped(), 0);
        // A long idle refills to the burst, no more.
        assert!((0..3).all(|_| bucket.take(1_000_000)));
        assert!(!bucket.take(1_000_000));
    }

    #[test]
    fn a_clock_going_backwards_refills_nothing() {
        let mut bucket = TokenBucket::new(1, 1, 10, 100);
        assert!(bucket.take(100));
        assert!(!bucket.take(50));
        assert!(!bucket.take(105));
        assert!(bucket.take(110));
    }

    proptest! {
        /// Over any run of requests, what passes is at most the burst plus
        /// the rate times the time elapsed.
        #[test]
        fn never_more_than_burst_plus_rate(
            burst in 0u64..50,
            per_second in 0u64..1000,
            steps in proptest::collection::vec(0u64..5_000, 1..300),
        ) {
            let hz = 1000;
            let mut bucket = TokenBucket::new(burst, per_second, hz, 0);
            let (mut now, mut passed) = (0u64, 0u64);
            for step in steps {
                now += step;
                let allowed = burst + now * per_second / hz;
                if bucket.take(now) {
                    passed += 1;
                }
                prop_assert!(passed <= allowed, "{} passed, {} allowed", passed, allowed);
            }
        }
    }
}
