//! The power-cut filesystem's own semantics, through a real FUSE mount: what survives a cut and
//! what does not (file data vs. names, rename, create, unlink, truncate, O_APPEND, pwrite,
//! sync_file_range), locks, mmap, triggers, journaled names and the random-page option.
//! Needs /dev/fuse and root (as on this project's machines and CI).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use powercut::{Mount, Names, Options, Trigger};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Fields drop in order: the mount goes before the temporary directory holding it.
struct Rig {
    mount: Mount,
    backing: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Rig {
    fn new(options: Options) -> Result<Rig, Box<dyn std::error::Error>> {
        let tmp = tempfile::tempdir()?;
        let backing = tmp.path().join("backing");
        let mnt = tmp.path().join("mnt");
        fs::create_dir(&backing)?;
        fs::create_dir(&mnt)?;
        let mount = Mount::new(&backing, &mnt, options)
            .map_err(|e| format!("mounting needs /dev/fuse and root: {e}"))?;
        let backing = backing.canonicalize()?;
        Ok(Rig {
            mount,
            backing,
            _tmp: tmp,
        })
    }

    fn p(&self, rel: &str) -> PathBuf {
        self.mount.mountpoint().join(rel)
    }

    fn b(&self, rel: &str) -> PathBuf {
        self.backing.join(rel)
    }

    fn cut(&mut self) -> TestResult {
        self.mount.power_on()?;
        Ok(())
    }
}

fn fsync_dir(p: &Path) -> std::io::Result<()> {
    File::open(p)?.sync_all()
}

fn write_synced(p: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut f = File::create(p)?;
    f.write_all(bytes)?;
    f.sync_all()
}

#[test]
fn synced_data_survives_and_unsynced_data_does_not() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    write_synced(&r.p("a"), b"synced")?;
    fsync_dir(&r.p(""))?;
    // Appended but not synced: reads see it (page cache), the disk does not.
    let mut f = OpenOptions::new().append(true).open(r.p("a"))?;
    f.write_all(b" and not")?;
    drop(f);
    assert_eq!(fs::read(r.p("a"))?, b"synced and not");
    assert_eq!(fs::read(r.b("a"))?, b"synced");
    let report = r.mount.power_off();
    assert!(
        report.volatile.iter().any(|l| l.starts_with("/a:")),
        "{report:?}"
    );
    // Dead power: everything fails.
    assert!(fs::read(r.p("a")).is_err());
    r.cut()?;
    assert_eq!(fs::read(r.p("a"))?, b"synced");
    Ok(())
}

#[test]
fn fdatasync_persists_data_and_length() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    let f = File::create(r.p("a"))?;
    fsync_dir(&r.p(""))?;
    f.write_all_at(b"0123456789", 0)?;
    f.sync_data()?;
    f.write_all_at(b"xx", 20)?; // a hole and a longer length, not synced
    drop(f);
    r.cut()?;
    assert_eq!(fs::read(r.p("a"))?, b"0123456789");
    Ok(())
}

#[test]
fn a_created_file_without_a_directory_fsync_disappears() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    // Its data is synced, its name is not.
    write_synced(&r.p("new"), b"data")?;
    r.cut()?;
    assert!(!r.p("new").exists());
    // With the directory synced, it stays.
    write_synced(&r.p("new"), b"data")?;
    fsync_dir(&r.p(""))?;
    r.cut()?;
    assert_eq!(fs::read(r.p("new"))?, b"data");
    Ok(())
}

#[test]
fn a_name_synced_before_the_data_keeps_the_durable_data() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    fs::write(r.p("f"), b"never synced")?;
    fsync_dir(&r.p(""))?;
    r.cut()?;
    // The name is durable, the data is not: an empty file.
    assert_eq!(fs::read(r.p("f"))?, b"");
    Ok(())
}

