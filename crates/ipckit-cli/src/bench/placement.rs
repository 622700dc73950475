//! Where the two processes of a trial run: each pinned to its own CPU.

use anyhow::{Context, Result};
use ipckit::process::{allowed_cpus, pin_to_cpu};

/// Where the two processes run.
#[derive(Clone, Copy, Debug)]
pub(super) enum Placement {
    /// Each pinned to its own CPU.
    Pinned { parent: usize, peer: usize },
    /// Fewer than two CPUs allowed: wherever the scheduler puts them.
    Unpinned,
}

impl Placement {
    /// Pins this thread to the first allowed CPU and picks the second for
    /// the peer; unpinned if only one is allowed.
    pub(super) fn choose() -> Result<Placement> {
        match allowed_cpus()[..] {
            [parent, peer, ..] => {
                pin_to_cpu(parent).with_context(|| format!("pin to CPU {parent}"))?;
                Ok(Placement::Pinned { parent, peer })
            }
            _ => Ok(Placement::Unpinned),
        }
    }

    pub(super) fn peer_cpu(self) -> Option<usize> {
        match self {
            Placement::Pinned { peer, .. } => Some(peer),
            Placement::Unpinned => None,
        }
    }
}
