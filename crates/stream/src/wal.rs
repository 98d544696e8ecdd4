//! The write-ahead log of a Direct PUT source: a 200 answer means the records are on disk.
//!
//! Records are appended to segment files `<first sequence>.wal` in the log's folder and synced
//! (`fdatasync`) before their request is answered. Requests that arrive while a sync is under
//! way wait for the next one and share it (group commit), so the cost of a sync is paid once
//! per group, not once per request. Each record gets the next sequence number; they are never
//! reused, also across restarts: the newest segment's name keeps the position when every
//! record has left the log.
//!
//! Records leave the log once the firehose sink acknowledges them, which it does only after
//! the objects holding them are published: a segment is deleted when all its records are
//! acknowledged. After a crash, the records still in the log are read back with their sequence
//! numbers and arrival times, so the sink's record of objects in flight recognises the objects
//! already published and rebuilds the others under the same keys, as it does for JetStream.
//!
//! A frame is `length: u32 | crc32: u32 | sequence: u64 | arrival (µs since 1970): i64 | data`,
//! little-endian, the checksum covering everything after it. A frame cut short or failing its
//! checksum at the end of the newest segment was being written when the process died and was
//! never answered 200: it is cut off at start-up.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};

use pipectl_engine::{Error, Result};

use crate::record::Record;

/// Bytes of a frame before its data.
pub const HEADER_BYTES: usize = 24;

/// Segment files end in this.
const SEGMENT_EXT: &str = "wal";

/// A segment written to the end and closed.
struct Closed {
    path: PathBuf,
    /// The last sequence number it holds.
    last: u64,
    bytes: u64,
}

/// The files of the log, changed under one lock: appends, and deletions after acknowledgements.
struct Files {
    active: File,
    active_path: PathBuf,
    active_bytes: u64,
    /// The last sequence number in the active segment (its first minus one while it is empty).
    active_last: u64,
    closed: VecDeque<Closed>,
    /// The next sequence number to give.
    next: u64,
    /// A write failed and could not be undone: the log refuses further appends.
    broken: bool,
}

/// One source's write-ahead log.
pub struct Wal {
    dir: PathBuf,
    /// A segment is closed and a new one started once it holds this many bytes.
    segment_bytes: u64,
    files: Mutex<Files>,
    /// Bytes in segment files: records not yet acknowledged, and acknowledged ones sharing a
    /// segment with them.
    held: AtomicU64,
    /// Every record up to this sequence number is acknowledged.
    released: AtomicU64,
}

/// What [`Wal::open`] found.
pub struct Opened {
    /// The log, ready for appends.
    pub wal: Wal,
    /// Every sequence number up to this one is published and acknowledged.
    pub floor: u64,
    /// The records still in the log after `floor`, to be delivered again.
    pub replay: Replay,
}

