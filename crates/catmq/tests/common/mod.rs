//! The real `catmq` binary as a child process, read line by line.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

/// How long a test waits for the binary.
pub const W: Duration = Duration::from_secs(20);

pub struct Proc {
    pub child: Child,
    pub lines: mpsc::Receiver<String>,
    pub namesrv: Option<String>,
    pub broker: Option<String>,
}

impl Proc {
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_catmq"));
        cmd.args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .env("RUST_LOG", "warn");
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn catmq");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        let mut p = Self {
            child,
            lines,
            namesrv: None,
            broker: None,
        };
        loop {
            let l = p.line();
            if let Some(rest) = l.strip_prefix("catmq namesrv listening on ") {
                p.namesrv = Some(rest.trim().to_owned());
            } else if l.starts_with("catmq broker ") {
                let addr = l.split(" listening on ").nth(1).unwrap();
                p.broker = Some(addr.split_whitespace().next().unwrap().to_owned());
            } else if l == "catmq ready" {
                return p;
            }
        }
    }

    pub fn line(&self) -> String {
        self.lines
            .recv_timeout(W)
            .expect("catmq printed nothing in time (or exited)")
    }

    pub fn server(dir: &Path, env: &[(&str, &str)]) -> Self {
        let d = dir.to_str().unwrap();
        Self::start(
            &[
                "server",
                "--data-dir",
                d,
                "--namesrv-listen",
                "127.0.0.1:0",
                "--broker-listen",
                "127.0.0.1:0",
            ],
            env,
        )
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }

    /// SIGTERM, then the exit status and whether it said it stopped.
    pub fn terminate(mut self) -> (bool, bool) {
        self.signal("-TERM");
        let stopped =
            std::iter::from_fn(|| self.lines.recv_timeout(W).ok()).any(|l| l == "catmq stopped");
        let status = self.child.wait().unwrap();
        (status.success(), stopped)
    }

    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