#[test]
fn a_rename_without_a_directory_fsync_reverts() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    write_synced(&r.p("old"), b"1")?;
    write_synced(&r.p("target"), b"2")?;
    fsync_dir(&r.p(""))?;
    fs::rename(r.p("old"), r.p("target"))?;
    assert_eq!(fs::read(r.p("target"))?, b"1");
    assert!(!r.p("old").exists());
    r.cut()?;
    assert_eq!(fs::read(r.p("old"))?, b"1");
    assert_eq!(fs::read(r.p("target"))?, b"2");
    // tmp + fsync + rename + directory fsync: the new content under the old name.
    write_synced(&r.p("tmp"), b"3")?;
    fs::rename(r.p("tmp"), r.p("target"))?;
    fsync_dir(&r.p(""))?;
    r.cut()?;
    assert_eq!(fs::read(r.p("target"))?, b"3");
    assert!(!r.p("tmp").exists());
    Ok(())
}

#[test]
fn a_rename_across_directories_needs_the_destination_synced() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    fs::create_dir(r.p("tmp"))?;
    fs::create_dir(r.p("objects"))?;
    fsync_dir(&r.p(""))?;
    write_synced(&r.p("tmp/x"), b"obj")?;
    fs::rename(r.p("tmp/x"), r.p("objects/x"))?;
    fsync_dir(&r.p("objects"))?;
    r.cut()?;
    assert_eq!(fs::read(r.p("objects/x"))?, b"obj");
    assert!(!r.p("tmp/x").exists());
    Ok(())
}

#[test]
fn an_unlink_without_a_directory_fsync_reverts() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    write_synced(&r.p("f"), b"kept")?;
    fsync_dir(&r.p(""))?;
    fs::remove_file(r.p("f"))?;
    r.cut()?;
    assert_eq!(fs::read(r.p("f"))?, b"kept");
    fs::remove_file(r.p("f"))?;
    fsync_dir(&r.p(""))?;
    r.cut()?;
    assert!(!r.p("f").exists());
    Ok(())
}

#[test]
fn a_new_directory_needs_its_parent_synced() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    fs::create_dir_all(r.p("d/e"))?;
    write_synced(&r.p("d/e/f"), b"deep")?;
    fsync_dir(&r.p("d/e"))?;
    fsync_dir(&r.p("d"))?;
    // The root does not name d durably: all of it is gone (on a disk: in lost+found).
    r.cut()?;
    assert!(!r.p("d").exists());
    fs::create_dir_all(r.p("d/e"))?;
    write_synced(&r.p("d/e/f"), b"deep")?;
    fsync_dir(&r.p("d/e"))?;
    fsync_dir(&r.p("d"))?;
    fsync_dir(&r.p(""))?;
    r.cut()?;
    assert_eq!(fs::read(r.p("d/e/f"))?, b"deep");
    // rmdir of an empty directory reverts without the parent synced.
    fs::remove_file(r.p("d/e/f"))?;
    fs::remove_dir(r.p("d/e"))?;
    fsync_dir(&r.p("d"))?;
    fs::remove_dir(r.p("d"))?;
    r.cut()?;
    assert!(r.p("d").is_dir() && !r.p("d/e").exists());
    Ok(())
}

#[test]
fn truncate_pwrite_and_append() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(r.p("f"))?;
    fsync_dir(&r.p(""))?;
    f.write_all_at(&[b'a'; 10000], 0)?;
    f.sync_all()?;
    // Unsynced truncate reverts.
    f.set_len(10)?;
    assert_eq!(f.metadata()?.len(), 10);
    drop(f);
    r.cut()?;
    assert_eq!(fs::read(r.p("f"))?, vec![b'a'; 10000]);
    // Truncate down then extend with zeros, synced: no old bytes come back.
    let f = OpenOptions::new().write(true).open(r.p("f"))?;
    f.set_len(0)?;
    f.set_len(9000)?;
    f.write_all_at(b"z", 100)?;
    f.sync_data()?;
    drop(f);
    r.cut()?;
    let mut want = vec![0u8; 9000];
    want[100] = b'z';
    assert_eq!(fs::read(r.p("f"))?, want);
    // O_APPEND writes at the end, whatever the offset.
    let mut a = OpenOptions::new().append(true).open(r.p("f"))?;
    a.write_all(b"END")?;
    a.sync_all()?;
    drop(a);
    r.cut()?;
    let got = fs::read(r.p("f"))?;
    assert_eq!(got.len(), 9003);
    assert_eq!(&got[9000..], b"END");
    Ok(())
}