impl Wal {
    /// Opens the log in `dir` (creating it), cutting off a frame left half-written by a crash.
    /// `floor` is the highest sequence number the sink's record says is acknowledged and
    /// `reserved` the highest it names at all: sequence numbers continue after both, so a log
    /// deleted by hand never makes object names repeat. Segments hold about `segment_bytes`.
    pub fn open(dir: &Path, floor: u64, reserved: u64, segment_bytes: u64) -> Result<Opened> {
        let context = |what: &str| format!("write-ahead log {}: {what}", dir.display());
        std::fs::create_dir_all(dir)
            .map_err(|e| Error::external(context("cannot create the folder"), e))?;
        let mut segments: Vec<(u64, PathBuf)> = Vec::new();
        let entries =
            std::fs::read_dir(dir).map_err(|e| Error::external(context("cannot list it"), e))?;
        for entry in entries {
            let path = entry
                .map_err(|e| Error::external(context("cannot list it"), e))?
                .path();
            let first = path
                .extension()
                .filter(|e| *e == SEGMENT_EXT)
                .and(path.file_stem())
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok());
            if let Some(first) = first {
                segments.push((first, path));
            }
        }
        segments.sort();
        // Every segment but the newest was closed after a sync of its last write: complete. A
        // closed segment ends just before the next one begins.
        let newest = segments.pop();
        let next_firsts = segments
            .iter()
            .skip(1)
            .map(|(f, _)| *f)
            .chain(newest.as_ref().map(|(f, _)| *f));
        let mut closed = VecDeque::new();
        let mut held = 0;
        for ((_, path), next_first) in segments.iter().zip(next_firsts) {
            let bytes = file_len(path)?;
            held += bytes;
            closed.push_back(Closed {
                path: path.clone(),
                last: next_first.saturating_sub(1),
                bytes,
            });
        }
        let (active_path, active_first, active_last, active_bytes) = match newest {
            Some((first, path)) => {
                let (last, valid) = scan_tail(&path, first)?;
                let bytes = file_len(&path)?;
                if valid < bytes {
                    tracing::warn!(
                        log = %path.display(),
                        "cutting off {} bytes a stopped process was writing (never answered)",
                        bytes - valid
                    );
                    truncate(&path, valid)?;
                }
                (path, first, last, valid)
            }
            None => {
                let first = floor.max(reserved) + 1;
                let path = segment_path(dir, first);
                (path, first, first - 1, 0)
            }
        };
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&active_path)
            .map_err(|e| Error::external(context("cannot open its newest segment"), e))?;
        sync_dir(dir)?;
        held += active_bytes;
        let next = active_last.max(floor).max(reserved) + 1;
        // Records before the oldest one kept were all acknowledged (only acknowledged
        // segments are deleted), even if the sink's record lags behind.
        let oldest = segments.first().map_or(active_first, |(f, _)| *f);
        let floor = floor.max(oldest.saturating_sub(1));
        let mut paths: Vec<PathBuf> = segments.into_iter().map(|(_, p)| p).collect();
        paths.push(active_path.clone());
        let wal = Wal {
            dir: dir.to_owned(),
            segment_bytes: segment_bytes.max(1),
            files: Mutex::new(Files {
                active,
                active_path,
                active_bytes,
                active_last,
                closed,
                next,
                broken: false,
            }),
            held: AtomicU64::new(held),
            released: AtomicU64::new(floor),
        };
        Ok(Opened {
            wal,
            floor,
            replay: Replay {
                paths: paths.into(),
                reader: None,
                after: floor,
                through: active_last,
            },
        })
    }

    /// The log's folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Bytes the log holds on disk.
    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether a failed write could not be undone: the log takes no more records.
    pub fn broken(&self) -> bool {
        self.files.lock().map_or(true, |f| f.broken)
    }

    /// Every record up to this sequence number is acknowledged.
    pub fn released(&self) -> u64 {
        self.released.load(Ordering::Relaxed)
    }

    /// Appends the records of several requests (each with its arrival time) in one write and
    /// one sync, numbering them consecutively in order; returns the first sequence number.
    /// On failure nothing of it stays in the log.
    pub fn append(&self, groups: &[(&[Bytes], DateTime<Utc>)]) -> Result<u64> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| Error::internal("write-ahead log lock poisoned"))?;
        if files.broken {
            return Err(Error::internal(format!(
                "the write-ahead log {} failed earlier and takes no more records",
                self.dir.display()
            )));
        }
        let first = files.next;
        let size: usize = groups
            .iter()
            .flat_map(|(records, _)| records.iter())
            .map(|r| HEADER_BYTES + r.len())
            .sum();
        let mut buf = Vec::with_capacity(size);
        let mut seq = first;
        for (records, arrival) in groups {
            for data in *records {
                encode(&mut buf, seq, *arrival, data)?;
                seq += 1;
            }
        }
        let before = files.active_bytes;
        let written = files
            .active
            .write_all(&buf)
            .and_then(|()| files.active.sync_data());
        if let Err(e) = written {
            // Undo the partial write so no record of a failed request is ever delivered.
            if files.active.set_len(before).is_err() {
                files.broken = true;
            }
            return Err(Error::external(
                format!("cannot write the write-ahead log {}", files.active_path.display()),
                e,
            ));
        }
        files.active_bytes += buf.len() as u64;
        files.active_last = seq - 1;
        files.next = seq;
        self.held.fetch_add(buf.len() as u64, Ordering::Relaxed);
        if files.active_bytes >= self.segment_bytes {
            self.roll(&mut files)?;
        }
        Ok(first)
    }

    /// Every record up to `through` is published and acknowledged: deletes the segments that
    /// hold nothing else.
    pub fn release(&self, through: u64) -> Result<()> {
        let mut files = self
            .files
            .lock()
            .map_err(|_| Error::internal("write-ahead log lock poisoned"))?;
        self.released.fetch_max(through, Ordering::Relaxed);
        while files.closed.front().is_some_and(|c| c.last <= through) {
            if let Some(c) = files.closed.pop_front() {
                remove(&c.path)?;
                self.held.fetch_sub(c.bytes, Ordering::Relaxed);
            }
        }
        // The active segment holds only acknowledged records: an empty one takes its place
        // (its name keeps the numbering).
        if files.active_bytes > 0 && files.active_last <= through {
            self.roll(&mut files)?;
            if let Some(c) = files.closed.pop_back() {
                remove(&c.path)?;
                self.held.fetch_sub(c.bytes, Ordering::Relaxed);
            }
        }
        Ok(())
    }

    /// Closes the active segment and starts the next one, named by the next sequence number.
    fn roll(&self, files: &mut Files) -> Result<()> {
        let path = segment_path(&self.dir, files.next);
        let active = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::external(format!("cannot create {}", path.display()), e))?;
        // The new segment's name is what keeps the position once the old one is deleted.
        sync_dir(&self.dir)?;
        let old_path = std::mem::replace(&mut files.active_path, path);
        files.active = active;
        files.closed.push_back(Closed {
            path: old_path,
            last: files.active_last,
            bytes: files.active_bytes,
        });
        files.active_bytes = 0;
        files.active_last = files.next - 1;
        Ok(())
    }
}

