//! Running the service as an operator does: where its settings come from (flag >
//! environment > file), that docs/CONFIG.md names every flag, structured logs,
//! shell completions and man pages, and that the files in packaging/ (systemd
//! units, server.toml) are accepted by the binary they start.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{offsite, temp, Background};

fn repo_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").join(relative)
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The value printed after `label` (e.g. `URL:`) once the service has started.
fn printed(output: &str, label: &str) -> Option<String> {
    output
        .lines()
        .find(|l| l.trim_start().starts_with(label))
        .and_then(|l| l.trim_start().strip_prefix(label))
        .map(|v| v.trim().to_string())
}

/// Waits until the service printed its URL; returns the URL.
fn wait_started(process: &mut Background) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let output = process.output();
        if let Some(url) = printed(&output, "URL:") {
            return url;
        }
        assert!(process.try_wait().is_none(), "the service ended before it started:\n{output}");
        assert!(Instant::now() < deadline, "the service did not start in 60 s:\n{output}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGTERM and asserts a clean exit, as systemd and Docker stop it.
fn terminate(mut process: Background) {
    let pid = rustix::process::Pid::from_raw(process.id() as i32).expect("a pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("send SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(45);
    let status = loop {
        if let Some(status) = process.try_wait() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit 45 s after SIGTERM:\n{}", process.output());
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(status.success(), "exited with {status} on SIGTERM:\n{}", process.output());
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("no port in {url}"))
}

#[test]
fn a_flag_beats_the_environment_which_beats_the_config_file() {
    let scratch = temp();
    let root = scratch.path();
    let (file_port, env_port, flag_port) = (free_port(), free_port(), free_port());
    let data_dir = root.join("data-from-file");
    let config = root.join("server.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:{file_port}\"\ndata_dir = \"{}\"\n", data_dir.display()))
        .unwrap();
    let config = config.to_str().unwrap();

    // The file alone: its port and its data folder.
    let mut only_file = offsite(["server", "run", "--config", config]).spawn(&root.join("file.log"));
    assert_eq!(port_of(&wait_started(&mut only_file)), file_port, "{}", only_file.output());
    let credentials = printed(&only_file.output(), "operator credentials:").unwrap();
    assert!(Path::new(&credentials).starts_with(&data_dir), "{credentials} is not in the file's data_dir");
    terminate(only_file);

    // OFFSITE_LISTEN over the file, OFFSITE_CONFIG as good as --config.
    let mut env_over_file = offsite(["server", "run"])
        .env("OFFSITE_CONFIG", config)
        .env("OFFSITE_LISTEN", format!("127.0.0.1:{env_port}"))
        .spawn(&root.join("env.log"));
    assert_eq!(port_of(&wait_started(&mut env_over_file)), env_port, "{}", env_over_file.output());
    terminate(env_over_file);

    // --listen over both.
    let listen = format!("127.0.0.1:{flag_port}");
    let mut flag_over_env = offsite(["server", "run", "--config", config, "--listen", &listen])
        .env("OFFSITE_LISTEN", format!("127.0.0.1:{env_port}"))
        .spawn(&root.join("flag.log"));
    assert_eq!(port_of(&wait_started(&mut flag_over_env)), flag_port, "{}", flag_over_env.output());
    terminate(flag_over_env);
}

#[test]
fn an_unknown_key_in_the_config_file_is_named_with_the_file() {
    let scratch = temp();
    let config = scratch.path().join("server.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nlisten_port = 8443\n").unwrap();
    offsite(["server", "run", "--config", config.to_str().unwrap()])
        .run()
        .code(1)
        .stderr_has(config.to_str().unwrap())
        .stderr_has("listen_port");
}

#[test]
fn config_md_names_every_flag_and_variable_of_server_run() {
    let help = offsite(["server", "run", "--help"]).run().ok().stdout;
    let doc = read(&repo_file("docs/CONFIG.md"));
    let words = |prefix: &str| -> Vec<String> {
        help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .filter(|w| w.starts_with(prefix) && w.len() > prefix.len())
            .map(str::to_string)
            .collect()
    };
    let flags: Vec<String> = words("--").into_iter().filter(|f| f != "--help").collect();
    assert!(flags.len() >= 8 && flags.iter().any(|f| f == "--public-url"), "flags read from --help: {flags:?}");
    for flag in &flags {
        assert!(doc.contains(&format!("`{flag}")), "docs/CONFIG.md does not describe {flag}");
        let key = flag.trim_start_matches("--").replace('-', "_");
        if key != "config" && key != "verbose" {
            assert!(doc.contains(&format!("`{key}`")), "docs/CONFIG.md does not name the TOML key {key}");
        }
    }
    let variables = words("OFFSITE_");
    assert!(variables.len() >= 8, "variables read from --help: {variables:?}");
    for variable in variables {
        assert!(doc.contains(&format!("`{variable}`")), "docs/CONFIG.md does not name {variable}");
    }
}

#[test]
fn config_md_names_every_flag_and_variable_of_server_check() {
    let help = offsite(["server", "check", "--help"]).run().ok().stdout;
    let doc = read(&repo_file("docs/CONFIG.md"));
    let section = doc.split("## Checking the service: `offsite server check`").nth(1).expect("a server check section");
    let section = section.split("\n## ").next().unwrap_or_default();
    let words = |prefix: &str| -> Vec<String> {
        help.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_'))
            .filter(|w| w.starts_with(prefix) && w.len() > prefix.len())
            .map(str::to_string)
            .collect()
    };
    let flags: Vec<String> = words("--").into_iter().filter(|f| f != "--help").collect();
    assert!(flags.iter().any(|f| f == "--read-data") && flags.iter().any(|f| f == "--data-dir"), "{flags:?}");
    for flag in &flags {
        assert!(
            section.contains(&format!("`{flag}")),
            "docs/CONFIG.md's server check section does not describe {flag}"
        );
    }
    for variable in words("OFFSITE_") {
        assert!(
            section.contains(&format!("`{variable}`")),
            "docs/CONFIG.md's server check section does not name {variable}"
        );
    }
}

/// The service's log lines, as written to a pipe.
fn service_log(root: &Path, name: &str, format: Option<&str>) -> (String, String) {
    let data_dir = root.join(name);
    let mut cli = offsite(["server", "run", "--listen", "127.0.0.1:0", "--data-dir", data_dir.to_str().unwrap()])
        .env("RUST_LOG", "info");
    if let Some(format) = format {
        cli = cli.env("OFFSITE_LOG_FORMAT", format);
    }
    let mut process = cli.spawn(&root.join(format!("{name}.log")));
    let url = wait_started(&mut process);
    let output = process.output();
    terminate(process);
    (url, output)
}

#[test]
fn the_service_logs_json_lines_to_a_pipe_unless_told_text() {
    let scratch = temp();
    let (url, output) = service_log(scratch.path(), "default", None);
    let events: Vec<serde_json::Value> = output.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    let listening = events
        .iter()
        .find(|e| e["fields"]["message"] == "offsite service listening")
        .unwrap_or_else(|| panic!("no JSON line says the service listens:\n{output}"));
    assert_eq!(listening["fields"]["url"], url.as_str(), "{listening}");
    assert_eq!(listening["level"], "INFO", "{listening}");

    let (_, output) = service_log(scratch.path(), "text", Some("text"));
    assert!(output.contains("offsite service listening"), "{output}");
    let json_lines: Vec<&str> =
        output.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok_and(|v| v.is_object())).collect();
    assert!(json_lines.is_empty(), "OFFSITE_LOG_FORMAT=text still wrote JSON: {json_lines:?}");
}