#[test]
fn sync_file_range_persists_nothing() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(r.p("log"))?;
    f.sync_all()?;
    fsync_dir(&r.p(""))?;
    f.write_all_at(b"written, sync_file_range'd", 0)?;
    let flags = libc::SYNC_FILE_RANGE_WAIT_BEFORE
        | libc::SYNC_FILE_RANGE_WRITE
        | libc::SYNC_FILE_RANGE_WAIT_AFTER;
    // SAFETY: a valid open descriptor.
    let rc = unsafe { libc::sync_file_range(f.as_raw_fd(), 0, 0, flags) };
    assert_eq!(rc, 0);
    drop(f);
    r.cut()?;
    assert_eq!(fs::read(r.p("log"))?, b"");
    Ok(())
}

#[test]
fn flock_and_ofd_locks_exclude() -> TestResult {
    let r = Rig::new(Options::default())?;
    let a = File::create(r.p("db"))?;
    let b = File::open(r.p("db"))?;
    // flock is per open file description: two opens conflict, as the index's lock needs.
    // SAFETY: valid descriptors.
    unsafe {
        assert_eq!(libc::flock(a.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB), 0);
        assert_eq!(
            libc::flock(b.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB),
            -1
        );
    }
    assert_eq!(
        std::io::Error::last_os_error().raw_os_error(),
        Some(libc::EWOULDBLOCK)
    );
    // std's File::try_lock (what wf's lock.rs uses) too.
    let c = OpenOptions::new().write(true).open(r.p("db"))?;
    assert!(c.try_lock().is_err());
    drop(a);
    assert!(c.try_lock().is_ok());
    // Open-file-description fcntl locks (F_OFD_SETLK) conflict the same way.
    let d = OpenOptions::new().read(true).write(true).open(r.p("db"))?;
    let e = OpenOptions::new().read(true).write(true).open(r.p("db"))?;
    let mut fl: libc::flock = unsafe { std::mem::zeroed() };
    fl.l_type = libc::F_WRLCK as libc::c_short;
    fl.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: valid descriptors and a valid flock struct.
    unsafe {
        assert_eq!(libc::fcntl(d.as_raw_fd(), libc::F_OFD_SETLK, &fl), 0);
        assert_eq!(libc::fcntl(e.as_raw_fd(), libc::F_OFD_SETLK, &fl), -1);
    }
    Ok(())
}

#[test]
fn mmap_writes_persist_with_msync_only() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(r.p("m"))?;
    f.set_len(8192)?;
    f.sync_all()?;
    fsync_dir(&r.p(""))?;
    // SAFETY: a shared mapping of 8 KiB of a file that long, unmapped below.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            f.as_raw_fd(),
            0,
        );
        assert_ne!(p, libc::MAP_FAILED);
        std::ptr::copy_nonoverlapping(b"mapped".as_ptr(), p as *mut u8, 6);
        assert_eq!(libc::msync(p, 8192, libc::MS_SYNC), 0);
        std::ptr::copy_nonoverlapping(b"LATER!".as_ptr(), (p as *mut u8).add(4096), 6);
        libc::munmap(p, 8192);
    }
    drop(f);
    r.cut()?;
    let got = fs::read(r.p("m"))?;
    assert_eq!(&got[..6], b"mapped");
    assert_eq!(&got[4096..4102], &[0u8; 6]);
    Ok(())
}

#[test]
fn a_trigger_cuts_right_after_the_nth_sync() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    r.mount.arm(Some(Trigger::Syncs(2)));
    write_synced(&r.p("one"), b"1")?; // sync 1
    fsync_dir(&r.p(""))?; // sync 2: durable, then the power goes
    assert!(r.mount.powered_off());
    assert!(write_synced(&r.p("two"), b"2").is_err());
    r.cut()?;
    assert_eq!(fs::read(r.p("one"))?, b"1");
    assert!(!r.p("two").exists());
    Ok(())
}