/// The records a restarted log delivers again, read segment by segment (a batch at a time, so
/// memory stays bounded however much the log holds).
pub struct Replay {
    paths: VecDeque<PathBuf>,
    reader: Option<(PathBuf, BufReader<File>)>,
    /// Records up to this sequence number are acknowledged: skipped.
    after: u64,
    /// The last record the log held when it was opened; later ones are new.
    through: u64,
}

impl Replay {
    /// Up to `max` records, in sequence order; empty when the log is read to the end.
    pub fn next_batch(&mut self, max: usize) -> Result<Vec<Record>> {
        let mut out = Vec::new();
        while out.len() < max {
            if self.reader.is_none() {
                let Some(path) = self.paths.pop_front() else {
                    break;
                };
                let file = File::open(&path)
                    .map_err(|e| Error::external(format!("cannot read {}", path.display()), e))?;
                self.reader = Some((path, BufReader::with_capacity(256 * 1024, file)));
            }
            let Some((path, reader)) = self.reader.as_mut() else {
                break;
            };
            match read_frame(reader) {
                Ok(Some(record)) if record.seq > self.through => {
                    self.paths.clear();
                    self.reader = None;
                }
                Ok(Some(record)) => {
                    if record.seq > self.after {
                        out.push(record);
                    }
                }
                Ok(None) => self.reader = None,
                Err(e) => {
                    return Err(Error::user(format!(
                        "the write-ahead log segment {} is damaged ({e}); its records cannot be delivered",
                        path.display()
                    )));
                }
            }
        }
        Ok(out)
    }
}

fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{SEGMENT_EXT}"))
}

