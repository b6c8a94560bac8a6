//! The `command` generation strategy: runs the user's command with the optimization's history as
//! JSON on stdin and reads proposed variants as JSON on stdout (protocol in docs/generation.md).
//! Every failure is a message for a warning; the run goes on without new arms.

use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why the command gave no variants (a warning; the run goes on without new arms).
#[derive(Debug, thiserror::Error)]
pub enum GeneratorError {
    #[error("cannot start `{command}`: {error}")]
    Start {
        command: String,
        error: std::io::Error,
    },
    #[error("`{command}` did not finish within {seconds} s and was stopped")]
    Timeout { command: String, seconds: f64 },
    #[error("cannot wait for `{command}`: {error}")]
    Wait {
        command: String,
        error: std::io::Error,
    },
    /// It exited unsuccessfully; `stderr` is the last line it wrote there.
    #[error("`{command}` failed ({status}){}", if stderr.is_empty() { String::new() } else { format!(": {stderr}") })]
    Failed {
        command: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
    #[error("its output is not JSON ({error}); it starts with {start:?}")]
    NotJson {
        error: serde_json::Error,
        start: String,
    },
    #[error("its output has no `variants` list")]
    NoVariants,
}

/// How much of the command's stdout and stderr is read.
const OUTPUT_LIMIT: u64 = 1 << 20;

/// Runs `argv` in `dir` with `input` on stdin; returns its stdout, or why it failed.
pub fn run(
    argv: &[String],
    dir: &Path,
    input: &str,
    timeout: Duration,
) -> Result<String, GeneratorError> {
    let shown = argv.join(" ");
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let mut child = Command::new(&argv[0])
        .args(&argv[1..])
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|error| GeneratorError::Start {
            command: shown.clone(),
            error,
        })?;
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let input = input.to_string();
    // A command that does not read its input must not block the run: write from a thread.
    std::thread::spawn(move || {
        let _ = stdin.write_all(input.as_bytes());
    });
    let reader = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(pipe) = pipe {
                let _ = pipe.take(OUTPUT_LIMIT).read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = reader(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = reader(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if started.elapsed() >= timeout => {
                // The whole process group, so that a shell's children go too.
                // SAFETY: kill(2) with a negative pid signals the group the child leads.
                unsafe {
                    libc::kill(-(child.id() as i32), libc::SIGKILL);
                }
                let _ = child.wait();
                return Err(GeneratorError::Timeout {
                    command: shown,
                    seconds: timeout.as_secs_f64(),
                });
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(error) => {
                return Err(GeneratorError::Wait {
                    command: shown,
                    error,
                })
            }
        }
    };
    // Whatever the command left running in its group would hold the pipes open: stop it too.
    // SAFETY: kill(2) with a negative pid signals the group the child led; the group may be empty.
    unsafe {
        libc::kill(-(child.id() as i32), libc::SIGKILL);
    }
    let out = stdout.join().unwrap_or_default();
    let err = stderr.join().unwrap_or_default();
    if !status.success() {
        let stderr: String = err
            .trim()
            .lines()
            .last()
            .unwrap_or("")
            .chars()
            .take(300)
            .collect();
        return Err(GeneratorError::Failed {
            command: shown,
            status,
            stderr,
        });
    }
    Ok(out)
}

/// Reads the command's answer: `{"variants": [{factor: level, …}, …]}`. Each variant must name
/// exactly the optimization's factors; levels may be new. Returns the variants' levels in factor
/// order and a message for each one refused.
pub fn parse(
    stdout: &str,
    factors: &[String],
) -> Result<(Vec<Vec<String>>, Vec<String>), GeneratorError> {
    let value: serde_json::Value =
        serde_json::from_str(stdout.trim()).map_err(|error| GeneratorError::NotJson {
            error,
            start: stdout.trim().chars().take(80).collect(),
        })?;
    let list = value
        .get("variants")
        .and_then(serde_json::Value::as_array)
        .ok_or(GeneratorError::NoVariants)?;
    let mut accepted = Vec::new();
    let mut refused = Vec::new();
    for (i, item) in list.iter().enumerate() {
        let Some(object) = item.as_object() else {
            refused.push(format!("variants[{i}] is not an object"));
            continue;
        };
        let mut keys: Vec<&String> = object.keys().collect();
        keys.sort();
        let mut wanted: Vec<&String> = factors.iter().collect();
        wanted.sort();
        if keys != wanted {
            refused.push(format!(
                "variants[{i}] names {:?}, not exactly the factors {:?}",
                object.keys().collect::<Vec<_>>(),
                factors
            ));
            continue;
        }
        let levels: Option<Vec<String>> = factors
            .iter()
            .map(|f| match &object[f] {
                serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                serde_json::Value::Bool(b) => Some(b.to_string()),
                _ => None,
            })
            .collect();
        match levels {
            Some(levels) => accepted.push(levels),
            None => refused.push(format!(
                "variants[{i}] has a level that is not a non-empty string, number or boolean"
            )),
        }
    }
    Ok((accepted, refused))
}
