//! A private PostgreSQL starts, hands out databases that `psql` can use, runs next to
//! another one, and leaves nothing behind when dropped.

use std::path::Path;
use std::process::Command;

use offsite_testbed::{Error, Postgres};

/// Runs `sql` against `url` with the server's own `psql`; returns its unaligned output.
fn psql(pg: &Postgres, url: &str, sql: &str) -> String {
    let output = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
        .arg(url)
        .args(["-c", sql])
        .output()
        .expect("run psql");
    assert!(
        output.status.success(),
        "psql {url} -c {sql:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn psql_reaches_the_default_database() {
    let pg = Postgres::start().expect("start PostgreSQL");
    assert_eq!(pg.url(), format!("postgres://offsite@127.0.0.1:{}/offsite", pg.port()));
    assert_eq!(psql(&pg, &pg.url(), "select 1"), "1");
    assert_eq!(psql(&pg, &pg.url(), "select current_user, current_database()"), "offsite|offsite");
    assert_eq!(psql(&pg, &pg.url(), "show server_encoding"), "UTF8");
    assert_eq!(psql(&pg, &pg.url(), "show fsync"), "off");
    assert!(psql(&pg, &pg.url(), "select version()").starts_with("PostgreSQL "));
}

#[test]
fn created_databases_are_separate() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let one = pg.create_database("test_one").expect("create test_one");
    let two = pg.create_database("test_two").expect("create test_two");
    assert_eq!(one, format!("postgres://offsite@127.0.0.1:{}/test_one", pg.port()));
    assert_eq!(psql(&pg, &one, "select current_database()"), "test_one");

    psql(&pg, &one, "create table t (x int); insert into t values (42)");
    assert_eq!(psql(&pg, &one, "select x from t"), "42");
    assert_eq!(psql(&pg, &two, "select count(*) from pg_tables where tablename = 't'"), "0");

    let again = pg.create_database("test_one").expect_err("test_one exists already");
    assert!(again.to_string().contains("already exists"), "{again}");
    let bad = pg.create_database("x; drop database offsite").expect_err("not a plain name");
    assert!(matches!(bad, Error::InvalidName { .. }), "{bad:?}");
}

#[test]
fn two_servers_run_at_once() {
    let (a, b) = std::thread::scope(|scope| {
        let a = scope.spawn(Postgres::start);
        let b = scope.spawn(Postgres::start);
        (a.join().expect("thread a").expect("start a"), b.join().expect("thread b").expect("start b"))
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.socket_dir(), b.socket_dir());
    psql(&a, &a.url(), "create table only_in_a (x int)");
    assert_eq!(psql(&a, &a.url(), "select count(*) from pg_tables where tablename = 'only_in_a'"), "1");
    assert_eq!(psql(&b, &b.url(), "select count(*) from pg_tables where tablename = 'only_in_a'"), "0");
}

#[test]
fn server_stops_on_drop_and_leaves_nothing_behind() {
    let pg = Postgres::start().expect("start PostgreSQL");
    let port = pg.port();
    let pid = pg.pid();
    let dir = pg.socket_dir().to_path_buf();
    // An open session, so there is a backend process to clean up too.
    let mut session = Command::new(pg.bin_dir().join("psql"))
        .args(["-X", "-q"])
        .arg(pg.url())
        .args(["-c", "select pg_sleep(60)"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start a psql session");
    let sleeping = "select count(*) from pg_stat_activity where query = 'select pg_sleep(60)'";
    while psql(&pg, &pg.url(), sleeping) != "1" {
        assert!(session.try_wait().expect("check on psql").is_none(), "the psql session ended early");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let postmaster = (pid, start_time(pid).expect("postmaster's start time"));
    let children = children_of(pid);
    assert!(children.len() > 1, "too few server processes: {children:?}");
    drop(pg);
    let _ = session.kill();
    let _ = session.wait();

    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err(), "port {port} still answers after drop");
    assert!(!is_alive(&postmaster), "postmaster {pid} alive after drop");
    let left: Vec<_> = children.iter().filter(|process| is_alive(process)).collect();
    assert!(left.is_empty(), "server processes left after drop: {left:?}");
    assert!(!dir.exists(), "{} left after drop", dir.display());
}

#[test]
fn missing_postgres_is_a_clear_error() {
    let empty = tempfile::tempdir().expect("temp dir");
    let err = Postgres::start_with_bin(empty.path()).expect_err("no PostgreSQL installed there");
    assert!(matches!(err, Error::MissingDependency { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("initdb"), "{message}");
    assert!(message.contains("run scripts/test (it installs test dependencies)"), "{message}");
}

/// The children of `parent` as (pid, start time), so that a pid reused later is not
/// taken for one of them.
fn children_of(parent: u32) -> Vec<(u32, u64)> {
    let entries = std::fs::read_dir("/proc").expect("list /proc");
    entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let fields = stat_fields(pid)?;
            (fields.get(1)?.parse::<u32>().ok()? == parent).then_some((pid, fields.get(19)?.parse().ok()?))
        })
        .collect()
}

/// Whether process `pid`, started at `start_time`, still exists (zombies included).
fn is_alive(&(pid, start_time): &(u32, u64)) -> bool {
    self::start_time(pid) == Some(start_time)
}

fn start_time(pid: u32) -> Option<u64> {
    stat_fields(pid)?.get(19)?.parse().ok()
}

/// The fields of `/proc/<pid>/stat` after "pid (comm)": state, ppid, pgrp, ...
/// (so field N of proc(5) is at index N - 3).
fn stat_fields(pid: u32) -> Option<Vec<String>> {
    let stat = std::fs::read_to_string(Path::new("/proc").join(pid.to_string()).join("stat")).ok()?;
    // comm may hold spaces, so split after its ')'.
    Some(stat[stat.rfind(')')? + 1..].split_whitespace().map(str::to_string).collect())
}
