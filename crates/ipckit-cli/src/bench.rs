//! `ipckit bench` (placeholder; being written).

use clap::Args;

#[derive(Args, Debug)]
pub struct BenchArgs {}

#[derive(Args, Debug)]
pub struct PeerArgs {}

pub fn run(_args: BenchArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench: not written yet")
}

pub fn peer(_args: PeerArgs) -> anyhow::Result<()> {
    anyhow::bail!("bench-peer: not written yet")
}
