//! What a run's time was spent on, from its journal: the wall time since it started, the time at
//! least one task was running, and the time at least one task waited at a manual gate. One
//! definition for the terminal, JSON and the HTML page (docs/json.md).

use chrono::{DateTime, Utc};
use wf_state::{Entry, Record, RunState, TaskState};

/// A run's durations in milliseconds. `running` and `waiting` are unions of intervals (two tasks
/// running at once count once); the rest of `wall` is time between tasks, or when no wf was
/// running the run (after a crash, before `wf resume`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Durations {
    pub wall_ms: i64,
    pub running_ms: i64,
    pub waiting_ms: i64,
    /// The run has ended (`wall_ms` is final); otherwise the figures are "so far", up to `now`.
    pub ended: bool,
}

/// The durations of one run from its records (in journal order); an unfinished run is measured up
/// to `now`.
pub fn of(records: &[Record], now: DateTime<Utc>) -> Durations {
    let Some(first) = records.first() else {
        return Durations::default();
    };
    // Ended: the last word on the run is its end in a final state (alerts, prunes may follow). A
    // run that stopped waiting at a gate, or failed and was resumed since, has not ended.
    let end = records
        .iter()
        .rev()
        .find_map(|r| match &r.entry {
            Entry::RunEnded { state, .. } => Some(
                matches!(
                    state,
                    RunState::Done | RunState::Failed | RunState::Superseded
                )
                .then_some(r.at),
            ),
            Entry::Superseded { .. } => Some(Some(r.at)),
            Entry::RunResumed { .. } => Some(None),
            _ => None,
        })
        .flatten();
    let stop = end.unwrap_or(now).max(first.at);
    // Each task's current state and since when; the count of tasks running and waiting.
    let mut state: std::collections::HashMap<&str, TaskState> = std::collections::HashMap::new();
    let (mut running, mut waiting) = (0u32, 0u32);
    let (mut running_ms, mut waiting_ms) = (0i64, 0i64);
    let mut last = first.at;
    let ms = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds().max(0);
    for r in records {
        let at = r.at.min(stop).max(last);
        if running > 0 {
            running_ms += ms(last, at);
        }
        if waiting > 0 {
            waiting_ms += ms(last, at);
        }
        last = at;
        if let Entry::Transition { task, to, .. } = &r.entry {
            let before = state.insert(task.as_str(), *to);
            for (s, delta) in [(before, -1i64), (Some(*to), 1)] {
                let counter = match s {
                    Some(TaskState::Running) => &mut running,
                    Some(TaskState::Waiting) => &mut waiting,
                    _ => continue,
                };
                *counter = counter.saturating_add_signed(delta as i32);
            }
        }
    }
    if running > 0 {
        running_ms += ms(last, stop);
    }
    if waiting > 0 {
        waiting_ms += ms(last, stop);
    }
    Durations {
        wall_ms: ms(first.at, stop),
        running_ms,
        waiting_ms,
        ended: end.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wf_state::Reason;

    fn at(ms: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_millis(1_700_000_000_000 + ms).unwrap_or_default()
    }

    fn rec(seq: u64, ms: i64, entry: Entry) -> Record {
        Record {
            seq,
            run: 1,
            at: at(ms),
            entry,
        }
    }

    fn go(task: &str, from: TaskState, to: TaskState) -> Entry {
        Entry::Transition {
            task: task.to_string(),
            attempt: 1,
            from,
            to,
            reason: Reason::Started,
            exit_code: None,
        }
    }

    #[test]
    fn a_gate_wait_is_not_running_time_and_parallel_tasks_count_once() {
        use TaskState::*;
        let records = vec![
            rec(2, 0, go("a", Pending, Running)),
            rec(3, 0, go("b", Pending, Running)),
            rec(4, 1_000, go("a", Running, Done)),
            rec(5, 2_000, go("b", Running, Done)),
            rec(6, 2_000, go("gate", Pending, Waiting)),
            rec(7, 3_602_000, go("gate", Waiting, Running)),
            rec(8, 3_603_000, go("gate", Running, Done)),
            rec(
                9,
                3_603_500,
                Entry::RunEnded {
                    state: RunState::Done,
                    reason: "all tasks done".into(),
                },
            ),
        ];
        let d = of(&records, at(9_999_999));
        assert_eq!(d.wall_ms, 3_603_500);
        assert_eq!(d.running_ms, 3_000);
        assert_eq!(d.waiting_ms, 3_600_000);
        assert!(d.ended);
    }

    #[test]
    fn an_unfinished_run_is_measured_up_to_now() {
        use TaskState::*;
        let records = vec![
            rec(1, 0, go("a", Pending, Running)),
            rec(2, 500, go("a", Running, Done)),
            rec(3, 500, go("gate", Pending, Waiting)),
            rec(
                4,
                600,
                Entry::RunEnded {
                    state: RunState::Waiting,
                    reason: "waiting".into(),
                },
            ),
        ];
        let d = of(&records, at(10_500));
        assert_eq!(
            (d.wall_ms, d.running_ms, d.waiting_ms, d.ended),
            (10_500, 500, 10_000, false)
        );
        assert_eq!(of(&[], at(0)), Durations::default());
    }
}
