//! One module per verb.

pub mod approve;
pub mod check;
pub mod exec;
pub mod export;
pub mod gc;
pub mod gc_logs;
pub mod history;
pub mod init;
pub mod logs;
pub mod reject;
pub mod restore;
pub mod resume;
pub mod run;
pub mod state;
pub mod status;

/// `wf notify [--test]`: list where alerts go (per owner), or send a test alert through each
/// channel; then deliver what waits in the outbox.
pub fn notify(ctx: &crate::context::Ctx, test: bool) -> crate::error::Result<i32> {
    let wf = ctx.workflow()?;
    if crate::alert::command::inside_alert() {
        return Err(crate::error::Error::Usage(format!(
            "wf notify was started by a notify command ({} is set); alerts are never sent from inside an alert, so nothing was sent",
            crate::alert::command::IN_ALERT_VAR
        )));
    }
    if test {
        return Ok(if crate::alert::test(&wf, &ctx.out) {
            0
        } else {
            1
        });
    }
    for line in crate::alert::routes(&wf) {
        ctx.out
            .event(crate::render::console::Tone::Plain, "●", &line);
    }
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    crate::alert::deliver(&wf, &mut store, &ctx.out)?;
    Ok(0)
}
