//! `ipckit ls` and `ipckit clean`: the IPC objects on this machine, and
//! removing ipckit objects that no process uses any more. The library
//! finds and removes them ([`ipckit::objects`]); this prints.

use std::path::Path;

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ipckit::name::{ShmName, resolve_key};
use ipckit::objects::{self, Cleaned, Family, ObjectInfo};

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

/// Where the mqueue file system shows POSIX message queues, the one
/// place `ipckit ls` finds them.
const MQUEUE_DIR: &str = "/dev/mqueue";

/// The `f_type` of the mqueue file system (`MQUEUE_MAGIC`).
const MQUEUE_MAGIC: u64 = 0x1980_0202;

/// Whether an mqueue file system is mounted at `path`.
fn mqueue_mounted(path: &Path) -> bool {
    rustix::fs::statfs(path).is_ok_and(|st| st.f_type as u64 == MQUEUE_MAGIC)
}

pub fn ls(args: LsArgs) -> anyhow::Result<()> {
    let entries = objects::list();
    if args.json {
        for e in &entries {
            let mut obj = serde_json::Map::new();
            obj.insert("kind".into(), e.kind.as_str().into());
            obj.insert("name".into(), e.name.clone().into());
            obj.insert("size".into(), e.size.into());
            obj.insert("uid".into(), e.uid.into());
            obj.insert("mode".into(), format!("{:04o}", e.mode).into());
            if let Some(i) = e.ipckit {
                obj.insert("ipckit".into(), i.kind_name().into());
                obj.insert("stale".into(), i.stale.into());
            }
            if let Some(c) = e.channel {
                obj.insert("receiver_pid".into(), c.receiver_pid.into());
                obj.insert("senders".into(), c.senders.into());
            }
            crate::outln(format_args!("{}", serde_json::Value::Object(obj)))?;
        }
    } else {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header(["kind", "name", "size", "uid", "mode", "ipckit"]);
        for e in &entries {
            let ipckit = match (e.ipckit, e.channel) {
                (Some(i), _) if i.stale => format!("{} (stale)", i.kind_name()),
                (Some(i), _) => i.kind_name().to_string(),
                (None, Some(c)) => match c.receiver_pid {
                    Some(pid) => format!("channel: receiver pid {pid}, {} senders", c.senders),
                    None => format!("channel: {} senders", c.senders),
                },
                (None, None) => "-".into(),
            };
            table.add_row([
                e.kind.as_str().into(),
                e.name.clone(),
                e.size.to_string(),
                e.uid.to_string(),
                format!("{:04o}", e.mode),
                ipckit,
            ]);
        }
        crate::outln(format_args!("{table}"))?;
    }
    if !mqueue_mounted(Path::new(MQUEUE_DIR)) {
        crate::errln(format_args!(
            "note: no mqueue file system is mounted at {MQUEUE_DIR}, so POSIX message queues (mq:) are not \
             listed; mount it with `mount -t mqueue none {MQUEUE_DIR}`"
        ));
    }
    Ok(())
}

/// `clean` without names removes this user's stale ipckit objects and
/// exits 0 (1 if removing one failed). With names, every name is removed
/// or said why not (no such object, not an ipckit object, another user's,
/// in use), and any name not removed makes the exit status 1.
pub fn clean(args: CleanArgs) -> anyhow::Result<()> {
    let mut not_removed = 0usize;
    let wanted: Vec<String> = if args.names.is_empty() {
        Vec::new()
    } else {
        let listed = objects::list();
        let me = rustix::process::geteuid().as_raw();
        let mut wanted = Vec::new();
        for name in &args.names {
            match check(name, &listed, me) {
                Ok(listed_as) => wanted.push(listed_as),
                Err(why) => {
                    crate::errln(format_args!("clean {name}: {why}"));
                    not_removed += 1;
                }
            }
        }
        if wanted.is_empty() {
            return Err(crate::Reported(1).into());
        }
        wanted
    };
    if args.dry_run {
        for o in objects::stale(&wanted) {
            crate::outln(format_args!("would remove {}", o.name))?;
        }
    } else {
        let mut removed = 0;
        let mut seen = Vec::new();
        for outcome in objects::clean(&wanted) {
            match outcome {
                Cleaned::Removed(name) => {
                    crate::outln(format_args!("removed {name}"))?;
                    removed += 1;
                    seen.push(name);
                }
                Cleaned::InUse(name) if !wanted.is_empty() => {
                    crate::errln(format_args!("clean {name}: not removed: a process opened it since it was checked"));
                    not_removed += 1;
                    seen.push(name);
                }
                Cleaned::InUse(_) => {}
                Cleaned::Failed(err) => {
                    crate::errln(format_args!("{err}"));
                    not_removed += 1;
                    seen.push(err.object().to_string());
                }
            }
        }
        // A named object that a process took between the check and the
        // clean is no longer stale: the clean skipped it.
        for name in wanted.iter().filter(|w| !seen.contains(w)) {
            crate::errln(format_args!("clean {name}: not removed: a process opened it since it was checked"));
            not_removed += 1;
        }
        crate::errln(format_args!("{removed} stale object(s) removed"));
    }
    if not_removed > 0 { Err(crate::Reported(1).into()) } else { Ok(()) }
}

