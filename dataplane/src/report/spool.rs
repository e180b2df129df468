//! The durable queue between the in-process usage channel and the network
//! reporter: usage records survive a control-plane outage and a data-plane
//! restart, and each is delivered at least once.
//!
//! Two files in one directory:
//!
//! * `usage.spool`: records, one JSON object per line, appended only. Every
//!   write is of whole lines, so the file always ends with `\n` except after a
//!   crash mid-write; [`Spool::open`] cuts such a torn line off.
//! * `usage.acked`: the byte offset (decimal text) up to which records were
//!   acknowledged. Always replaced atomically (write temp, fsync, rename).
//!
//! Compaction drops the acknowledged prefix: the unacknowledged tail (empty
//! when everything is acknowledged) is copied to `usage.spool.tmp`, and the
//! state file is set to `compacting <old offset>` before the rename over
//! `usage.spool`. On open, that marker reads as "old offset" while the temp
//! file still exists (the rename did not happen) and as `0` once it is gone,
//! so a crash at any step neither loses nor resends records.
//!
//! Synchronous `std::fs` I/O, meant for one dedicated task (directly or via
//! `spawn_blocking`).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::usage::UsageRecord;

const SPOOL_FILE: &str = "usage.spool";
const SPOOL_TMP: &str = "usage.spool.tmp";
const ACKED_FILE: &str = "usage.acked";
const ACKED_TMP: &str = "usage.acked.tmp";
const COMPACTING: &str = "compacting ";

/// Compact once the acknowledged prefix is larger than this.
const COMPACT_BYTES: u64 = 1 << 20;

#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    file: File,
    /// End of the valid data: always just past a `\n` (or 0).
    len: u64,
    /// Everything before this offset was acknowledged; always a line start.
    acked: u64,
    max_bytes: u64,
}

impl Spool {
    /// Opens (creating) `dir/usage.spool` (records, one JSON object per line) and `dir/usage.acked`
    /// (the byte offset up to which records were acknowledged). A torn last line (crash mid-write) is ignored and cut off.
    pub fn open(dir: &Path, max_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let spool_tmp = dir.join(SPOOL_TMP);
        let (mut acked, mut rewrite_state) = match read_state(dir)? {
            State::Acked(n) => (n, false),
            // A compaction was interrupted: the temp file still being there
            // means the rename did not happen and the old offset holds.
            State::Compacting(old) if spool_tmp.exists() => (old, true),
            State::Compacting(_) => (0, true),
        };
        match fs::remove_file(&spool_tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }

        let file = OpenOptions::new().read(true).write(true).create(true).truncate(false).open(dir.join(SPOOL_FILE))?;
        let file_len = file.metadata()?.len();
        let len = line_start_at_or_before(&file, file_len)?;
        if len < file_len {
            tracing::warn!(cut_bytes = file_len - len, "usage spool: cutting off a torn last line");
            file.set_len(len)?;
        }

        if acked > len {
            // Records acknowledged but never durably written (power loss).
            tracing::warn!(acked, len, "usage spool: acknowledged offset past the end");
            acked = len;
            rewrite_state = true;
        }
        let start = line_start_at_or_before(&file, acked)?;
        if start != acked {
            // Not a line boundary: resend the partial record rather than lose it.
            tracing::warn!(acked, start, "usage spool: acknowledged offset inside a line");
            acked = start;
            rewrite_state = true;
        }
        if rewrite_state {
            write_state(dir, &acked.to_string())?;
        }

        Ok(Spool { dir: dir.to_owned(), file, len, acked, max_bytes })
    }

    /// Appends records (buffered write + flush; fsync every call is NOT required, but flush to the OS is).
    /// When the spool already holds more than `max_bytes` of unacknowledged data, refuses with an error
    /// (the caller logs and counts the loss) — bounded disk use.
    ///
    /// All or nothing: on an error none of `records` was stored. The refusal
    /// is an error of kind `StorageFull`.
    pub fn append(&mut self, records: &[UsageRecord]) -> io::Result<()> {
        if records.is_empty() {
            return Ok(());
        }
        if self.pending_bytes() > self.max_bytes {
            return Err(io::Error::new(
                io::ErrorKind::StorageFull,
                format!("usage spool full: {} bytes unacknowledged, limit {}", self.pending_bytes(), self.max_bytes),
            ));
        }
        let mut buf = Vec::with_capacity(records.len() * 384);
        for r in records {
            serde_json::to_writer(&mut buf, r).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
            buf.push(b'\n');
        }
        let written = (|| {
            let mut f = &self.file;
            f.seek(SeekFrom::Start(self.len))?;
            f.write_all(&buf)?;
            f.flush()
        })();
        if let Err(e) = written {
            // Leave no partial line behind (best effort: the next append
            // writes at `self.len` anyway, and open cuts a torn tail).
            let _ = self.file.set_len(self.len);
            return Err(e);
        }
        self.len += buf.len() as u64;
        Ok(())
    }

