//! `wf export --to TARGET` (the same workflow for another scheduler) and `wf graph` (the DAG).

use std::io::Write;

use crate::cli::{ExportArgs, GraphArgs};
use crate::context::Ctx;
use crate::error::{Error, Result};
use crate::export::{self, Options};
use crate::render::console::Tone;

pub fn export(ctx: &Ctx, args: &ExportArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    let target = args.to;
    let mut opts = Options::default();
    if let Some(i) = &args.image {
        opts.image = i.clone();
    }
    if let Some(b) = &args.wf_bin {
        opts.wf_bin = b.clone();
    }
    opts.workdir = args.workdir.clone();
    let files = export::export(&wf, target, &opts)
        .map_err(|e| Error::Usage(format!("cannot export to {target}: {e}")))?;
    match &args.out {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(Error::io("creating the output directory", dir))?;
            for (name, text) in &files {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(Error::io("writing an export", &path))?;
                ctx.out
                    .event(Tone::Good, "●", &format!("wrote {}", path.display()));
            }
        }
        None => {
            let mut out = std::io::stdout().lock();
            let many = files.len() > 1;
            for (name, text) in &files {
                if many {
                    let _ = writeln!(out, "# ---- {name} ----");
                }
                out.write_all(text.as_bytes())
                    .map_err(Error::io("writing the export", "stdout"))?;
            }
        }
    }
    Ok(0)
}

pub fn graph(ctx: &Ctx, args: &GraphArgs) -> Result<i32> {
    let wf = ctx.workflow()?;
    let text = if args.dot {
        export::graph_dot(&wf)
    } else {
        export::graph_text(&wf)
    };
    std::io::stdout()
        .lock()
        .write_all(text.as_bytes())
        .map_err(Error::io("writing the graph", "stdout"))?;
    Ok(0)
}
