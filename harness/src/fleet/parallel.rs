//! Doing one thing on many hosts: at most `concurrency` at once, retries with
//! exponential backoff for transient failures, and a progress bar on the terminal.

use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::HostSpec;
use crate::ssh::{self, SshHost};

/// How operations across hosts run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallel {
    /// Hosts worked on at once.
    pub concurrency: usize,
    /// Further attempts after a transient failure (connection refused, timeout).
    pub retries: u32,
    /// Wait before the first retry; doubled for each further one.
    pub backoff: Duration,
    /// Draw a progress bar on stderr (only where stderr is a terminal).
    pub progress: bool,
}

impl Default for Parallel {
    fn default() -> Self {
        Parallel {
            concurrency: 8,
            retries: 2,
            backoff: Duration::from_millis(500),
            progress: true,
        }
    }
}

impl Parallel {
    /// Runs `op` on every item, at most `concurrency` at once, and returns the results
    /// in item order. The bar shows `label`, and each item's `name` as it finishes.
    pub fn map<I: Sync, T: Send>(
        &self,
        label: &str,
        items: &[I],
        name: impl Fn(&I) -> String + Sync,
        op: impl Fn(&I) -> T + Sync,
    ) -> Vec<T> {
        let bar = self.bar(label, items.len());
        let next = AtomicUsize::new(0);
        let results: Mutex<Vec<Option<T>>> =
            Mutex::new(std::iter::repeat_with(|| None).take(items.len()).collect());
        let workers = self.concurrency.clamp(1, items.len().max(1));
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let result = op(item);
                        if let Ok(mut r) = results.lock() {
                            r[i] = Some(result);
                        }
                        bar.set_message(name(item));
                        bar.inc(1);
                    }
                });
            }
        });
        bar.finish_and_clear();
        results
            .into_inner()
            .unwrap_or_else(|p| p.into_inner())
            .into_iter()
            .map(|r| r.expect("every item was worked on"))
            .collect()
    }

    /// Runs `op` until it succeeds, fails for good, or has failed `1 + retries` times,
    /// waiting `backoff`, `2 × backoff`, ... in between.
    pub fn retry<T, E>(
        &self,
        transient: impl Fn(&E) -> bool,
        mut op: impl FnMut() -> Result<T, E>,
    ) -> Result<T, E> {
        let mut wait = self.backoff;
        let mut attempt = 0;
        loop {
            match op() {
                Err(e) if attempt < self.retries && transient(&e) => {
                    attempt += 1;
                    std::thread::sleep(wait);
                    wait = wait.saturating_mul(2);
                }
                other => return other,
            }
        }
    }

    /// Logs into `spec`'s host, retrying transient failures.
    pub fn connect(&self, spec: &HostSpec) -> Result<SshHost, ssh::Error> {
        self.retry(ssh::Error::is_transient, || spec.connect())
    }

    fn bar(&self, label: &str, len: usize) -> ProgressBar {
        if !self.progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(len).unwrap_or(u64::MAX)),
            ProgressDrawTarget::stderr(),
        );
        if let Ok(style) =
            ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {elapsed} {msg}")
        {
            bar.set_style(style.progress_chars("=> "));
        }
        bar.set_prefix(label.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn map_keeps_order_and_bounds_concurrency() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let par = Parallel {
            concurrency: 3,
            progress: false,
            ..Parallel::default()
        };
        let items: Vec<u32> = (0..12).collect();
        let out = par.map("test", &items, u32::to_string, |&i| {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(now, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(10));
            running.fetch_sub(1, Ordering::SeqCst);
            i * 2
        });
        assert_eq!(out, (0..12).map(|i| i * 2).collect::<Vec<_>>());
        assert_eq!(peak.load(Ordering::SeqCst), 3);
    }

    #[test]
    fn retry_backs_off_on_transient_errors_only() {
        let par = Parallel {
            retries: 3,
            backoff: Duration::from_millis(1),
            progress: false,
            ..Parallel::default()
        };
        let mut calls = 0;
        let r: Result<(), &str> = par.retry(
            |e| *e == "busy",
            || {
                calls += 1;
                Err("busy")
            },
        );
        assert_eq!((r, calls), (Err("busy"), 4));
        let mut calls = 0;
        let r: Result<(), &str> = par.retry(
            |e| *e == "busy",
            || {
                calls += 1;
                Err("refused")
            },
        );
        assert_eq!((r, calls), (Err("refused"), 1));
        let mut calls = 0;
        let r = par.retry(
            |_: &&str| true,
            || {
                calls += 1;
                if calls < 3 { Err("busy") } else { Ok(calls) }
            },
        );
        assert_eq!(r, Ok(3));
    }
}