/// The name `objects::list` gives the object `name` names: System V keys
/// as `0x` numbers (`sysv:/path?id=2` becomes `sysv:0x...` through ftok).
fn listed_name(name: &str) -> String {
    let sysv = |prefix: &str, rest: &str| match format!("sysv:{rest}").parse::<ShmName>() {
        Ok(ShmName::Sysv(key)) => match resolve_key(&key, &name) {
            Ok(k) => Some(format!("{prefix}{:#x}", k as u32)),
            Err(_) => None,
        },
        _ => None,
    };
    let resolved = match (name.strip_prefix("sysv:"), name.strip_prefix("sysv-mq:")) {
        (Some(rest), _) => sysv("sysv:", rest),
        (_, Some(rest)) => sysv("sysv-mq:", rest),
        _ => None,
    };
    resolved.unwrap_or_else(|| name.to_string())
}

/// Whether `clean` may remove the object `name` names: its name as
/// listed, or why not.
fn check(name: &str, listed: &[ObjectInfo], me: u32) -> Result<String, String> {
    let listed_as = listed_name(name);
    let found: Vec<&ObjectInfo> = listed.iter().filter(|o| o.name == listed_as).collect();
    if found.is_empty() {
        if let Some(path) = name.strip_prefix("file:").filter(|p| Path::new(p).exists()) {
            return Err(format!(
                "not removed: {path} is a file; clean removes only listed objects (remove it with `ipckit rm {name}`)"
            ));
        }
        return Err("no such object".into());
    }
    let Some(o) = found.iter().find(|o| o.ipckit.is_some()) else {
        let rm = match found[0].kind {
            Family::PosixSemaphore | Family::SysvSemaphores => "ipckit sem rm",
            _ => "ipckit rm",
        };
        return Err(format!(
            "not removed: not an ipckit object (a {} object); clean removes only stale ipckit objects \
             (remove it with `{rm} {name}`)",
            found[0].kind
        ));
    };
    if o.uid != me {
        return Err(format!("not removed: it belongs to uid {}, not to this user (uid {me})", o.uid));
    }
    if !o.ipckit.is_some_and(|i| i.stale) {
        return Err("not removed: in use (a process holds it)".into());
    }
    Ok(listed_as)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mqueue_is_told_apart_from_other_file_systems() {
        assert!(!mqueue_mounted(Path::new("/proc")), "/proc is not an mqueue file system");
        assert!(!mqueue_mounted(Path::new("/no/such/dir")), "nothing mounted where nothing is");
        // Where it is mounted (it is, on Linux machines with POSIX queues),
        // it is recognised.
        let mounts = std::fs::read_to_string("/proc/self/mounts").expect("read /proc/self/mounts");
        for line in mounts.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(2) == Some(&"mqueue") {
                assert!(mqueue_mounted(Path::new(fields[1])), "{line}");
            }
        }
    }

    #[test]
    fn listed_names() {
        assert_eq!(listed_name("/a"), "/a");
        assert_eq!(listed_name("sysv:4660"), "sysv:0x1234");
        assert_eq!(listed_name("sysv:0x1234"), "sysv:0x1234");
        assert_eq!(listed_name("sysv-mq:4660"), "sysv-mq:0x1234");
        assert_eq!(listed_name("mq:/q"), "mq:/q");
        assert_eq!(listed_name("sysv:/no/such/path"), "sysv:/no/such/path");
    }
}