#[test]
fn a_log_format_other_than_json_or_text_is_refused() {
    offsite(["completions", "bash"]).env("OFFSITE_LOG_FORMAT", "xml").run().code(2).stderr_has("json or text");
}

#[test]
fn bash_completion_knows_the_commands_and_is_valid_bash() {
    let script = offsite(["completions", "bash"]).run().ok().stdout;
    for command in ["diskprep", "datacenter", "server", "completions"] {
        assert!(script.contains(command), "the bash completion does not mention {command}");
    }
    let scratch = temp();
    let file = scratch.path().join("offsite.bash");
    std::fs::write(&file, &script).unwrap();
    if let Ok(check) = std::process::Command::new("bash").arg("-n").arg(&file).output() {
        assert!(check.status.success(), "bash -n refuses the script: {}", String::from_utf8_lossy(&check.stderr));
    }
    let zsh = offsite(["completions", "zsh"]).run().ok().stdout;
    assert!(zsh.starts_with("#compdef offsite"), "{}", &zsh[..zsh.len().min(200)]);
    offsite(["completions", "tcsh"]).run().code(2);
}

#[test]
fn man_writes_a_roff_page_per_command_and_subcommand() {
    let scratch = temp();
    let out = scratch.path().join("man1");
    offsite(["man", "--out", out.to_str().unwrap()]).run().ok();
    for name in ["offsite", "offsite-diskprep", "offsite-server", "offsite-server-run", "offsite-datacenter-ingest"] {
        let page = read(&out.join(format!("{name}.1")));
        assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{name}.1 is not a roff page:\n{page}");
        assert!(page.contains(&format!(".TH {name}")), "{name}.1 is not titled {name}");
    }
    let run_page = read(&out.join("offsite-server-run.1"));
    assert!(run_page.contains("listen") && run_page.contains("OFFSITE_DATA_DIR"), "{run_page}");
    assert!(!out.join("offsite-help.1").exists(), "clap's help subcommand got a page");

    if Path::new("/usr/bin/man").exists() {
        let shown = std::process::Command::new("man")
            .args(["-l", out.join("offsite-server-run.1").to_str().unwrap()])
            .env("MANPAGER", "cat")
            .env("MANWIDTH", "100")
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&shown.stdout);
        assert!(shown.status.success() && text.contains("--listen"), "man -l shows:\n{text}");
    }
}

