//! Manual gates besides approval: `wf reject [RUN] TASK --note TEXT`, and `approval_timeout`, which
//! fails a gate left waiting too long. There is no daemon: every `wf` that writes the state (run,
//! resume, approve, reject) first fails the gates whose time ran out, journaled with who (`wf`),
//! when and why.

use chrono::Utc;
use wf_state::{Entry, Reason, RunId, RunState, Store, TaskState};

use crate::cli::RejectArgs;
use crate::command::approve::waiting_task;
use crate::console::{self, Tone};
use crate::context::{self, Ctx};
use crate::error::{code, Result};
use crate::workflow::Workflow;

/// The entries that fail a waiting task, and end its run when nothing else waits in it.
fn rejection(
    store: &mut Store,
    run: RunId,
    task: &str,
    user: &str,
    note: &str,
) -> Result<Vec<Entry>> {
    let Some(snap) = store.view(run)? else {
        return Ok(Vec::new());
    };
    let attempts = snap.task(task).map_or(0, |t| t.attempts);
    let others_wait = snap
        .tasks
        .iter()
        .any(|t| t.name != task && t.state == TaskState::Waiting);
    let mut entries = vec![
        Entry::Rejection {
            task: task.to_string(),
            user: user.to_string(),
            note: note.to_string(),
        },
        Entry::Transition {
            task: task.to_string(),
            attempt: attempts,
            from: TaskState::Waiting,
            to: TaskState::Failed,
            reason: Reason::Rejected(note.to_string()),
            exit_code: None,
        },
    ];
    if !others_wait && snap.run.state != RunState::Failed {
        entries.push(Entry::RunEnded {
            state: RunState::Failed,
            reason: format!("{task} rejected by {user}: {note}"),
        });
    }
    Ok(entries)
}

pub fn reject(ctx: &Ctx, args: &RejectArgs) -> Result<i32> {
    reject_as(ctx, args, &context::user())
}

/// `wf reject` as `user` (`wf serve` passes the reviewer's name).
pub fn reject_as(ctx: &Ctx, args: &RejectArgs, user: &str) -> Result<i32> {
    let _lock = ctx.lock()?;
    let mut store = ctx.open_write()?;
    let wf = ctx.workflow()?;
    crate::command::exec::settle(ctx, &wf, &mut store)?;
    let (snap, t) = waiting_task(&mut store, "reject", &args.target)?;
    let user = user.to_string();
    let mut entries = rejection(&mut store, snap.run.id, &t.name, &user, &args.note)?;
    entries.push(crate::alert::raise(
        &wf,
        Some(&t.name),
        t.attempts,
        format!("rejected by {user}: {}", args.note),
        None,
        &[],
    ));
    store.commit(snap.run.id, entries)?;
    crate::alert::deliver(&wf, &mut store, &ctx.out)?;
    ctx.out.event(
        Tone::Bad,
        "✗",
        &format!(
            "{} of run {} rejected by {user}: {}",
            t.name, snap.run.id, args.note
        ),
    );
    Ok(code::TASK_FAILED)
}

/// Fail every gate that has waited longer than its task's `approval_timeout`.
pub fn expire(ctx: &Ctx, wf: &Workflow, store: &mut Store) -> Result<usize> {
    if !wf.tasks.iter().any(|t| t.approval_timeout.is_some()) {
        return Ok(0);
    }
    let now = Utc::now();
    let mut failed = 0;
    for run in store.active_runs()? {
        if run.state != RunState::Waiting {
            continue;
        }
        // When each task started waiting: its last `→ waiting` transition.
        let mut since = std::collections::HashMap::new();
        for r in store.records(run.id)? {
            if let Entry::Transition {
                task,
                to: TaskState::Waiting,
                ..
            } = &r.entry
            {
                since.insert(task.clone(), r.at);
            }
        }
        let waiting: Vec<String> = store
            .view(run.id)?
            .map(|s| {
                s.tasks
                    .iter()
                    .filter(|t| t.state == TaskState::Waiting)
                    .map(|t| t.name.clone())
                    .collect()
            })
            .unwrap_or_default();
        for task in waiting {
            let Some(limit) = wf.task(&task).and_then(|t| t.approval_timeout) else {
                continue;
            };
            let Some(at) = since.get(&task) else { continue };
            let expired = chrono::Duration::from_std(limit)
                .ok()
                .and_then(|d| at.checked_add_signed(d))
                .is_some_and(|deadline| deadline <= now);
            if !expired {
                continue;
            }
            let note = format!(
                "no approval within its approval_timeout of {}",
                console::policy(limit)
            );
            let mut entries = rejection(store, run.id, &task, "wf", &note)?;
            let attempts = store
                .view(run.id)?
                .and_then(|s| s.task(&task).map(|t| t.attempts))
                .unwrap_or(0);
            entries.push(crate::alert::raise(
                wf,
                Some(&task),
                attempts,
                note.clone(),
                None,
                &[],
            ));
            store.commit(run.id, entries)?;
            ctx.out
                .alert(&format!("wf: {task} of run {} failed: {note}", run.id));
            failed += 1;
        }
    }
    Ok(failed)
}