fn encode(buf: &mut Vec<u8>, seq: u64, arrival: DateTime<Utc>, data: &[u8]) -> Result<()> {
    let len = u32::try_from(data.len())
        .map_err(|_| Error::user("a record of 4 GiB or more cannot be logged"))?;
    let start = buf.len();
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    buf.extend_from_slice(&seq.to_le_bytes());
    buf.extend_from_slice(&arrival.timestamp_micros().to_le_bytes());
    buf.extend_from_slice(data);
    let crc = crc32fast::hash(&buf[start + 8..]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
    Ok(())
}

/// The next frame; `None` at a clean end of the file. A torn or damaged frame is an error.
fn read_frame(reader: &mut impl Read) -> std::io::Result<Option<Record>> {
    let mut header = [0u8; HEADER_BYTES];
    let mut got = 0;
    while got < HEADER_BYTES {
        let n = reader.read(&mut header[got..])?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(invalid("a frame is cut short"))
            };
        }
        got += n;
    }
    let word = |range: std::ops::Range<usize>| -> [u8; 8] {
        let mut w = [0u8; 8];
        w[..range.len()].copy_from_slice(&header[range]);
        w
    };
    let len = u64::from_le_bytes(word(0..4)) as usize;
    let crc = u64::from_le_bytes(word(4..8)) as u32;
    let seq = u64::from_le_bytes(word(8..16));
    let micros = i64::from_le_bytes(word(16..24));
    let mut data = vec![0u8; len];
    reader
        .read_exact(&mut data)
        .map_err(|_| invalid("a frame is cut short"))?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&header[8..]);
    hasher.update(&data);
    if hasher.finalize() != crc {
        return Err(invalid("a frame fails its checksum"));
    }
    let arrival = DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| invalid("a frame's arrival time is out of range"))?;
    Ok(Some(Record {
        seq,
        arrival,
        data: Bytes::from(data),
    }))
}

/// Reads the newest segment: its last complete frame's sequence number (its first minus one if
/// it holds none) and the length of its valid part.
fn scan_tail(path: &Path, first: u64) -> Result<(u64, u64)> {
    let file =
        File::open(path).map_err(|e| Error::external(format!("cannot read {}", path.display()), e))?;
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut last = first.saturating_sub(1);
    let mut valid = 0u64;
    while let Ok(Some(record)) = read_frame(&mut reader) {
        last = record.seq;
        valid += (HEADER_BYTES + record.data.len()) as u64;
    }
    Ok((last, valid))
}

fn invalid(message: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, message.to_owned())
}

fn file_len(path: &Path) -> Result<u64> {
    std::fs::metadata(path)
        .map(|m| m.len())
        .map_err(|e| Error::external(format!("cannot read {}", path.display()), e))
}

fn truncate(path: &Path, len: u64) -> Result<()> {
    OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_len(len).and_then(|()| f.sync_all()))
        .map_err(|e| Error::external(format!("cannot cut off the torn end of {}", path.display()), e))
}

fn remove(path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::external(format!("cannot delete {}", path.display()), e)),
    }
}

