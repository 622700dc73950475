//! `ipckit ls` and `ipckit clean`: the IPC objects on this machine, and
//! removing ipckit objects that no process uses any more. The library
//! finds and removes them ([`ipckit::objects`]); this prints.

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use ipckit::objects::{self, Cleaned};

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
            println!("{}", serde_json::Value::Object(obj));
        }
        return Ok(());
    }
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header(["kind", "name", "size", "uid", "mode", "ipckit"]);
    for e in &entries {
        let ipckit = match e.ipckit {
            Some(i) if i.stale => format!("{} (stale)", i.kind_name()),
            Some(i) => i.kind_name().to_string(),
            None => "-".into(),
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
    println!("{table}");
    Ok(())
}

pub fn clean(args: CleanArgs) -> anyhow::Result<()> {
    if args.dry_run {
        for o in objects::stale(&args.names) {
            println!("would remove {}", o.name);
        }
        return Ok(());
    }
    let mut removed = 0;
    for outcome in objects::clean(&args.names) {
        match outcome {
            Cleaned::Removed(name) => {
                println!("removed {name}");
                removed += 1;
            }
            Cleaned::InUse(_) => {}
            Cleaned::Failed(err) => eprintln!("ipckit: {err}"),
        }
    }
    eprintln!("ipckit: {removed} stale object(s) removed");
    Ok(())
}
