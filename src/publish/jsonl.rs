// SPDX-License-Identifier: MPL-2.0

//! A JSON-lines file written from a thread of its own, so that a slow disk never holds up
//! the caller. Each message is one line; the file is flushed whenever the writer catches up.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

enum Request {
    Line(Vec<u8>),
    Sync(mpsc::Sender<()>),
}

pub struct LineWriter {
    requests: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl LineWriter {
    /// Creates (truncates) `path`, or appends to it with `append`.
    pub fn create(path: &Path, append: bool) -> Result<LineWriter, String> {
        let file = File::options()
            .create(true)
            .write(true)
            .append(append)
            .truncate(!append)
            .open(path)
            .map_err(|e| format!("cannot open {} for writing: {e}", path.display()))?;
        let shown = path.display().to_string();
        let (requests, incoming) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new()
            .name("audiotagpublish-file".into())
            .spawn(move || {
                let mut out = BufWriter::new(file);
                let failed = |e: std::io::Error| format!("cannot write to {shown}: {e}");
                while let Ok(first) = incoming.recv() {
                    let mut next = Some(first);
                    while let Some(request) = next {
                        match request {
                            Request::Line(line) => {
                                out.write_all(&line).map_err(failed)?;
                                out.write_all(b"\n").map_err(failed)?;
                            }
                            Request::Sync(done) => {
                                out.flush().map_err(failed)?;
                                let _ = done.send(());
                            }
                        }
                        next = incoming.try_recv().ok();
                    }
                    out.flush().map_err(failed)?;
                }
                out.flush().map_err(failed)
            })
            .map_err(|e| format!("cannot start the file writer thread: {e}"))?;
        Ok(LineWriter {
            requests: Some(requests),
            thread: Some(thread),
        })
    }

    /// Queues one line (without its newline). Err once the writer has failed: its reason.
    pub fn write(&mut self, line: Vec<u8>) -> Result<(), String> {
        let sent = self
            .requests
            .as_ref()
            .is_some_and(|r| r.send(Request::Line(line)).is_ok());
        if sent { Ok(()) } else { Err(self.failure()) }
    }

    /// Waits until everything queued is on disk, at most `timeout`; true if it is.
    pub fn sync(&mut self, timeout: Duration) -> bool {
        let (done, wait) = mpsc::channel();
        let asked = self
            .requests
            .as_ref()
            .is_some_and(|r| r.send(Request::Sync(done)).is_ok());
        asked && wait.recv_timeout(timeout).is_ok()
    }

    /// Writes what is queued and closes the file.
    pub fn close(mut self) -> Result<(), String> {
        self.requests = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err("the file writer thread panicked".into()),
            None => Ok(()),
        }
    }

    fn failure(&mut self) -> String {
        self.requests = None;
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(why))) => why,
            _ => "the file writer stopped".into(),
        }
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_arrive_in_order_and_sync_waits_for_them() {
        let dir = std::env::temp_dir().join(format!("jsonl-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("out.jsonl");
        let mut w = LineWriter::create(&path, false).unwrap();
        for i in 0..1000 {
            w.write(format!("{{\"i\":{i}}}").into_bytes()).unwrap();
        }
        assert!(w.sync(Duration::from_secs(5)));
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1000);
        assert_eq!(lines[999], "{\"i\":999}");
        w.close().unwrap();
        let mut again = LineWriter::create(&path, true).unwrap();
        again.write(b"{}".to_vec()).unwrap();
        again.close().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap().lines().count(),
            1001
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_unwritable_path_is_an_error_naming_it() {
        let e = LineWriter::create(Path::new("/nonexistent-dir/x.jsonl"), false).err();
        assert!(e.unwrap().contains("/nonexistent-dir/x.jsonl"));
    }
}