/// Makes a created file's name durable.
fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::external(format!("cannot sync the folder {}", dir.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(micros: i64) -> DateTime<Utc> {
        DateTime::from_timestamp_micros(micros).unwrap()
    }

    fn records(texts: &[&str]) -> Vec<Bytes> {
        texts
            .iter()
            .map(|t| Bytes::copy_from_slice(t.as_bytes()))
            .collect()
    }

    fn replay_all(replay: &mut Replay) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        loop {
            let batch = replay.next_batch(2).unwrap();
            if batch.is_empty() {
                return out;
            }
            out.extend(
                batch
                    .into_iter()
                    .map(|r| (r.seq, String::from_utf8(r.data.to_vec()).unwrap())),
            );
        }
    }

    #[test]
    fn records_come_back_after_a_reopen_with_their_sequence_and_arrival() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        assert_eq!(opened.floor, 0);
        let a = records(&["a1", "a2"]);
        let b = records(&["b1"]);
        let first = opened.wal.append(&[(&a, at(1_000)), (&b, at(2_000))]).unwrap();
        assert_eq!(first, 1);
        assert_eq!(opened.wal.append(&[(&records(&["c1"]), at(3_000))]).unwrap(), 4);
        drop(opened);

        let mut again = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        let mut seen = Vec::new();
        loop {
            let batch = again.replay.next_batch(10).unwrap();
            if batch.is_empty() {
                break;
            }
            seen.extend(batch);
        }
        let got: Vec<(u64, i64, &[u8])> = seen
            .iter()
            .map(|r| (r.seq, r.arrival.timestamp_micros(), &r.data[..]))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, 1_000, &b"a1"[..]),
                (2, 1_000, b"a2"),
                (3, 2_000, b"b1"),
                (4, 3_000, b"c1")
            ]
        );
        // New records continue the numbering.
        assert_eq!(again.wal.append(&[(&records(&["d"]), at(4_000))]).unwrap(), 5);
    }

    #[test]
    fn released_segments_are_deleted_and_numbering_survives_an_empty_log() {
        let dir = tempfile::tempdir().unwrap();
        // Tiny segments: every append closes one.
        let opened = Wal::open(dir.path(), 0, 0, 1).unwrap();
        for n in 0..5 {
            opened
                .wal
                .append(&[(&records(&[&format!("r{n}")]), at(0))])
                .unwrap();
        }
        let segments = || {
            let mut names: Vec<String> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            names
        };
        assert_eq!(segments().len(), 6, "{:?}", segments());
        opened.wal.release(3).unwrap();
        assert_eq!(
            segments(),
            vec![
                "00000000000000000004.wal",
                "00000000000000000005.wal",
                "00000000000000000006.wal"
            ]
        );
        opened.wal.release(5).unwrap();
        assert_eq!(segments(), vec!["00000000000000000006.wal"]);
        assert_eq!(opened.wal.held(), 0);
        drop(opened);
        // Nothing left to deliver, and the next record is number 6, not 1 again.
        let mut again = Wal::open(dir.path(), 0, 0, 1).unwrap();
        assert_eq!(again.floor, 5);
        assert!(replay_all(&mut again.replay).is_empty());
        assert_eq!(again.wal.append(&[(&records(&["x"]), at(0))]).unwrap(), 6);
    }

    #[test]
    fn an_active_segment_fully_acknowledged_is_replaced_by_an_empty_one() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        opened
            .wal
            .append(&[(&records(&["a", "b", "c"]), at(0))])
            .unwrap();
        opened.wal.release(2).unwrap();
        assert!(opened.wal.held() > 0, "record 3 is not acknowledged yet");
        opened.wal.release(3).unwrap();
        assert_eq!(opened.wal.held(), 0);
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec!["00000000000000000004.wal"]);
    }

    #[test]
    fn acknowledged_records_and_a_torn_tail_are_not_delivered_again() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Wal::open(dir.path(), 0, 0, 1 << 20).unwrap();
        opened
            .wal
            .append(&[(&records(&["one", "two", "three"]), at(0))])
            .unwrap();
        let path = opened.wal.files.lock().unwrap().active_path.clone();
        drop(opened);
        // A crash in the middle of the next write: half a frame at the end.
        let mut torn = Vec::new();
        encode(&mut torn, 4, at(0), b"four").unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&torn[..torn.len() - 2]).unwrap();
        drop(f);
        // The sink's record says 1 is published and acknowledged.
        let mut again = Wal::open(dir.path(), 1, 1, 1 << 20).unwrap();
        assert_eq!(
            replay_all(&mut again.replay),
            vec![(2, "two".to_owned()), (3, "three".to_owned())]
        );
        assert_eq!(again.wal.append(&[(&records(&["4"]), at(0))]).unwrap(), 4);
    }

    #[test]
    fn numbering_continues_after_what_the_sinks_record_names_when_the_log_is_gone() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Wal::open(dir.path(), 10, 25, 1 << 20).unwrap();
        assert_eq!(opened.wal.append(&[(&records(&["x"]), at(0))]).unwrap(), 26);
    }

    #[test]
    fn a_damaged_closed_segment_is_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let opened = Wal::open(dir.path(), 0, 0, 1).unwrap();
        opened.wal.append(&[(&records(&["aaaa"]), at(0))]).unwrap();
        opened.wal.append(&[(&records(&["bbbb"]), at(0))]).unwrap();
        drop(opened);
        let first = dir.path().join("00000000000000000001.wal");
        let mut bytes = std::fs::read(&first).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&first, bytes).unwrap();
        let mut again = Wal::open(dir.path(), 0, 0, 1).unwrap();
        let err = again.replay.next_batch(10).unwrap_err().to_string();
        assert!(
            err.contains("00000000000000000001.wal") && err.contains("checksum"),
            "{err}"
        );
    }
}