    /// Reads up to `max` unacknowledged records starting at the acked offset, returning them with the
    /// offset just past the last one returned (a "cursor").
    ///
    /// Corrupt lines are skipped (with a warning) and counted as consumed, so
    /// acknowledging the cursor drops them too. When only corrupt lines remain
    /// they are acknowledged here, so an empty result always means nothing is
    /// pending. A cursor stays valid until the next `ack`.
    pub fn peek(&mut self, max: usize) -> io::Result<(Vec<UsageRecord>, u64)> {
        let mut records = Vec::new();
        let mut cursor = self.acked;
        if max == 0 || self.acked >= self.len {
            return Ok((records, cursor));
        }
        let mut f = &self.file;
        f.seek(SeekFrom::Start(self.acked))?;
        let mut reader = BufReader::with_capacity(64 * 1024, f.take(self.len - self.acked));
        let mut line = Vec::new();
        while records.len() < max {
            line.clear();
            let n = reader.read_until(b'\n', &mut line)?;
            if n == 0 || line.last() != Some(&b'\n') {
                // End of the data (`len` always ends a line, so no partial one).
                break;
            }
            let offset = cursor;
            cursor += n as u64;
            let body = &line[..n - 1];
            if body.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match serde_json::from_slice::<UsageRecord>(body) {
                Ok(r) => records.push(r),
                Err(e) => tracing::warn!(
                    offset,
                    bytes = n,
                    error = %e,
                    "usage spool: skipping a line that is not a usage record"
                ),
            }
        }
        if records.is_empty() && cursor > self.acked {
            self.ack(cursor)?;
        }
        Ok((records, cursor))
    }

    /// Marks everything before `cursor` as delivered (persist the offset atomically: write temp + rename).
    /// When everything is acknowledged and the file is larger than 1 MiB, truncates both files to empty
    /// (compaction) so the spool does not grow forever.
    ///
    /// A cursor behind the acknowledged offset is a no-op; one past the end
    /// or inside a line is an `InvalidInput` error. Beyond the all-acknowledged
    /// case, the acknowledged prefix is also dropped once it exceeds 1 MiB and
    /// is at least as large as the pending tail (so steady traffic, which may
    /// never leave the spool fully drained, cannot grow it forever). A failed
    /// compaction is logged, not returned: the acknowledgement itself holds.
    pub fn ack(&mut self, cursor: u64) -> io::Result<()> {
        if cursor <= self.acked {
            return Ok(());
        }
        if cursor > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("usage spool: cursor {cursor} past the end {}", self.len),
            ));
        }
        let mut last = [0u8; 1];
        let mut f = &self.file;
        f.seek(SeekFrom::Start(cursor - 1))?;
        f.read_exact(&mut last)?;
        if last[0] != b'\n' {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("usage spool: cursor {cursor} is not at a line boundary"),
            ));
        }
        write_state(&self.dir, &cursor.to_string())?;
        self.acked = cursor;

        let pending = self.pending_bytes();
        let all_acked_and_big = pending == 0 && self.len > COMPACT_BYTES;
        let prefix_dominates = self.acked > COMPACT_BYTES && self.acked >= pending;
        if all_acked_and_big || prefix_dominates {
            if let Err(e) = self.compact() {
                tracing::warn!(error = %e, "usage spool: compaction failed; will retry");
            }
        }
        Ok(())
    }

    pub fn pending_bytes(&self) -> u64 {
        self.len - self.acked
    }

    pub fn is_empty(&self) -> bool {
        self.pending_bytes() == 0
    }

    /// Replaces the spool with its unacknowledged tail; see the module docs
    /// for why each step is crash-safe.
    fn compact(&mut self) -> io::Result<()> {
        let tail = self.pending_bytes();
        let spool_tmp = self.dir.join(SPOOL_TMP);
        let mut out = OpenOptions::new().read(true).write(true).create(true).truncate(true).open(&spool_tmp)?;
        let copied = (|| {
            let mut f = &self.file;
            f.seek(SeekFrom::Start(self.acked))?;
            let n = io::copy(&mut f.take(tail), &mut out)?;
            if n != tail {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "usage spool shorter than expected"));
            }
            out.sync_all()?;
            write_state(&self.dir, &format!("{COMPACTING}{}", self.acked))
        })();
        if let Err(e) = copied {
            let _ = fs::remove_file(&spool_tmp);
            return Err(e);
        }
        if let Err(e) = fs::rename(&spool_tmp, self.dir.join(SPOOL_FILE)) {
            // Restore the plain offset before removing the temp file: the
            // marker without the temp file would read as "renamed".
            if write_state(&self.dir, &self.acked.to_string()).is_ok() {
                let _ = fs::remove_file(&spool_tmp);
            }
            return Err(e);
        }
        // The rename happened: from here the marker alone reads as offset 0.
        self.file = out;
        self.len = tail;
        self.acked = 0;
        sync_dir(&self.dir)?;
        write_state(&self.dir, "0")
    }
}