#[test]
fn journaled_names_commit_every_name_at_any_fsync() -> TestResult {
    let mut r = Rig::new(Options {
        names: Names::Journaled,
        ..Options::default()
    })?;
    fs::create_dir(r.p("dir"))?;
    write_synced(&r.p("dir/f"), b"data")?; // no directory fsync at all
    r.cut()?;
    assert_eq!(fs::read(r.p("dir/f"))?, b"data");
    Ok(())
}

#[test]
fn random_pages_keep_only_whole_pages() -> TestResult {
    let page = 4096usize;
    let (mut kept_any, mut dropped_any, mut grown, mut not_grown) = (false, false, false, false);
    for seed in 1..=12u64 {
        let mut r = Rig::new(Options {
            random_pages: Some(seed),
            ..Options::default()
        })?;
        let f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(r.p("f"))?;
        f.write_all_at(&vec![b'o'; 8 * page], 0)?;
        f.sync_all()?;
        fsync_dir(&r.p(""))?;
        // Overwrite 6 pages' worth, starting in the middle of page 1 (pages 1..=7 change), and
        // append two pages past the synced length.
        f.write_all_at(&vec![b'n'; 6 * page], (page + page / 2) as u64)?;
        f.write_all_at(&vec![b'n'; 2 * page], (8 * page) as u64)?;
        drop(f);
        let report = r.mount.power_off();
        r.cut()?;
        let got = fs::read(r.p("f"))?;
        assert!(
            got.len() == 8 * page || got.len() == 10 * page,
            "length {}",
            got.len()
        );
        grown |= got.len() == 10 * page;
        not_grown |= got.len() == 8 * page;
        assert!(got[..page + page / 2].iter().all(|b| *b == b'o'));
        for p in 1..got.len() / page {
            let chunk = &got[p * page..(p + 1) * page];
            let lo = if p == 1 { page / 2 } else { 0 };
            let hi = if p == 7 { page / 2 } else { page };
            let changed = &chunk[lo..hi];
            let old = if p < 8 { b'o' } else { 0 };
            let all_new = changed.iter().all(|b| *b == b'n');
            let all_old = changed.iter().all(|b| *b == old);
            assert!(all_new || all_old, "seed {seed}: page {p} is torn");
            kept_any |= all_new;
            dropped_any |= all_old;
        }
        assert_eq!(report.kept_pages + report.dropped_pages, 9);
    }
    assert!(
        kept_any && dropped_any,
        "the option writes some pages, not all"
    );
    assert!(
        grown && not_grown,
        "the option persists some growth, not all"
    );
    Ok(())
}

#[test]
fn hard_links_and_symlinks() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    write_synced(&r.p("a"), b"x")?;
    fs::hard_link(r.p("a"), r.p("b"))?;
    std::os::unix::fs::symlink("a", r.p("s"))?;
    fsync_dir(&r.p(""))?;
    let f = OpenOptions::new().write(true).open(r.p("b"))?;
    f.write_all_at(b"y", 0)?;
    f.sync_all()?;
    drop(f);
    r.cut()?;
    assert_eq!(fs::read(r.p("a"))?, b"y");
    assert_eq!(fs::read(r.p("b"))?, b"y");
    assert_eq!(fs::read_link(r.p("s"))?, PathBuf::from("a"));
    Ok(())
}

#[test]
fn the_control_file_cuts_the_power() -> TestResult {
    let mut r = Rig::new(Options::default())?;
    write_synced(&r.p("a"), b"1")?;
    fs::write(r.p(".powercut"), "cut\n")?;
    assert!(r.mount.powered_off());
    let status = fs::read_to_string(r.p(".powercut"))?;
    assert!(status.contains("power off"), "{status}");
    assert!(status.contains("lost /: unsynced names +a"), "{status}");
    r.cut()?;
    assert!(!r.p("a").exists());
    assert!(!r.b(".powercut").exists());
    Ok(())
}
