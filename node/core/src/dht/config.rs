//! DHT parameters and their validation.

use std::time::Duration;

/// Most sub-keys per application key: sub-key indices travel as one byte (0..=255).
pub const MAX_SUB_KEYS: usize = 256;

/// DHT parameters. Check parameters that come from users with [`Config::validate`];
/// [`super::Dht::new`] refuses (panics on) an invalid configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Sub-keys per application key (1 ..= [`MAX_SUB_KEYS`]).
    pub sub_keys: usize,
    /// Sub-keys that must agree for an operation to succeed: more than half of
    /// `sub_keys`, at most all of them.
    pub majority: usize,
    /// Wait this long for a reply before retransmitting a request.
    pub request_timeout: Duration,
    /// Requests per sub-key before it counts as failed.
    pub attempts: u32,
    /// After one replica answered a read, wait this long for the other.
    pub read_grace: Duration,
    /// An operation that cannot start within this time (the node is not correctly
    /// connected) fails.
    pub start_timeout: Duration,
    /// Every this often, replicas copy all their records to their partners again.
    pub resync: Duration,
    /// Period of expiry and migration checks.
    pub tick: Duration,
    /// Most records a node stores on behalf of one sector of the ring: the records
    /// whose (claimed) writer or sending replica lies nearer to one connected peer than
    /// to any other (see `replica::quota_holder`: sources are not authenticated yet).
    pub max_records_per_peer: usize,
    /// Most records a node stores.
    pub max_records: usize,
    /// Longest TTL a node grants.
    pub max_ttl: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sub_keys: 5,
            majority: 3,
            request_timeout: Duration::from_secs(2),
            attempts: 3,
            read_grace: Duration::from_millis(300),
            start_timeout: Duration::from_secs(60),
            resync: Duration::from_secs(60),
            tick: Duration::from_secs(1),
            max_records_per_peer: 4096,
            max_records: 1 << 20,
            max_ttl: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Why a [`Config`] cannot be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// `sub_keys` is 0 or more than the wire can number.
    #[error("sub_keys = {0}: use 1 to {MAX_SUB_KEYS} sub-keys per key")]
    SubKeys(usize),
    /// `majority` is not more than half of `sub_keys`, or more than all of them.
    #[error(
        "majority = {majority} of {sub_keys} sub-keys: use more than half and at most all \
         ({min} to {sub_keys})",
        min = sub_keys / 2 + 1
    )]
    Majority {
        /// The configured majority.
        majority: usize,
        /// The configured number of sub-keys.
        sub_keys: usize,
    },
    /// `attempts` is 0: no request would ever be sent.
    #[error("attempts = 0: every sub-key needs at least one request")]
    NoAttempts,
    /// `tick` is zero: the timer would fire without pause.
    #[error("tick = 0: the DHT needs a positive timer period")]
    ZeroTick,
}

impl Config {
    /// Checks that the parameters can work: 1 to 256 sub-keys, a majority in
    /// `(sub_keys / 2, sub_keys]`, at least one attempt, a positive tick.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if !(1..=MAX_SUB_KEYS).contains(&self.sub_keys) {
            return Err(ConfigError::SubKeys(self.sub_keys));
        }
        if self.majority * 2 <= self.sub_keys || self.majority > self.sub_keys {
            return Err(ConfigError::Majority {
                majority: self.majority,
                sub_keys: self.sub_keys,
            });
        }
        if self.attempts == 0 {
            return Err(ConfigError::NoAttempts);
        }
        if self.tick.is_zero() {
            return Err(ConfigError::ZeroTick);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(sub_keys: usize, majority: usize) -> Config {
        Config {
            sub_keys,
            majority,
            ..Config::default()
        }
    }

    #[test]
    fn sub_keys_and_majority_are_bounded() {
        assert_eq!(Config::default().validate(), Ok(()));
        assert_eq!(with(1, 1).validate(), Ok(()));
        assert_eq!(with(7, 4).validate(), Ok(()));
        assert_eq!(with(256, 129).validate(), Ok(()));
        assert_eq!(with(0, 0).validate(), Err(ConfigError::SubKeys(0)));
        assert_eq!(with(257, 200).validate(), Err(ConfigError::SubKeys(257)));
        for (n, m) in [(5, 2), (4, 2), (5, 6), (5, 0)] {
            let err = ConfigError::Majority {
                majority: m,
                sub_keys: n,
            };
            assert_eq!(with(n, m).validate(), Err(err), "{n}/{m}");
        }
        let zero_attempts = Config {
            attempts: 0,
            ..Config::default()
        };
        assert_eq!(zero_attempts.validate(), Err(ConfigError::NoAttempts));
        let zero_tick = Config {
            tick: Duration::ZERO,
            ..Config::default()
        };
        assert_eq!(zero_tick.validate(), Err(ConfigError::ZeroTick));
    }

    #[test]
    fn errors_say_what_to_use() {
        let msg = with(4, 2).validate().unwrap_err().to_string();
        assert_eq!(
            msg,
            "majority = 2 of 4 sub-keys: use more than half and at most all (3 to 4)"
        );
        assert!(
            with(0, 0)
                .validate()
                .unwrap_err()
                .to_string()
                .contains("1 to 256")
        );
    }
}