enum State {
    Acked(u64),
    Compacting(u64),
}

fn read_state(dir: &Path) -> io::Result<State> {
    let text = match fs::read_to_string(dir.join(ACKED_FILE)) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(State::Acked(0)),
        Err(e) if e.kind() == io::ErrorKind::InvalidData => String::new(),
        Err(e) => return Err(e),
    };
    let text = text.trim();
    let parsed = match text.strip_prefix(COMPACTING) {
        Some(n) => n.trim().parse().map(State::Compacting),
        None => text.parse().map(State::Acked),
    };
    Ok(parsed.unwrap_or_else(|_| {
        // Resending everything is safe (at least once); skipping is not.
        tracing::warn!(content = text, "usage spool: unreadable acknowledged offset; using 0");
        State::Acked(0)
    }))
}

/// Replaces `usage.acked` atomically and durably.
fn write_state(dir: &Path, content: &str) -> io::Result<()> {
    let tmp = dir.join(ACKED_TMP);
    let mut f = File::create(&tmp)?;
    f.write_all(content.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, dir.join(ACKED_FILE))
}

#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The start of the line that offset `end` falls in: `end` itself when it is 0
/// or follows a `\n`, otherwise just past the last `\n` before it (or 0).
/// Scans backwards in chunks.
fn line_start_at_or_before(file: &File, end: u64) -> io::Result<u64> {
    const CHUNK: u64 = 64 * 1024;
    let mut f = file;
    let mut buf = vec![0u8; CHUNK as usize];
    let mut hi = end;
    while hi > 0 {
        let lo = hi.saturating_sub(CHUNK);
        let chunk = &mut buf[..(hi - lo) as usize];
        f.seek(SeekFrom::Start(lo))?;
        f.read_exact(chunk)?;
        if let Some(i) = chunk.iter().rposition(|&b| b == b'\n') {
            return Ok(lo + i as u64 + 1);
        }
        hi = lo;
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stream::Usage;
    use crate::usage::{Meter, Outcome};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A fresh directory under the system temp dir, removed on drop.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(tag: &str) -> Self {
            static N: AtomicU32 = AtomicU32::new(0);
            let nanos =
                std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
            let path = std::env::temp_dir().join(format!(
                "ccag-spool-{tag}-{}-{}-{nanos}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            fs::create_dir_all(&path).unwrap();
            TempDir(path)
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn record(i: u64) -> UsageRecord {
        let mut m = Meter::start(&format!("req-{i}"), "messages");
        m.record.key_id = format!("key-{i}");
        m.record.model = "claude-test".into();
        m.record.stream = i.is_multiple_of(2);
        // Fixed, so that two calls describe the same record.
        m.record.started_at_ms = 1_795_000_000_000 + i;
        m.finish(
            200,
            Outcome::Ok,
            Usage {
                input_tokens: i,
                output_tokens: 2 * i,
                cache_creation_input_tokens: 3,
                cache_read_input_tokens: 4,
                ..Default::default()
            },
        )
    }

    fn records(range: std::ops::Range<u64>) -> Vec<UsageRecord> {
        range.map(record).collect()
    }

    fn ids(rs: &[UsageRecord]) -> Vec<String> {
        rs.iter().map(|r| r.request_id.clone()).collect()
    }

    fn id_range(range: std::ops::Range<u64>) -> Vec<String> {
        range.map(|i| format!("req-{i}")).collect()
    }

    const BIG: u64 = 1 << 30;

    #[test]
    fn append_then_peek_returns_records_in_order() {
        let dir = TempDir::new("order");
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert!(s.is_empty());
        s.append(&records(0..3)).unwrap();
        s.append(&records(3..5)).unwrap();
        assert!(!s.is_empty());
        let (got, cursor) = s.peek(100).unwrap();
        assert_eq!(ids(&got), id_range(0..5));
        assert_eq!(cursor, s.pending_bytes());
        // The record survives the round trip whole.
        let want = record(3);
        let r = &got[3];
        assert_eq!(r.operation, "messages");
        assert_eq!(r.key_id, want.key_id);
        assert_eq!(r.model, want.model);
        assert_eq!(r.stream, want.stream);
        assert_eq!((r.status, r.outcome), (200, Outcome::Ok));
        assert_eq!(r.usage, want.usage);
        assert_eq!(r.started_at_ms, want.started_at_ms);
        // Peek does not consume.
        let (again, _) = s.peek(100).unwrap();
        assert_eq!(ids(&again), id_range(0..5));
    }

    #[test]
    fn ack_advances_so_peek_returns_the_rest() {
        let dir = TempDir::new("ack");
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        s.append(&records(0..5)).unwrap();
        let (first, cursor) = s.peek(2).unwrap();
        assert_eq!(ids(&first), id_range(0..2));
        s.ack(cursor).unwrap();
        let (rest, end) = s.peek(100).unwrap();
        assert_eq!(ids(&rest), id_range(2..5));
        s.ack(end).unwrap();
        assert!(s.is_empty());
        assert_eq!(s.pending_bytes(), 0);
        let (none, _) = s.peek(100).unwrap();
        assert!(none.is_empty());
    }

    #[test]
    fn reopen_resumes_from_the_acked_offset() {
        let dir = TempDir::new("reopen");
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(0..4)).unwrap();
            let (_, cursor) = s.peek(3).unwrap();
            s.ack(cursor).unwrap();
        }
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        let (got, cursor) = s.peek(100).unwrap();
        assert_eq!(ids(&got), id_range(3..4), "nothing lost, nothing acked resent");
        s.ack(cursor).unwrap();
        s.append(&records(4..6)).unwrap();
        drop(s);
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(4..6));
    }

    #[test]
    fn torn_final_line_is_cut_off_on_open() {
        let dir = TempDir::new("torn");
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(0..2)).unwrap();
        }
        let path = dir.0.join(SPOOL_FILE);
        let whole = fs::metadata(&path).unwrap().len();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(br#"{"request_id":"req-torn","oper"#).unwrap();
        drop(f);

        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().len(), whole);
        assert_eq!(s.pending_bytes(), whole);
        // New records start on a clean line after the cut.
        s.append(&records(2..3)).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(0..3));
    }

    #[test]
    fn compaction_truncates_when_everything_is_acked() {
        let dir = TempDir::new("compact");
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        let mut n = 0;
        while s.pending_bytes() <= COMPACT_BYTES {
            s.append(&records(n..n + 100)).unwrap();
            n += 100;
        }
        let mut seen = 0;
        loop {
            let (got, cursor) = s.peek(1000).unwrap();
            if got.is_empty() {
                break;
            }
            seen += got.len() as u64;
            s.ack(cursor).unwrap();
        }
        assert_eq!(seen, n);
        assert!(s.is_empty());
        assert_eq!(fs::metadata(dir.0.join(SPOOL_FILE)).unwrap().len(), 0);
        assert_eq!(fs::read_to_string(dir.0.join(ACKED_FILE)).unwrap().trim(), "0");
        assert!(!dir.0.join(SPOOL_TMP).exists());
        // Still usable, in memory and after a reopen.
        s.append(&records(0..2)).unwrap();
        drop(s);
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(0..2));
    }

    #[test]
    fn compaction_keeps_the_pending_tail_under_steady_traffic() {
        let dir = TempDir::new("steady");
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        let mut next = 0;
        let mut delivered = 0;
        // Each round a new record arrives between peek and ack, so the spool
        // is never fully drained at ack time.
        for _ in 0..400 {
            s.append(&records(next..next + 50)).unwrap();
            next += 50;
            let (got, cursor) = s.peek(1000).unwrap();
            assert_eq!(got[0].request_id, format!("req-{delivered}"));
            delivered += got.len() as u64;
            s.append(&records(next..next + 10)).unwrap();
            next += 10;
            s.ack(cursor).unwrap();
        }
        let file_len = fs::metadata(dir.0.join(SPOOL_FILE)).unwrap().len();
        assert!(file_len <= 2 * COMPACT_BYTES + 4096, "spool grew to {file_len}");
        drop(s);
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(ids(&s.peek(usize::MAX).unwrap().0), id_range(delivered..next));
    }

    #[test]
    fn interrupted_compaction_resolves_on_open() {
        let dir = TempDir::new("interrupted");
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(0..3)).unwrap();
        }
        let spool = fs::read(dir.0.join(SPOOL_FILE)).unwrap();
        let line = spool.iter().position(|&b| b == b'\n').unwrap() + 1;
        // Crash after the marker, before the rename: the old offset holds.
        fs::write(dir.0.join(SPOOL_TMP), &spool[line..]).unwrap();
        write_state(&dir.0, &format!("{COMPACTING}{line}")).unwrap();
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(1..3));
        assert!(!dir.0.join(SPOOL_TMP).exists());
        drop(s);
        // Crash after the rename, before the final offset: offset 0 of the new file.
        fs::write(dir.0.join(SPOOL_FILE), &spool[line..]).unwrap();
        write_state(&dir.0, &format!("{COMPACTING}{line}")).unwrap();
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(1..3));
    }

    #[test]
    fn append_is_refused_beyond_max_bytes() {
        let dir = TempDir::new("max");
        let two: u64 = records(0..2).iter().map(|r| serde_json::to_vec(r).unwrap().len() as u64 + 1).sum();
        let mut s = Spool::open(&dir.0, two).unwrap();
        s.append(&records(0..2)).unwrap();
        assert_eq!(s.pending_bytes(), two);
        // Exactly at the limit is not "more than" it.
        s.append(&records(2..3)).unwrap();
        let err = s.append(&records(3..4)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::StorageFull);
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(0..3), "refused batch not stored");
        // Acknowledging frees room again.
        let (_, cursor) = s.peek(2).unwrap();
        s.ack(cursor).unwrap();
        s.append(&records(3..4)).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(2..4));
    }

    #[test]
    fn corrupt_line_in_the_middle_is_skipped() {
        let dir = TempDir::new("corrupt");
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(0..2)).unwrap();
        }
        let path = dir.0.join(SPOOL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"\x00\x00{not json at all\n{\"request_id\":\"x\"}\n").unwrap();
        drop(f);
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(2..4)).unwrap();
        }
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        let (got, cursor) = s.peek(100).unwrap();
        assert_eq!(ids(&got), id_range(0..4));
        s.ack(cursor).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn only_corrupt_lines_left_are_acked_by_peek() {
        let dir = TempDir::new("corrupt-tail");
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(0..1)).unwrap();
        }
        let path = dir.0.join(SPOOL_FILE);
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"garbage\n").unwrap();
        drop(f);
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        let (got, cursor) = s.peek(100).unwrap();
        assert_eq!(ids(&got), id_range(0..1));
        s.ack(cursor).unwrap();
        assert!(s.is_empty(), "trailing garbage was consumed with the last record");

        s.append(&records(1..2)).unwrap();
        let (_, cursor) = s.peek(100).unwrap();
        s.ack(cursor).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(b"more garbage\n").unwrap();
        drop(f);
        drop(s);
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert!(!s.is_empty());
        let (got, _) = s.peek(100).unwrap();
        assert!(got.is_empty());
        assert!(s.is_empty(), "an empty peek means nothing is pending");
    }

    #[test]
    fn bad_cursors_are_rejected_or_ignored() {
        let dir = TempDir::new("cursor");
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        s.append(&records(0..2)).unwrap();
        let (_, end) = s.peek(100).unwrap();
        assert_eq!(s.ack(end + 1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        assert_eq!(s.ack(end - 1).unwrap_err().kind(), io::ErrorKind::InvalidInput);
        let (_, first) = s.peek(1).unwrap();
        s.ack(first).unwrap();
        s.ack(first).unwrap();
        s.ack(0).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(1..2));
    }

    #[test]
    fn ack_offset_inside_a_line_resends_that_record() {
        let dir = TempDir::new("mid-line");
        {
            let mut s = Spool::open(&dir.0, BIG).unwrap();
            s.append(&records(0..3)).unwrap();
            let (_, cursor) = s.peek(1).unwrap();
            s.ack(cursor).unwrap();
            write_state(&dir.0, &(cursor + 5).to_string()).unwrap();
        }
        let mut s = Spool::open(&dir.0, BIG).unwrap();
        assert_eq!(ids(&s.peek(100).unwrap().0), id_range(1..3));
    }
}
