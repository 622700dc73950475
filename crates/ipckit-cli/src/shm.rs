//! `ipckit shm`: create, write, read, inspect and remove shared memory.

use std::io::{Read, Write};

use clap::{Args, Subcommand};
use ipckit::shm::{Opened, Segment, ShmName};

use crate::units;

#[derive(Args, Debug)]
pub struct ShmArgs {
    #[command(subcommand)]
    pub command: ShmCommand,
}

#[derive(Subcommand, Debug)]
pub enum ShmCommand {
    /// Create a segment (or open it if it exists and is large enough).
    Create {
        /// `/name` (POSIX), `sysv:KEY` (System V) or `file:/path`.
        name: String,
        /// Size in bytes (e.g. 4096, 1MiB).
        #[arg(long, value_parser = units::parse_size)]
        size: usize,
        /// Fail if it exists already.
        #[arg(long)]
        exclusive: bool,
        /// Permission bits (octal).
        #[arg(long, default_value = "0600", value_parser = parse_mode)]
        mode: u32,
    },
    /// Copy standard input into the segment at an offset.
    Write {
        name: String,
        #[arg(long, default_value = "0", value_parser = units::parse_size)]
        offset: usize,
    },
    /// Copy bytes of the segment to standard output.
    Read {
        name: String,
        #[arg(long, default_value = "0", value_parser = units::parse_size)]
        offset: usize,
        /// How many bytes (default: to the end).
        #[arg(long, value_parser = units::parse_size)]
        len: Option<usize>,
    },
    /// Show size, owner and mode (System V: attach count and pids).
    Info {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Remove the segment.
    Rm { name: String },
}

fn parse_mode(s: &str) -> Result<u32, String> {
    match u32::from_str_radix(s, 8) {
        Ok(m) if m <= 0o777 => Ok(m),
        _ => Err(format!("mode {s:?} is not octal permission bits (0000 to 0777)")),
    }
}

fn name(text: &str) -> ipckit::Result<ShmName> {
    text.parse()
}

pub fn run(args: ShmArgs) -> anyhow::Result<()> {
    match args.command {
        ShmCommand::Create { name: n, size, exclusive, mode } => {
            let seg = Segment::new(name(&n)?).size(size).mode(mode);
            let (region, opened) = if exclusive { (seg.create()?, Opened::Created) } else { seg.open_or_create()? };
            for w in region.warnings() {
                crate::errln(format_args!("warning: {}: {w}", region.name()));
            }
            let what = if opened == Opened::Created { "created" } else { "opened existing" };
            crate::errln(format_args!("{what} {} ({} bytes)", region.name(), region.len()));
        }
        ShmCommand::Write { name: n, offset } => {
            let region = Segment::new(name(&n)?).open()?;
            let room = region.len().saturating_sub(offset);
            // Read one byte more than fits, to refuse input that is too long
            // without reading all of it.
            let mut data = Vec::new();
            std::io::stdin().lock().take(room as u64 + 1).read_to_end(&mut data)?;
            if data.len() > room {
                return Err(ipckit::Error::new(
                    ipckit::ErrorKind::Invalid,
                    "shm write",
                    region.name(),
                    format!("input from offset {offset} is past the end of the {}-byte segment", region.len()),
                )
                .into());
            }
            region.write_at(offset, &data)?;
        }
        ShmCommand::Read { name: n, offset, len } => {
            let region = Segment::new(name(&n)?).read_only().open()?;
            let len = len.unwrap_or(region.len().saturating_sub(offset));
            // Checked before allocating: the length is the user's number.
            if offset.checked_add(len).is_none_or(|end| end > region.len()) {
                return Err(ipckit::Error::new(
                    ipckit::ErrorKind::Invalid,
                    "read",
                    region.name(),
                    format!("offset {offset} + length {len} is past the end of the {}-byte region", region.len()),
                )
                .into());
            }
            let mut buf = vec![0u8; len];
            region.read_at(offset, &mut buf)?;
            std::io::stdout().lock().write_all(&buf)?;
        }
        ShmCommand::Info { name: n, json } => {
            let shm_name = name(&n)?;
            let info = ipckit::shm::info(&shm_name)?;
            if json {
                let mut obj = serde_json::Map::new();
                obj.insert("name".into(), shm_name.to_string().into());
                obj.insert("size".into(), info.size.into());
                obj.insert("uid".into(), info.uid.into());
                obj.insert("mode".into(), format!("{:04o}", info.mode).into());
                if let Some((attached, cpid, lpid)) = info.sysv {
                    obj.insert("attached".into(), attached.into());
                    obj.insert("creator_pid".into(), cpid.into());
                    obj.insert("last_pid".into(), lpid.into());
                }
                crate::outln(format_args!("{}", serde_json::Value::Object(obj)))?;
            } else {
                crate::outln(format_args!("name: {shm_name}"))?;
                crate::outln(format_args!("size: {}", info.size))?;
                crate::outln(format_args!("owner: uid {}", info.uid))?;
                crate::outln(format_args!("mode: {:04o}", info.mode))?;
                if let Some((attached, cpid, lpid)) = info.sysv {
                    crate::outln(format_args!("attached: {attached}"))?;
                    crate::outln(format_args!("creator pid: {cpid}"))?;
                    crate::outln(format_args!("last pid: {lpid}"))?;
                }
            }
        }
        ShmCommand::Rm { name: n } => ipckit::shm::remove(&name(&n)?)?,
    }
    Ok(())
}
