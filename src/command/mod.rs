//! One module per verb.

pub mod approve;
pub mod check;
pub mod exec;
pub mod export;
pub mod gate;
pub mod gc;
pub mod history;
pub mod html;
pub mod init;
pub mod logs;
pub mod own_files;
pub mod restore;
pub mod resume;
pub mod run;
pub mod state;
pub mod status;

/// `wf notify [--test]`: list the alert channels, or send a test alert through each; then deliver
/// what waits in the outbox.
pub fn notify(ctx: &crate::context::Ctx, test: bool) -> crate::error::Result<i32> {
    let wf = ctx.workflow()?;
    if test {
        return Ok(if crate::alert::test(&wf, &ctx.out) {
            0
        } else {
            1
        });
    }
    let channels = crate::alert::channels(wf.notify.as_ref());
    ctx.out.event(
        crate::console::Tone::Plain,
        "●",
        &if channels.is_empty() {
            "no [notify] channel is configured".to_string()
        } else {
            format!("alert channels: {}", channels.join(", "))
        },
    );
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    crate::alert::deliver(&wf, &mut store, &ctx.out)?;
    Ok(0)
}
