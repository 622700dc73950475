//! `ipckit ls` and `ipckit clean`: the IPC objects on this machine, and
//! removing ipckit objects that no process uses any more.

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ipckit::shm::{Header, MAGIC, STATE_READY, Segment, ShmName};

#[derive(Args, Debug)]
pub struct LsArgs {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct CleanArgs {
    /// Only these objects (default: every object of this user).
    pub names: Vec<String>,
    /// Say what would be removed, remove nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// One object found.
struct Entry {
    kind: &'static str,
    name: String,
    size: u64,
    uid: u32,
    mode: u32,
    /// For ipckit objects: what it is, and whether it is stale.
    ipckit: Option<(&'static str, bool)>,
}

fn object_kind(kind: u32) -> &'static str {
    match kind {
        1 => "mutex",
        2 => "condvar",
        3 => "semaphore",
        4 => "event",
        5 => "futex-semaphore",
        _ => "object",
    }
}

/// The ipckit header of a segment, if it is an initialised ipckit object.
fn ipckit_header(name: &ShmName) -> Option<Header> {
    let region = Segment::new(name.clone()).read_only().open().ok()?;
    let header: Header = region.read(0).ok()?;
    (header.magic == MAGIC && header.state == STATE_READY).then_some(header)
}

fn classify(name: &ShmName) -> Option<(&'static str, bool)> {
    let header = ipckit_header(name)?;
    let stale = ipckit::shm::is_stale(name).unwrap_or(false);
    Some((object_kind(header.kind), stale))
}

fn posix_objects() -> Vec<Entry> {
    use std::os::unix::fs::MetadataExt;
    let mut out = Vec::new();
    for dir in ["/dev/shm", "/dev/mqueue"] {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten() {
            let Ok(meta) = e.metadata() else { continue };
            let file = e.file_name().to_string_lossy().into_owned();
            let (kind, name) = match (dir, file.strip_prefix("sem.")) {
                ("/dev/mqueue", _) => ("mq", format!("mq:/{file}")),
                (_, Some(sem)) => ("sem", format!("/{sem}")),
                _ => ("shm", format!("/{file}")),
            };
            let ipckit = if kind == "shm" { name.parse().ok().and_then(|n| classify(&n)) } else { None };
            out.push(Entry { kind, name, size: meta.size(), uid: meta.uid(), mode: meta.mode() & 0o777, ipckit });
        }
    }
    out
}

fn sysv_objects() -> Vec<Entry> {
    let mut out = Vec::new();
    for (file, kind) in [("msg", "sysv-mq"), ("shm", "sysv-shm"), ("sem", "sysv-sem")] {
        let Ok(text) = std::fs::read_to_string(format!("/proc/sysvipc/{file}")) else { continue };
        let mut lines = text.lines();
        let Some(head) = lines.next() else { continue };
        let cols: Vec<&str> = head.split_whitespace().collect();
        fn col<'a>(cols: &[&str], row: &[&'a str], name: &str) -> Option<&'a str> {
            cols.iter().position(|c| *c == name).and_then(|i| row.get(i).copied())
        }
        for line in lines {
            let row: Vec<&str> = line.split_whitespace().collect();
            let key: i32 = col(&cols, &row, "key").and_then(|k| k.parse().ok()).unwrap_or(0);
            let size = match kind {
                "sysv-shm" => col(&cols, &row, "size"),
                "sysv-mq" => col(&cols, &row, "cbytes"),
                _ => col(&cols, &row, "nsems"),
            };
            let name = match kind {
                "sysv-mq" => format!("sysv-mq:{:#x}", key as u32),
                _ => format!("sysv:{:#x}", key as u32),
            };
            let ipckit =
                if kind == "sysv-shm" && key != 0 { name.parse().ok().and_then(|n| classify(&n)) } else { None };
            out.push(Entry {
                kind,
                name,
                size: size.and_then(|s| s.parse().ok()).unwrap_or(0),
                uid: col(&cols, &row, "uid").and_then(|u| u.parse().ok()).unwrap_or(0),
                mode: col(&cols, &row, "perms").and_then(|p| u32::from_str_radix(p, 8).ok()).unwrap_or(0) & 0o777,
                ipckit,
            });
        }
    }
    out
}

pub fn ls(args: LsArgs) -> anyhow::Result<()> {
    let entries: Vec<Entry> = posix_objects().into_iter().chain(sysv_objects()).collect();
    if args.json {
        for e in &entries {
            let mut obj = serde_json::Map::new();
            obj.insert("kind".into(), e.kind.into());
            obj.insert("name".into(), e.name.clone().into());
            obj.insert("size".into(), e.size.into());
            obj.insert("uid".into(), e.uid.into());
            obj.insert("mode".into(), format!("{:04o}", e.mode).into());
            if let Some((what, stale)) = e.ipckit {
                obj.insert("ipckit".into(), what.into());
                obj.insert("stale".into(), stale.into());
            }
            println!("{}", serde_json::Value::Object(obj));
        }
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(["kind", "name", "size", "uid", "mode", "ipckit"]);
    for e in &entries {
        let ipckit = match e.ipckit {
            Some((what, true)) => format!("{what} (stale)"),
            Some((what, false)) => what.to_string(),
            None => "-".into(),
        };
        table.add_row([
            e.kind.into(),
            e.name.clone(),
            e.size.to_string(),
            e.uid.to_string(),
            format!("{:04o}", e.mode),
            ipckit,
        ]);
    }
    println!("{table}");
    Ok(())
}

pub fn clean(args: CleanArgs) -> anyhow::Result<()> {
    let me = rustix::process::geteuid().as_raw();
    let mut removed = 0;
    for e in posix_objects().into_iter().chain(sysv_objects()) {
        // Only this user's initialised ipckit objects that no process holds.
        if e.uid != me || !matches!(e.ipckit, Some((_, true))) {
            continue;
        }
        if !args.names.is_empty() && !args.names.contains(&e.name) {
            continue;
        }
        if args.dry_run {
            println!("would remove {}", e.name);
            continue;
        }
        let name: ShmName = e.name.parse()?;
        // Checked again, and removed, under the object's exclusive lock: a
        // process that joined since the listing keeps it.
        match ipckit::shm::remove_if_stale(&name) {
            Ok(true) => {
                println!("removed {}", e.name);
                removed += 1;
            }
            Ok(false) => {}
            Err(err) => eprintln!("ipckit: {err}"),
        }
    }
    if !args.dry_run {
        eprintln!("ipckit: {removed} stale object(s) removed");
    }
    Ok(())
}
