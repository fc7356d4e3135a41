//! Each kind of damage, served or refused by readers and writers alike, and the small
//! state's own checks (an intact state, a damaged frame named, a torn last frame cut).

use super::*;

/// Tests for one kind. `=> 0`: served (readers answer as before, writers keep working);
/// `=> CODE, [FRAGMENTS]`: refused by readers and writers, and nothing outside `journal/` changes.
/// `bug = "…"` marks every test of the kind ignored, as showing that wf bug.
macro_rules! kind {
    (
        $name:ident, $damage:expr => 0 $(, bug = $bug:literal)?
    ) => {
        mod $name {
            use super::*;

            #[test]
            $(#[ignore = $bug])?
            fn readers_answer_as_before() {
                assert_served($damage);
            }

            #[test]
            $(#[ignore = $bug])?
            fn writers_keep_working() {
                assert_writers_work($damage);
            }
        }
    };
    (
        $name:ident, $damage:expr => $code:expr, $frags:expr $(, bug = $bug:literal)?
    ) => {
        mod $name {
            use super::*;

            #[test]
            $(#[ignore = $bug])?
            fn readers_refuse() {
                assert_refused($damage, &READERS, $code, &$frags);
            }

            #[test]
            $(#[ignore = $bug])?
            fn writers_refuse() {
                assert_refused($damage, &WRITERS, $code, &$frags);
            }

            #[test]
            $(#[ignore = $bug])?
            fn left_unchanged() {
                assert_unchanged($damage);
            }
        }
    };
}

// The record log. An open reads it only from the index's `m:logpos` on, so garbage before that point
// is found only when the index must be rebuilt from the log.
// The records live in the log (the index holds only where they are): garbage there is refused.
kind!(
    log_is_garbage_before_the_index_position,
    log_garbage => 5,
    ["journal.log", "damaged"]
);
kind!(
    log_is_garbage_and_the_index_is_gone,
    log_garbage_no_index => 5,
    ["journal.log", "damaged"]
);
kind!(
    log_is_cut_in_half,
    log_half => 5,
    ["journal.log is shorter", "than the journal has applied", "nothing was changed"]
);
kind!(
    log_is_empty,
    log_empty => 5,
    ["journal.log is shorter (0 bytes)", "nothing was changed"]
);
kind!(
    log_lost_its_last_5_bytes,
    log_cut_5 => 5,
    ["journal.log is shorter", "than the journal has applied"]
);
kind!(
    log_is_missing,
    log_missing => 5,
    ["journal.log is missing", "nothing was changed"]
);
kind!(
    log_has_a_flipped_byte_and_the_index_is_gone,
    log_frame_flipped_no_index => 5,
    ["journal.log is damaged at byte", "nothing was changed"]
);
kind!(
    log_has_a_flipped_length_and_the_index_is_gone,
    log_length_flipped_no_index => 5,
    ["journal.log is damaged at byte"]
);
kind!(log_ends_in_a_torn_frame, log_torn_frame => 0);
// Damage in the middle of the log with the index intact: the log changed since wf last
// verified it, so it is checked whole before anything is answered or appended.
kind!(
    log_has_a_flipped_byte_in_its_middle,
    log_frame_flipped => 5,
    ["journal.log is damaged at byte", "nothing was changed"]
);
kind!(
    log_has_a_flipped_crc_in_its_middle,
    log_crc_flipped => 5,
    ["journal.log is damaged at byte"]
);
kind!(
    log_has_a_damaged_first_frame,
    log_first_magic_flipped => 5,
    ["journal.log is damaged at byte 0"]
);
kind!(
    log_damaged_with_its_times_put_back,
    log_frame_flipped_times_kept => 5,
    ["journal.log is damaged at byte"]
);
kind!(
    log_has_neither_version_nor_index,
    log_without_version_or_index => 5,
    [".wf"]
);
// VERSION.
kind!(
    version_is_garbage,
    version_garbage => 5,
    ["VERSION is damaged", "nothing was changed"]
);
kind!(
    version_is_newer,
    version_newer => 5,
    [
        "newer wf (state schema 99; this wf reads up to 1)",
        "upgrade wf"
    ]
);
kind!(
    version_is_not_utf8,
    version_not_utf8 => 5,
    ["VERSION is damaged", "nothing was changed"]
);
// The index (`journal/`).
kind!(journal_is_missing, journal_missing => 0);
kind!(journal_is_empty, journal_emptied => 0);
kind!(index_log_has_a_flipped_byte_in_its_middle, index_log_middle_flipped => 0);
kind!(
    journal_is_a_regular_file,
    journal_is_a_file => 5,
    ["journal is not a directory", "nothing was changed"]
);
// The index cannot be opened: a writer sets it aside (kept) and rebuilds it from the record log;
// a reader rebuilds it in memory and writes nothing.
kind!(index_log_is_garbage, index_log_garbage => 0);
kind!(every_index_file_is_garbage, index_all_garbage => 0);
// Not wf's.
kind!(
    an_index_without_version,
    index_without_version => 5,
    ["is not a wf state directory"]
);
kind!(
    random_files_without_version,
    foreign_files => 5,
    ["not a wf state directory"]
);

#[test]
fn an_intact_small_state_is_read_by_every_command() {
    let t = small_state();
    for args in READERS.iter().chain(WRITERS.iter()) {
        t.ok(args, 0);
    }
}

/// The refusal of a log damaged in its middle names the damaged frame's offset.
#[test]
fn a_damaged_frame_is_named_by_its_offset() {
    let t = small_state();
    let (at, _) = middle_frame(&t.state());
    log_frame_flipped_no_index(&t.state());
    let out = t.ok(&["--json", "history"], 5);
    assert!(
        out.stderr
            .contains(&format!("journal.log is damaged at byte {at};")),
        "{}",
        out.show()
    );
}

/// A torn last frame: readers leave it where it is; the next writer cuts it off before it
/// appends, and the state reads on.
#[test]
fn a_writer_cuts_a_torn_last_frame_off() {
    let t = small_state();
    let end = read_log(&t.state()).len();
    log_torn_frame(&t.state());
    let torn = read_log(&t.state());
    t.ok(&["--json", "history"], 0);
    assert_eq!(
        read_log(&t.state()),
        torn,
        "a reader changed the record log"
    );
    t.ok(&["run"], 0);
    let log = read_log(&t.state());
    assert_eq!(log[..end], torn[..end]);
    assert!(
        !log[end..].starts_with(&torn[end..]),
        "the torn frame is still there"
    );
    let (frames, whole) = frames(&log);
    assert_eq!(whole, log.len(), "the log does not end in whole frames");
    assert!(frames.iter().any(|(at, _)| *at == end), "no frame at {end}");
    let status = t.ok(&["status"], 0);
    assert!(status.stdout.contains("run 3"), "{}", status.show());
    let runs = t.ok(&["--json", "history"], 0).stdout;
    assert_eq!(runs.lines().count(), 3, "{runs}");
}
