//! SIGINT, SIGTERM and SIGHUP remove every live testbed of this process, then exit with
//! status 128 + signal. Installed by the first [`crate::Testbed::up`].

use std::collections::BTreeSet;
use std::sync::{Mutex, Once};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

use crate::cleanup::{Scope, clean};
use crate::prefix::RunPrefix;

static LIVE: Mutex<BTreeSet<RunPrefix>> = Mutex::new(BTreeSet::new());

pub(crate) fn register(prefix: &RunPrefix) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| match Signals::new([SIGINT, SIGTERM, SIGHUP]) {
        Ok(mut signals) => {
            std::thread::spawn(move || {
                if let Some(sig) = signals.forever().next() {
                    let live: Vec<RunPrefix> = LIVE
                        .lock()
                        .map(|l| l.iter().cloned().collect())
                        .unwrap_or_default();
                    for prefix in live {
                        eprintln!("wow-netns: signal {sig}: removing run {prefix}");
                        if let Err(e) = clean(&Scope::Run(prefix)) {
                            eprintln!("wow-netns: {e}; run `wow-bench clean`");
                        }
                    }
                    std::process::exit(128 + sig);
                }
            });
        }
        Err(e) => {
            eprintln!("wow-netns: cannot handle signals ({e}); Ctrl-C will leave namespaces behind")
        }
    });
    if let Ok(mut live) = LIVE.lock() {
        live.insert(prefix.clone());
    }
}

pub(crate) fn unregister(prefix: &RunPrefix) {
    if let Ok(mut live) = LIVE.lock() {
        live.remove(prefix);
    }
}