/// The arguments of a unit's `ExecStart=` line, after the program.
fn exec_start(unit: &str) -> Vec<String> {
    let text = read(&repo_file(&format!("packaging/{unit}")));
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix("ExecStart="))
        .unwrap_or_else(|| panic!("{unit} has no ExecStart= line"));
    let mut words = line.split_whitespace().map(str::to_string);
    assert_eq!(words.next().as_deref(), Some("/usr/bin/offsite"), "{unit} starts {line}");
    words.collect()
}

#[test]
fn the_server_unit_starts_the_service_with_packaging_server_toml() {
    let scratch = temp();
    let root = scratch.path();
    let mut args = exec_start("offsite-server.service");
    // The unit's command line, with the shipped file in place of /etc/offsite/server.toml.
    let config = args.iter().position(|a| a == "--config").expect("the unit passes --config");
    assert_eq!(args[config + 1], "/etc/offsite/server.toml");
    args[config + 1] = repo_file("packaging/server.toml").display().to_string();
    let data_dir = root.join("server");
    args.extend(["--data-dir".into(), data_dir.display().to_string(), "--listen".into(), "127.0.0.1:0".into()]);
    let mut process = offsite(&args).spawn(&root.join("unit.log"));
    let url = wait_started(&mut process);
    assert_eq!(url, "https://backup.example.com:8443", "the file's public_url");
    let database = printed(&process.output(), "database:").unwrap();
    assert!(database.contains(data_dir.to_str().unwrap()), "{database}");
    terminate(process);
}

#[test]
fn the_agent_unit_runs_the_daemon_command() {
    let scratch = temp();
    let mut args = exec_start("offsite-agent.service");
    assert_eq!(args, ["agent", "run"]);
    args.extend(["--agent-home".into(), scratch.path().display().to_string()]);
    // Unregistered: the daemon itself answers (exit 15), so the command line parsed.
    offsite(&args).run().code(15).stderr_has("not registered");
}

#[test]
fn systemd_accepts_the_units() {
    let Ok(version) = std::process::Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze is not installed: not verifying the units");
        return;
    };
    assert!(version.status.success());
    let scratch = temp();
    for unit in ["offsite-server.service", "offsite-agent.service"] {
        // verify wants ExecStart's program to exist: point it at the binary under test.
        let text =
            read(&repo_file(&format!("packaging/{unit}"))).replace("/usr/bin/offsite", env!("CARGO_BIN_EXE_offsite"));
        let path = scratch.path().join(unit);
        std::fs::write(&path, text).unwrap();
        let verify =
            std::process::Command::new("systemd-analyze").args(["verify", "--man=no"]).arg(&path).output().unwrap();
        let said = format!("{}{}", String::from_utf8_lossy(&verify.stdout), String::from_utf8_lossy(&verify.stderr));
        let about_unit: Vec<&str> = said.lines().filter(|l| l.contains(unit)).collect();
        assert!(verify.status.success() && about_unit.is_empty(), "systemd-analyze verify {unit}:\n{said}");
    }
}
