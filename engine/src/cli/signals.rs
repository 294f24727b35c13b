//! Ctrl-C / SIGTERM handling: the first signal sets a flag that long-running
//! work polls so it can stop cleanly (flush, commit, report); a second
//! signal exits at once.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::{Error, Result};

static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// The process-wide stop flag, registered for SIGINT and SIGTERM on first use.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    if let Some(f) = FLAG.get() {
        return Ok(Arc::clone(f));
    }
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [SIGINT, SIGTERM] {
        // A second signal while the flag is already set terminates.
        signal_hook::flag::register_conditional_shutdown(sig, 130, Arc::clone(&flag))
            .map_err(|e| Error::io("registering a signal handler", e))?;
        signal_hook::flag::register(sig, Arc::clone(&flag))
            .map_err(|e| Error::io("registering a signal handler", e))?;
    }
    Ok(Arc::clone(FLAG.get_or_init(|| flag)))
}
